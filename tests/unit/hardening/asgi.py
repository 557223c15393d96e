"""ASGI test doubles: a request scope, a receive that plays scripted messages, a send that
records, and an inner application that records what reached it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

Headers = Sequence[tuple[str, str]]


def scope(
    method: str = "GET",
    path: str = "/v1/models",
    headers: Headers = (),
    server: tuple[str, int] | None = ("127.0.0.1", 8400),
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "server": server,
        "client": ("127.0.0.1", 50000),
    }


class Receive:
    """Plays ``chunks`` as http.request messages, each after ``delay`` seconds; then waits
    forever (a client that stopped sending)."""

    def __init__(self, chunks: Sequence[bytes] = (b"",), *, delay: float = 0.0) -> None:
        self.chunks = list(chunks)
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        if not self.chunks:
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}


class Sent:
    """A send() that records every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = orjson.loads(self.body)["error"]
        return error


class Inner:
    """The application inside a middleware: answers 200 ``{"ok":true}`` in two body
    messages (a stream, so a middleware that buffers would be seen), recording each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok":', "more_body": True})
        await send({"type": "http.response.body", "body": b"true}", "more_body": False})
