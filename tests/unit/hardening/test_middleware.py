"""The middleware as ASGI applications around a recording inner app: trusted hosts, CORS, the
admin listener split, and which of them ``wrap`` installs for a configuration."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.hardening.asgi import Headers, Inner, Receive, Sent, scope
from turnout.config import CorsConfig, ServerConfig
from turnout.server.middleware import AdminListener, Cors, TrustedHosts, wrap
from turnout.server.middleware.hosts import LOOPBACK_NAMES, default_hosts


async def call(app: Any, request: dict[str, Any]) -> Sent:
    sent = Sent()
    await app(request, Receive(), sent)
    return sent


# ----------------------------------------------------------------------- trusted hosts


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8400", "127.0.0.1:8400", "[::1]:8400", "app.localhost"]
)
async def test_loopback_default_accepts_local_names(host: str) -> None:
    inner = Inner()
    sent = await call(TrustedHosts(inner, hosts=LOOPBACK_NAMES), scope(headers=[("host", host)]))
    assert sent.status == 200 and len(inner.calls) == 1


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8400", "localhost.evil.example"])
async def test_loopback_default_refuses_other_names(host: str) -> None:
    """DNS rebinding: the page's own name in the Host header, the gateway's address."""
    inner = Inner()
    sent = await call(TrustedHosts(inner, hosts=LOOPBACK_NAMES), scope(headers=[("host", host)]))
    assert sent.status == 400 and not inner.calls
    error = sent.error()
    assert error["code"] == "untrusted_host"
    assert "server.trusted_hosts" in error["message"]
    assert sent.headers["x-request-id"].startswith("req_")


async def test_no_host_header_is_refused_on_loopback() -> None:
    sent = await call(TrustedHosts(Inner(), hosts=LOOPBACK_NAMES), scope(headers=[]))
    assert sent.status == 400 and "no Host header" in sent.error()["message"]


@pytest.mark.parametrize(
    ("listen", "names"),
    [
        ("127.0.0.1", LOOPBACK_NAMES),
        ("127.0.0.2", LOOPBACK_NAMES),
        ("localhost", LOOPBACK_NAMES),
        ("::1", LOOPBACK_NAMES),
        ("0.0.0.0", None),
        ("::", None),
        ("10.1.2.3", None),
    ],
)
def test_the_default_follows_the_listening_address(listen: str, names: list[str] | None) -> None:
    assert default_hosts(listen) == names
    installed = layers(wrap(Inner(), ServerConfig(), listen))
    assert installed == (["TrustedHosts"] if names else [])


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("api.example.com", True),
        ("API.Example.com:443", True),
        ("eu.svc.example.org", True),
        ("svc.example.org", False),  # *.x covers subdomains, not x itself
        ("localhost", False),  # a list replaces the loopback default
        ("10.0.0.5", True),
        ("[fd00::1]:8400", True),
        ("example.com", False),
    ],
)
async def test_a_configured_list(host: str, ok: bool) -> None:
    hosts = ServerConfig(
        trusted_hosts=["api.example.com", "*.svc.example.org", "10.0.0.5", "[fd00::1]"]
    ).trusted_hosts
    app = TrustedHosts(Inner(), hosts=hosts)
    sent = await call(app, scope(headers=[("host", host)], server=("10.1.2.3", 8400)))
    assert (sent.status == 200) is ok


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await TrustedHosts(inner, hosts=["x"])({"type": "lifespan"}, Receive(), Sent())
    assert seen == ["lifespan"]


# --------------------------------------------------------------------------------- CORS

ORIGIN = "https://app.example.com"


def cors(**options: Any) -> tuple[Cors, Inner]:
    inner = Inner()
    return Cors(inner, config=CorsConfig(allow_origins=[ORIGIN], **options)), inner


def preflight(origin: str = ORIGIN, method: str = "POST", headers: str = "") -> dict[str, Any]:
    fields: Headers = [("origin", origin), ("access-control-request-method", method)]
    if headers:
        fields = [*fields, ("access-control-request-headers", headers)]
    return scope("OPTIONS", "/v1/chat/completions", fields)


async def test_preflight_from_an_allowed_origin() -> None:
    app, inner = cors()
    sent = await call(app, preflight(headers="Authorization, Content-Type, X-Stainless-OS"))
    assert sent.status == 204 and not inner.calls
    headers = sent.headers
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["vary"] == "Origin"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "Authorization, Content-Type, X-Stainless-OS"
    assert headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    ("request_", "fix"),
    [
        (preflight(origin="https://evil.example"), "server.cors.allow_origins"),
        (preflight(method="PROPFIND"), "server.cors.allow_methods"),
        (preflight(headers="authorization, x-secret-header"), "server.cors.allow_headers"),
    ],
)
async def test_preflight_refusals_name_the_key(request_: dict[str, Any], fix: str) -> None:
    app, inner = cors()
    sent = await call(app, request_)
    assert sent.status == 400 and not inner.calls
    assert "access-control-allow-origin" not in sent.headers
    assert sent.error()["code"] == "cors_not_allowed" and fix in sent.error()["message"]


async def test_a_request_from_an_allowed_origin_gets_the_headers_and_its_stream() -> None:
    app, _ = cors()
    sent = await call(app, scope("POST", "/v1/chat/completions", [("origin", ORIGIN)]))
    assert sent.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in sent.headers["access-control-expose-headers"]
    assert "x-ratelimit-remaining-requests" in sent.headers["access-control-expose-headers"]
    assert [m.get("body") for m in sent.messages[1:]] == [b'{"ok":', b"true}"]  # not buffered


async def test_other_origins_and_plain_requests_get_no_cors_headers() -> None:
    app, inner = cors()
    for fields in ([("origin", "https://evil.example")], []):
        sent = await call(app, scope("POST", "/v1/chat/completions", fields))
        assert sent.status == 200
        assert not any(name.startswith("access-control") for name in sent.headers)
    assert len(inner.calls) == 2


async def test_wildcard_only_when_written_and_never_with_credentials() -> None:
    inner = Inner()
    app = Cors(inner, config=CorsConfig(allow_origins=["*"]))
    sent = await call(app, scope(headers=[("origin", "https://anyone.example")]))
    assert sent.headers["access-control-allow-origin"] == "*"
    with pytest.raises(ValueError, match="allow_credentials cannot be used"):
        CorsConfig(allow_origins=["*"], allow_credentials=True)


async def test_credentials_echo_the_origin() -> None:
    app, _ = cors(allow_credentials=True)
    sent = await call(app, preflight())
    assert sent.headers["access-control-allow-origin"] == ORIGIN
    assert sent.headers["access-control-allow-credentials"] == "true"


async def test_an_options_request_that_is_no_preflight_passes_through() -> None:
    app, inner = cors()
    await call(app, scope("OPTIONS", "/v1/models", [("origin", ORIGIN)]))
    assert len(inner.calls) == 1


@pytest.mark.parametrize(
    "origin", ["app.example.com", "https://app.example.com/", "https://a.b/path", "ftp://x"]
)
def test_origins_must_be_origins(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        CorsConfig(allow_origins=[origin])


# ------------------------------------------------------------------------ admin listener


@pytest.mark.parametrize(
    ("port", "path", "passes"),
    [
        (8400, "/v1/models", True),
        (8400, "/admin/models", False),
        (8400, "/admin", False),
        (8401, "/admin/models", True),
        (8401, "/v1/models", False),
        (8401, "/healthz", False),
        (8400, "/administrator", True),  # only /admin and /admin/...
    ],
)
async def test_admin_paths_only_on_the_admin_port(port: int, path: str, passes: bool) -> None:
    inner = Inner()
    sent = await call(AdminListener(inner, port=8401), scope(path=path, server=("127.0.0.1", port)))
    assert (sent.status == 200) is passes
    assert bool(inner.calls) is passes
    if not passes:
        assert sent.status == 404 and sent.error()["code"] == "unknown_url"


# --------------------------------------------------------------------------------- wrap


def layers(app: Any) -> list[str]:
    names = []
    while not isinstance(app, Inner):
        names.append(type(app).__name__)
        app = app.app
    return names


def test_wrap_installs_only_what_is_configured() -> None:
    assert layers(wrap(Inner(), ServerConfig())) == ["TrustedHosts"]  # 127.0.0.1
    with pytest.raises(ValueError, match="an empty list refuses every request"):
        ServerConfig(trusted_hosts=[])
    assert layers(wrap(Inner(), ServerConfig(trusted_hosts=["*"]))) == []
    full = ServerConfig(
        trusted_hosts=["api.example.com"],
        cors=CorsConfig(allow_origins=[ORIGIN]),
        admin_listen="127.0.0.1:8401",
    )
    assert layers(wrap(Inner(), full)) == ["TrustedHosts", "Cors", "AdminListener"]
