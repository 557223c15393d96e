"""The one place that renders errors, per front door format. Never a stack trace."""

from __future__ import annotations

import math

import orjson

from turnout.exceptions import TurnoutError

__all__ = ["error_headers", "openai_error", "openai_sse_error"]


def openai_error(exc: TurnoutError) -> bytes:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}
    )


def openai_sse_error(exc: TurnoutError) -> bytes:
    """The event that ends a stream which failed after it started (the SDKs raise on it)."""
    return b"data: " + openai_error(exc) + b"\n\n"


def error_headers(exc: TurnoutError) -> list[tuple[bytes, bytes]]:
    if exc.retry_after is None:
        return []
    return [(b"retry-after", str(max(0, math.ceil(exc.retry_after))).encode())]
