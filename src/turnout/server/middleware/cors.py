"""CORS: which web pages may call the gateway from a browser, and what they may read.

Installed only when ``server.cors.allow_origins`` lists something; without it the gateway
sends no CORS header at all and browsers keep other sites' pages out. ``*`` allows every
origin but only when written, and never together with credentials (the configuration refuses
it). A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here, 204
when the origin, the method and every requested header are allowed, else 400 naming what is
not; other requests pass through and, from an allowed origin, get the CORS headers added to
their response start, bodies and streams untouched.
"""

from __future__ import annotations

from turnout.config import CorsConfig
from turnout.exceptions import InvalidRequest
from turnout.server.http import ASGIApp, Message, Receive, Scope, Send
from turnout.server.middleware._asgi import header, reject

__all__ = ["Cors"]


class Cors:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, config: CorsConfig) -> None:
        self.app = app
        self.config = config
        self.any_origin = "*" in config.allow_origins
        self.origins = frozenset(o.encode() for o in config.allow_origins)
        self.methods = frozenset(config.allow_methods)
        self.headers = frozenset(h for h in config.allow_headers if not h.endswith("*"))
        self.prefixes = tuple(h[:-1] for h in config.allow_headers if h.endswith("*"))
        expose = ", ".join(config.expose_headers).encode()
        self.simple = [*self._common(), (b"access-control-expose-headers", expose)]
        self.preflight = [
            *self._common(),
            (b"access-control-allow-methods", ", ".join(config.allow_methods).encode()),
            (b"access-control-max-age", str(config.max_age).encode()),
        ]

    def _common(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"vary", b"Origin")]
        if self.config.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None:
            await self.app(scope, receive, send)
            return
        requested = header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            await self._preflight(scope, send, origin, requested)
        elif self._allowed(origin):
            await self.app(scope, receive, self._adding(send, origin))
        else:
            await self.app(scope, receive, send)

    def _allowed(self, origin: bytes) -> bool:
        return self.any_origin or origin.lower() in self.origins

    def _allow_origin(self, origin: bytes) -> tuple[bytes, bytes]:
        # "*" never comes with credentials: the configuration refuses that pair
        return (b"access-control-allow-origin", b"*" if self.any_origin else origin)

    def _adding(self, send: Send, origin: bytes) -> Send:
        extra = [self._allow_origin(origin), *self.simple]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_cors

    async def _preflight(self, scope: Scope, send: Send, origin: bytes, method: bytes) -> None:
        problem = self._preflight_problem(scope, origin, method)
        if problem is not None:
            await reject(send, InvalidRequest(problem, code="cors_not_allowed"))
            return
        asked = header(scope, b"access-control-request-headers")
        headers = [self._allow_origin(origin), *self.preflight]
        if asked:
            headers.append((b"access-control-allow-headers", asked))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _preflight_problem(self, scope: Scope, origin: bytes, method: bytes) -> str | None:
        if not self._allowed(origin):
            return (
                f"Cross-origin requests from {origin[:200].decode('latin-1')!r} are not allowed; "
                "add the origin to server.cors.allow_origins."
            )
        if method.decode("latin-1").upper() not in self.methods:
            return (
                f"Cross-origin {method[:20].decode('latin-1')} requests are not allowed; "
                "add the method to server.cors.allow_methods."
            )
        asked = header(scope, b"access-control-request-headers") or b""
        for raw in asked.decode("latin-1").lower().split(","):
            name = raw.strip()
            if name and name not in self.headers and not name.startswith(self.prefixes):
                return (
                    f"Cross-origin requests may not send the header {name[:100]!r}; add it to "
                    "server.cors.allow_headers."
                )
        return None
