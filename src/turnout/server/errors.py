"""The one place that renders errors, per front door format. Never a stack trace."""

from __future__ import annotations

import math

import orjson

from turnout.exceptions import RequestTimeout, RequestTooLarge, TurnoutError

__all__ = ["error_headers", "openai_error", "openai_sse_error"]


def openai_error(exc: TurnoutError) -> bytes:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}
    )


def openai_sse_error(exc: TurnoutError) -> bytes:
    """The event that ends a stream which failed after it started (the SDKs raise on it)."""
    return b"data: " + openai_error(exc) + b"\n\n"


#: errors that leave part of the request unread: the connection is closed after the answer,
#: or a slow or endless sender would keep it (and the server's reading) busy
_CLOSING = (RequestTimeout, RequestTooLarge)
_CLOSE = (b"connection", b"close")


def error_headers(exc: TurnoutError) -> list[tuple[bytes, bytes]]:
    headers = [_CLOSE] if isinstance(exc, _CLOSING) else []
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(max(0, math.ceil(exc.retry_after))).encode()))
    return headers
