"""Minimal ASGI request and response types for the hot path.

The gateway's routes are few and fixed, so it speaks ASGI directly instead of through a
framework: one dict lookup routes a request, the body is read once, JSON is parsed once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from turnout.exceptions import InvalidRequest, RequestTooLarge
from turnout.policies.limits.policy import Admission

__all__ = [
    "JSON_HEADERS",
    "SSE_HEADERS",
    "HttpRequest",
    "JsonResponse",
    "Receive",
    "Scope",
    "Send",
    "SseResponse",
    "new_request_id",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


class HttpRequest:
    __slots__ = (
        "_headers",
        "admission",
        "method",
        "parsed",
        "path",
        "principal",
        "receive",
        "request_id",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self._headers: dict[bytes, bytes] | None = None
        #: the parsed JSON body, for routes that declare one
        self.parsed: Any = None
        #: who is calling, once authenticated
        self.principal = "anonymous"
        #: the rate-limit state, once the request was admitted (its headers go on the response)
        self.admission: Admission | None = None
        supplied = self.header(b"x-request-id")
        if supplied is not None and _SAFE_ID.fullmatch(supplied):
            self.request_id = supplied.decode()
        else:
            self.request_id = new_request_id()

    def header(self, name: bytes) -> bytes | None:
        """A request header by lower-case name (the last one if repeated)."""
        if self._headers is None:
            self._headers = dict(self.scope["headers"])
        return self._headers.get(name)

    async def body(self, limit: int) -> bytes:
        """The whole body; RequestTooLarge as soon as it passes ``limit`` bytes."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                raise InvalidRequest("The client closed the connection.", code="client_closed")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def json(self, limit: int) -> Any:
        raw = await self.body(limit)
        if not raw:
            raise InvalidRequest(
                "The request body is empty; send a JSON object.", code="invalid_json"
            )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.",
                code="invalid_json",
            ) from None


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than the gateway accepts ({limit} bytes); send less, "
        "or raise server.max_body_bytes."
    )


@dataclass(slots=True)
class JsonResponse:
    body: bytes
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = b"application/json"


@dataclass(slots=True)
class SseResponse:
    """Server-sent events; ``events`` yields complete ``data: ...\\n\\n`` frames."""

    events: Any  # AsyncIterator[bytes] with an aclose()
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
