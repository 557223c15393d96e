"""Calling the gateway's ASGI app in process: one request, the whole answer (no server)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from turnout.server.http import ASGIApp


@dataclass
class AsgiResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


async def asgi_request(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    json_body: Any = None,
    query: bytes = b"",
    client: str = "127.0.0.1",
) -> AsgiResponse:
    data = b"" if json_body is None else json.dumps(json_body).encode()
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": (client, 40000),
        "server": ("127.0.0.1", 8400),
        "scheme": "http",
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError("unreachable")

    response = AsgiResponse()

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, send)
    return response


def bearer(token: str | bytes) -> list[tuple[bytes, bytes]]:
    raw = token.encode() if isinstance(token, str) else token
    return [(b"authorization", b"Bearer " + raw)]
