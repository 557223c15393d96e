"""Minimal ASGI request and response types for the hot path.

The gateway's routes are few and fixed, so it speaks ASGI directly instead of through a
framework: one dict lookup routes a request, the body is read once, JSON is parsed once.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from turnout.exceptions import InvalidRequest, RequestTimeout, RequestTooLarge
from turnout.policies.keys import Caller
from turnout.policies.limits.policy import Admission
from turnout.server.deadlines import Deadlines

__all__ = [
    "JSON_HEADERS",
    "SSE_HEADERS",
    "ASGIApp",
    "BodyLimits",
    "HttpRequest",
    "JsonResponse",
    "LastFrame",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "SseResponse",
    "nested_deeper",
    "new_request_id",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
#: how orjson words its nesting limit (3.13: "depth limit exceeded"; earlier: "Recursion limit")
_ORJSON_DEPTH = ("depth limit", "recursion limit")
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What a request body may be: its size, its JSON nesting, the time it takes to arrive."""

    max_bytes: int
    max_depth: int
    deadlines: Deadlines

    @classmethod
    def create(cls, max_bytes: int, max_depth: int, timeout: float) -> BodyLimits:
        return cls(max_bytes, max_depth, Deadlines(timeout))


def new_request_id() -> str:
    """``req_`` and 24 hex digits: the time in milliseconds (48 bits, as in UUIDv7), then 48
    random bits. Ids sort by time, so the request log's index on them grows at one end
    instead of dirtying a random page per request; they identify requests, they are no
    secret (``random`` is reseeded in forked workers)."""
    return f"req_{time.time_ns() // 1_000_000:012x}{random.getrandbits(48):012x}"


class HttpRequest:
    __slots__ = (
        "_headers",
        "admission",
        "audit_details",
        "audit_target",
        "caller",
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
        #: the authenticated caller (its role, its API key); None before authentication
        self.caller: Caller | None = None
        #: what an audited route acted on, and details to record (never a secret); the
        #: server fills the target from the path or the body when the route does not
        self.audit_target: str | None = None
        self.audit_details: dict[str, Any] | None = None
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

    async def body(self, limits: BodyLimits) -> bytes:
        """The whole body; RequestTooLarge as soon as it passes ``limits.max_bytes``,
        RequestTimeout when it has not all arrived within ``limits.deadlines.timeout``."""
        limit = limits.max_bytes
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        deadlines = limits.deadlines
        task = deadlines.watch()
        try:
            return await self._read_body(limit)
        except asyncio.CancelledError:
            if not deadlines.expired(task):
                raise
            task.uncancel()
            raise RequestTimeout(
                f"The request body did not arrive within {deadlines.timeout:g} seconds; send it "
                "faster, or raise server.body_timeout."
            ) from None
        finally:
            deadlines.release(task)

    async def _read_body(self, limit: int) -> bytes:
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

    async def json(self, limits: BodyLimits) -> Any:
        """The body parsed as JSON, nested at most ``limits.max_depth`` levels deep."""
        raw = await self.body(limits)
        if not raw:
            raise InvalidRequest(
                "The request body is empty; send a JSON object.", code="invalid_json"
            )
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if exc.msg.lower().startswith(_ORJSON_DEPTH):  # orjson's own limit: 1024 levels
                raise _too_deep(limits.max_depth) from None
            raise InvalidRequest(
                f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.",
                code="invalid_json",
            ) from None
        if nested_deeper(raw, limits.max_depth):
            raise _too_deep(limits.max_depth)
        return value


def nested_deeper(raw: bytes, limit: int) -> bool:
    """Whether the valid JSON text ``raw`` nests objects and arrays more than ``limit`` deep
    (a scalar: 0, ``{}``: 1, ``{"a": []}``: 2), from its bytes, with no Python loop over them.

    Escaped backslashes, then escaped quotes, are deleted, so every ``"`` left starts or ends a
    string; splitting at them leaves the text outside strings at even places. Of that, only
    the brackets are kept, all as ``[]``, and each ``replace`` removes every innermost pair:
    the number of rounds until nothing is left is the depth."""
    if raw.count(b"{") + raw.count(b"[") <= limit:  # fewer brackets than levels: done
        return False
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(raw.split(b'"')[::2]).translate(_AS_SQUARE, _NOT_BRACKETS)
    depth = 0
    while brackets:
        depth += 1
        if depth > limit:
            return True
        brackets = brackets.replace(b"[]", b"")
    return False


_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def _too_deep(limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"The request body nests JSON objects and arrays more than {limit} levels deep; "
        "flatten it, or raise server.max_json_depth.",
        code="invalid_json",
    )


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


class LastFrame(bytes):
    """The frame that ends an event stream: the server sends it together with the end of the
    response body, in one write instead of two."""

    __slots__ = ()


@dataclass(slots=True)
class SseResponse:
    """Server-sent events; ``events`` yields complete ``data: ...\\n\\n`` frames, the last one
    as a :class:`LastFrame` when the producer knows it is the last."""

    events: Any  # AsyncIterator[bytes] with an aclose()
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
