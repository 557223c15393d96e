"""Upstream failures to the gateway's error hierarchy, shared by every HTTP backend."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from turnout.exceptions import (
    BackendError,
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from turnout.http.client import ConnectError, HTTPClientError, ProtocolError, TimeoutError_

__all__ = ["client_errors", "parse_retry_after", "scrub", "status_error"]

_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too many tokens")
_MAX_ERROR_TEXT = 1000


@contextmanager
def client_errors(backend: str, host: str) -> Iterator[None]:
    """Convert the HTTP client's errors into the gateway's hierarchy."""
    try:
        yield
    except TimeoutError_ as exc:
        raise UpstreamTimeout(
            f"Backend {backend!r} ({host}) did not answer in time: {exc}.", backend=backend
        ) from exc
    except ConnectError as exc:
        raise UpstreamUnavailable(
            f"Cannot connect to backend {backend!r}: {exc}.", backend=backend
        ) from exc
    except ProtocolError as exc:
        raise UpstreamInvalidResponse(f"Backend {backend!r}: {exc}.", backend=backend) from exc
    except HTTPClientError as exc:
        raise UpstreamUnavailable(
            f"The connection to backend {backend!r} ({host}) failed: {exc}.", backend=backend
        ) from exc


#: what replaces a credential an upstream repeated in its error text
REDACTED = "[redacted]"


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` (an upstream's words) without the gateway's own credentials in it: some
    upstreams repeat the key they were sent in their error messages, and those messages are
    passed on to callers and written to logs."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def status_error(
    backend: str, status: int, raw: bytes, headers: Any, secrets: tuple[str, ...] = ()
) -> BackendError:
    """Map an upstream HTTP error status (and its body) to the gateway's hierarchy;
    ``secrets`` (the backend's credentials) never appear in the message."""
    message, code = _error_text(raw)
    if message and secrets:
        message = scrub(message, secrets)
    where = f"Backend {backend!r}"
    if status in (401, 403):
        return UpstreamAuthError(
            f"{where} refused the gateway's credentials (HTTP {status}); check the api_key "
            f"of backends.{backend} in the configuration.",
            backend=backend,
        )
    if status == 429:
        return UpstreamRateLimited(
            f"{where} is rate limiting requests: {message or 'HTTP 429'}",
            backend=backend,
            retry_after=parse_retry_after(headers),
        )
    if status == 404:
        return UpstreamNotFound(f"{where}: {message or 'not found (HTTP 404)'}", backend=backend)
    if status in (408, 504):
        return UpstreamTimeout(f"{where} timed out (HTTP {status}).", backend=backend)
    if status == 503 or status == 529:
        return UpstreamUnavailable(
            f"{where} is unavailable (HTTP {status}).",
            backend=backend,
            retry_after=parse_retry_after(headers),
        )
    if 400 <= status < 500:
        lowered = (message or "").lower()
        if code == "context_length_exceeded" or any(h in lowered for h in _CONTEXT_HINTS):
            return ContextLengthExceeded(message or "Context length exceeded.", backend=backend)
        return UpstreamBadRequest(
            message or f"{where} rejected the request (HTTP {status}).", backend=backend
        )
    return UpstreamError(f"{where} failed (HTTP {status}).", backend=backend)


#: longest wait passed on to a client; anything larger (or not finite) is ignored
MAX_RETRY_AFTER = 24 * 3600.0


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None when
    absent, unparsable or not finite; at most a day."""
    if headers is None:
        return None
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return _sane(millis / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return _sane(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _sane(max(0.0, when.timestamp() - time.time()))


def _number(value: Any) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sane(seconds: float) -> float | None:
    """Not finite: ignored; clamped to [0, MAX_RETRY_AFTER]."""
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


def _error_text(raw: bytes) -> tuple[str | None, str | None]:
    """The upstream's own error message and code, if its body says them in JSON."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        msg, code = err.get("message"), err.get("code")
        return (str(msg)[:_MAX_ERROR_TEXT] if msg else None, str(code) if code else None)
    if isinstance(err, str):
        return err[:_MAX_ERROR_TEXT], None
    return None, None
