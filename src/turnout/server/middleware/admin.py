"""The admin listener: ``/admin/*`` served only on a port of its own (``server.admin_listen``).

``turnout serve`` opens that second socket next to the public one, in every worker; requests
are told apart by the local port they arrived on (ASGI ``scope["server"]``). On the admin port
only ``/admin/*`` answers, on every other port everything but ``/admin/*``; the rest is 404
``unknown_url``, exactly as for a path that does not exist, so the public port does not even
reveal that an admin API is there.
"""

from __future__ import annotations

from turnout.exceptions import UnknownURL
from turnout.server.http import ASGIApp, Receive, Scope, Send
from turnout.server.middleware._asgi import reject

__all__ = ["AdminListener", "is_admin_path"]


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


class AdminListener:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            on_admin_port = server is not None and server[1] == self.port
            if on_admin_port != is_admin_path(scope["path"]):
                await reject(
                    send,
                    UnknownURL(
                        f"Unknown request URL: {scope['method']} {scope['path']}. "
                        + _hint(on_admin_port)
                    ),
                )
                return
        await self.app(scope, receive, send)


def _hint(on_admin_port: bool) -> str:
    if on_admin_port:
        return "This port serves the admin API (/admin/...) only."
    return "Check the URL; the OpenAI API lives under /v1 (base_url=http://HOST:PORT/v1)."
