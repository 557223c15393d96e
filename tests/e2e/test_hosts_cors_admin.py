"""Through the real gateway: the Host allow-list, CORS for browsers, and the admin API on a
listener of its own (with one worker and with several)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import rawhttp
from tests.e2e.support import (
    MASTER_KEY,
    UPSTREAM_KEY,
    Gateway,
    assert_error,
    backend,
    deployment,
    free_port,
    gateway_env,
    run_gateway,
)
from tests.fakes import FakeUpstream

ORIGIN = "https://console.example.com"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def config_with(upstream: FakeUpstream, **server: object) -> dict[str, object]:
    return {
        "server": server,
        "backends": {"fake": backend(upstream.base_url, "env:FAKE_UPSTREAM_KEY")},
        "models": {"chat": deployment("fake", "gpt-4o-mini")},
    }


# -------------------------------------------------------------------------- trusted hosts


def test_the_default_on_loopback_refuses_foreign_host_names(gateway: Gateway) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1."""
    resp = gateway.get("/v1/models", headers={"Host": "evil.example:8400"})
    error = assert_error(resp, 400, code="untrusted_host")
    assert "server.trusted_hosts" in error["message"]
    assert gateway.get("/healthz", auth=False, headers={"Host": "evil.example"}).status == 400
    port = gateway.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert gateway.get("/v1/models", headers={"Host": host}).status == 200, host


def test_a_configured_list(upstream_server: FakeUpstream, tmp_path: Path) -> None:
    config = config_with(upstream_server, trusted_hosts=["127.0.0.1", "*.example.com"])
    with run_gateway(tmp_path, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        assert gw.get("/v1/models").status == 200  # Host: 127.0.0.1:PORT
        assert gw.get("/v1/models", headers={"Host": "api.example.com"}).status == 200
        assert_error(gw.get("/v1/models", headers={"Host": "localhost"}), 400)
        assert_error(gw.get("/v1/models", headers={"Host": "example.com"}), 400)


# ----------------------------------------------------------------------------------- CORS


@pytest.fixture(scope="module")
def cors_gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    config = config_with(upstream_server, cors={"allow_origins": [ORIGIN]})
    workdir = tmp_path_factory.mktemp("cors")
    with run_gateway(workdir, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


def preflight(gw: Gateway, origin: str, headers: str) -> rawhttp.RawResponse:
    return gw.request(
        "OPTIONS",
        "/v1/chat/completions",
        auth=False,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_a_browser_preflight_is_answered_without_a_key(cors_gateway: Gateway) -> None:
    """What the OpenAI JS SDK asks before its first request from a web page."""
    resp = preflight(cors_gateway, ORIGIN, "authorization,content-type,x-stainless-os")
    assert resp.status == 204, resp.text
    assert resp.headers["access-control-allow-origin"] == ORIGIN
    assert resp.headers["access-control-allow-headers"] == (
        "authorization,content-type,x-stainless-os"
    )
    assert "POST" in resp.headers["access-control-allow-methods"]


def test_a_preflight_from_another_origin_is_refused(cors_gateway: Gateway) -> None:
    resp = preflight(cors_gateway, "https://evil.example", "authorization")
    assert_error(resp, 400, code="cors_not_allowed")
    assert resp.headers.get("access-control-allow-origin") is None


def test_json_and_streams_carry_the_headers_unbuffered(cors_gateway: Gateway) -> None:
    headers = {"Origin": ORIGIN}
    resp = cors_gateway.post("/v1/chat/completions", CHAT, headers=headers)
    assert resp.status == 200 and resp.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in resp.headers["access-control-expose-headers"]
    stream = cors_gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers=headers)
    assert stream.headers["access-control-allow-origin"] == ORIGIN
    assert rawhttp.sse_data(stream.body)[-1] == "[DONE]"


def test_without_configuration_there_is_no_cors_at_all(gateway: Gateway) -> None:
    resp = preflight(gateway, ORIGIN, "authorization")
    assert_error(resp, 405, code="method_not_allowed")
    plain = gateway.post("/v1/chat/completions", CHAT, headers={"Origin": ORIGIN})
    assert plain.status == 200
    assert not [h for h in plain.headers if h.lower().startswith("access-control")]


# ------------------------------------------------------------------------- admin listener


@pytest.mark.parametrize("workers", [1, 2])
def test_the_admin_api_answers_only_on_its_own_listener(
    upstream_server: FakeUpstream, tmp_path: Path, workers: int
) -> None:
    admin_port = free_port()
    config = config_with(upstream_server, admin_listen=f"127.0.0.1:{admin_port}")
    with run_gateway(
        tmp_path,
        config=config,
        env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY},
        args=("--workers", str(workers)),
    ) as gw:
        admin = f"http://127.0.0.1:{admin_port}"
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        for _ in range(2 * workers):  # every worker serves both listeners
            public = gw.get("/admin/routes")
            assert_error(public, 404, code="unknown_url")
            unknown = gw.get("/no/such/path").json()["error"]["message"]
            assert public.json()["error"]["message"] == unknown.replace(
                "/no/such/path", "/admin/routes"
            )
            assert rawhttp.request("GET", admin + "/admin/routes", headers=auth).status == 200
            assert gw.get("/v1/models").status == 200
            wrong = rawhttp.request("GET", admin + "/v1/models", headers=auth)
            assert_error(wrong, 404, code="unknown_url")
        no_key = rawhttp.request("GET", admin + "/admin/routes")
        assert_error(no_key, 401)  # the admin listener still wants a key
        assert f"admin API (/admin/*) on http://127.0.0.1:{admin_port}" in gw.log()


def test_the_admin_port_must_differ(upstream_server: FakeUpstream, tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "c.yaml"
    config = config_with(upstream_server, port=port, admin_listen=f"127.0.0.1:{port}")
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "turnout", "serve", "--config", str(path)],
        env=gateway_env(tmp_path, {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "give the admin listener a port of its own" in done.stderr
