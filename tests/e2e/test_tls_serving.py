"""HTTPS serving: ``turnout serve --ssl-certfile/--ssl-keyfile`` and ``server.tls``, checked
with real TLS clients. TLS 1.2 and 1.3 work, TLS 1.1 and 1.0 are refused (proven against a
control server that does accept them, so the refusal is the gateway's, not the client's), the
official openai SDK works over HTTPS, and a bad certificate stops ``turnout serve`` with a
message instead of a traceback."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import openai
import pytest

from tests.e2e.support import (
    MASTER_KEY,
    UPSTREAM_KEY,
    Gateway,
    backend,
    deployment,
    gateway_env,
    run_gateway,
)
from tests.fakes import FakeUpstream
from tests.fakes.tls import Certs, make_certs

OLD = {"TLS 1.0": ssl.TLSVersion.TLSv1, "TLS 1.1": ssl.TLSVersion.TLSv1_1}


@pytest.fixture(scope="module")
def certs() -> Certs:
    return make_certs("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def cert_files(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    for pem in certs.server_cert.cert_chain_pems:
        with cert.open("ab") as out:
            out.write(pem.bytes())
    certs.server_cert.private_key_pem.write_to_path(str(key))
    return cert, key


def client_context(certs: Certs, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """Trusts the test CA; ``version``: offer exactly that one (old ones at security level 0,
    so that the client is willing to try)."""
    context = certs.client_context()
    if version is not None:
        with warnings.catch_warnings():  # asking for TLS 1.0 / 1.1 is deprecated: on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def handshake(port: int, context: ssl.SSLContext) -> str:
    """The negotiated version; ssl.SSLError when the server refuses."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def https_ready(certs: Certs) -> Callable[[Gateway], bool]:
    def ready(gw: Gateway) -> bool:
        return get(gw, "/readyz", client_context(certs))[0] == 200

    return ready


def get(gw: Gateway, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    host, port = gw.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {MASTER_KEY}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def port_of(gw: Gateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


def start(
    tmp: Path, upstream: FakeUpstream, certs: Certs, *, server: dict[str, object], args: list[str]
) -> AbstractContextManager[Gateway]:
    config = {
        "server": server,
        "backends": {"fake": backend(upstream.base_url, "env:FAKE_UPSTREAM_KEY")},
        "models": {"chat": deployment("fake", "gpt-4o-mini")},
    }
    return run_gateway(
        tmp,
        config=config,
        env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY},
        args=args,
        scheme="https",
        ready=https_ready(certs),
    )


@pytest.fixture(scope="module")
def https_gateway(
    upstream_server: FakeUpstream,
    certs: Certs,
    cert_files: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    cert, key = cert_files
    args = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    folder = tmp_path_factory.mktemp("https")
    with start(folder, upstream_server, certs, server={}, args=args) as gw:
        yield gw


@pytest.fixture(scope="module")
def old_tls_works_here(certs: Certs) -> None:
    """A control server that accepts TLS 1.0 and 1.1: if this client cannot reach it with
    them, this machine cannot tell a refusal from an inability, and the test skips."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_context.minimum_version = ssl.TLSVersion.TLSv1
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    certs.server_cert.configure_cert(server_context)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in OLD:
            conn, _ = listener.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for name, version in OLD.items():
            try:
                handshake(port, client_context(certs, version))
            except (ssl.SSLError, OSError) as exc:
                pytest.skip(f"this OpenSSL cannot speak {name} even to a willing server: {exc}")
    finally:
        listener.close()
        thread.join(timeout=5)


def test_tls_12_and_13_are_served(https_gateway: Gateway, certs: Certs) -> None:
    port = port_of(https_gateway)
    assert handshake(port, client_context(certs, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert handshake(port, client_context(certs, ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"
    assert get(https_gateway, "/v1/models", client_context(certs))[0] == 200


@pytest.mark.usefixtures("old_tls_works_here")
@pytest.mark.parametrize("name", list(OLD))
def test_old_tls_is_refused(https_gateway: Gateway, certs: Certs, name: str) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(port_of(https_gateway), client_context(certs, OLD[name]))


def test_plain_http_gets_no_answer(https_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", port_of(https_gateway)), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b"data" not in sock.recv(65536)


def test_the_openai_sdk_over_https(https_gateway: Gateway, certs: Certs) -> None:
    http_client = openai.DefaultHttpxClient(verify=client_context(certs))
    with openai.OpenAI(
        base_url=https_gateway.base_url, api_key=MASTER_KEY, http_client=http_client
    ) as client:
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "over tls"}]
        )
    assert reply.choices[0].message.content == "echo: over tls"


def test_a_client_that_does_not_trust_the_ca_is_refused(https_gateway: Gateway) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port_of(https_gateway), ssl.create_default_context())


def test_config_tls_with_13_minimum(
    upstream_server: FakeUpstream,
    certs: Certs,
    cert_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    cert, key = cert_files
    tls = {"cert_file": str(cert), "key_file": str(key), "min_version": "1.3"}
    with start(tmp_path, upstream_server, certs, server={"tls": tls}, args=[]) as gw:
        port = port_of(gw)
        assert handshake(port, client_context(certs, ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            handshake(port, client_context(certs, ssl.TLSVersion.TLSv1_2))


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (("missing.pem", None), "no such file"),
        (("key", "cert"), "cannot load the certificate"),  # swapped: not a certificate
    ],
)
def test_a_bad_certificate_stops_serve_with_a_message(
    cert_files: tuple[Path, Path], tmp_path: Path, files: tuple[str, str | None], says: str
) -> None:
    cert, key = cert_files
    named = {"cert": str(cert), "key": str(key), "missing.pem": str(tmp_path / "missing.pem")}
    args = ["--ssl-certfile", named[files[0]]]
    if files[1]:
        args += ["--ssl-keyfile", named[files[1]]]
    done = subprocess.run(
        [sys.executable, "-m", "turnout", "serve", "--port", "0", *args],
        cwd=tmp_path,
        env=gateway_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "TLS error" in done.stderr and says in done.stderr
    assert "Traceback" not in done.stderr
