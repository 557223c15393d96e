"""Upstream HTTP failures mapped to the gateway's error hierarchy (status_error), and the
Retry-After parsing behind every retry_after."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import orjson
import pytest

# The one import of the functions under test: they moved out of backends/openai_compat.py.
from turnout.backends.errors import parse_retry_after, status_error
from turnout.exceptions import (
    BackendError,
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from turnout.server.errors import error_headers

PARTIAL_KEY = "sk-proj-abc1****************************wxyz"


def headers(**values: str) -> dict[str, str]:
    """Response headers as the upstream client exposes them: names lower-cased, '-' for '_'."""
    return {name.replace("_", "-").lower(): value for name, value in values.items()}


def body(message: str | None = None, code: str | None = None, type_: str = "x") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


def mapped(status: int, raw: bytes = b"", hdrs: dict[str, str] | None = None) -> BackendError:
    err = status_error("up", status, raw, hdrs or {})
    assert err.backend == "up"
    return err


def test_400_keeps_the_upstreams_message() -> None:
    err = mapped(400, body("Invalid 'temperature': must be <= 2.", "invalid_value"))
    assert type(err) is UpstreamBadRequest
    assert err.message == "Invalid 'temperature': must be <= 2."
    assert (err.status, err.type, err.code, err.retryable) == (
        400,
        "invalid_request_error",
        "invalid_request",
        False,
    )


def test_400_without_a_json_body() -> None:
    err = mapped(400, b"<html>bad</html>")
    assert type(err) is UpstreamBadRequest
    assert err.message == "Backend 'up' rejected the request (HTTP 400)."


@pytest.mark.parametrize(
    "raw",
    [
        body("This model's maximum context length is 8192 tokens.", "context_length_exceeded"),
        body("This model's maximum context length is 8192 tokens. However you requested 9000"),
        body("prompt is too long: too many tokens"),
        body("Input exceeds context length"),
        orjson.dumps({"error": "context_length_exceeded: reduce the prompt"}),
    ],
)
def test_400_context_length(raw: bytes) -> None:
    err = mapped(400, raw)
    assert type(err) is ContextLengthExceeded
    assert isinstance(err, UpstreamBadRequest)
    assert (err.status, err.code) == (400, "context_length_exceeded")
    assert err.retryable is False  # ... but the router falls back on it (see test_router)


def test_422_is_a_bad_request_too() -> None:
    assert type(mapped(422, body("unprocessable"))) is UpstreamBadRequest


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_never_repeats_the_upstreams_message(status: int) -> None:
    err = mapped(status, body(f"Incorrect API key provided: {PARTIAL_KEY}.", "invalid_api_key"))
    assert type(err) is UpstreamAuthError
    assert PARTIAL_KEY not in err.message
    assert "sk-" not in err.message
    assert err.message == (
        f"Backend 'up' refused the gateway's credentials (HTTP {status}); check the api_key "
        "of backends.up in the configuration."
    )
    assert (err.status, err.code, err.retryable) == (502, "upstream_auth_error", False)


def test_404() -> None:
    err = mapped(404, body("The model `gpt-9` does not exist", "model_not_found"))
    assert type(err) is UpstreamNotFound
    assert err.message == "Backend 'up': The model `gpt-9` does not exist"
    assert (err.status, err.code, err.retryable) == (404, "model_not_found", False)
    assert mapped(404).message == "Backend 'up': not found (HTTP 404)"


@pytest.mark.parametrize("status", [408, 504])
def test_timeouts(status: int) -> None:
    err = mapped(status)
    assert type(err) is UpstreamTimeout
    assert err.message == f"Backend 'up' timed out (HTTP {status})."
    assert (err.status, err.code, err.retryable) == (504, "upstream_timeout", True)


def test_429_with_retry_after_seconds() -> None:
    err = mapped(429, body("Rate limit reached for requests"), headers(retry_after="7"))
    assert type(err) is UpstreamRateLimited
    assert err.retry_after == 7.0
    assert err.message == "Backend 'up' is rate limiting requests: Rate limit reached for requests"
    assert (err.status, err.type, err.code, err.retryable) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        True,
    )
    assert error_headers(err) == [(b"retry-after", b"7")]


def test_429_with_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    err = mapped(429, b"", headers(retry_after=when))
    assert err.retry_after is not None
    assert 27.0 <= err.retry_after <= 30.0
    assert err.message == "Backend 'up' is rate limiting requests: HTTP 429"


def test_429_with_retry_after_ms() -> None:
    err = mapped(429, b"", headers(retry_after_ms="1500", retry_after="9"))
    assert err.retry_after == 1.5
    assert error_headers(err) == [(b"retry-after", b"2")]  # rounded up to whole seconds


def test_429_without_retry_after() -> None:
    err = mapped(429)
    assert err.retry_after is None
    assert error_headers(err) == []


def test_500() -> None:
    err = mapped(500, body("The server had an error; your key sk-xyz was fine"))
    assert type(err) is UpstreamError
    assert err.message == "Backend 'up' failed (HTTP 500)."  # the upstream's text is not kept
    assert (err.status, err.code, err.retryable) == (502, "upstream_error", True)


@pytest.mark.parametrize("status", [502, 520, 599])
def test_other_5xx(status: int) -> None:
    assert type(mapped(status)) is UpstreamError


@pytest.mark.parametrize("status", [503, 529])
def test_overloaded(status: int) -> None:
    err = mapped(status, body("overloaded"), headers(retry_after="3"))
    assert type(err) is UpstreamUnavailable
    assert err.message == f"Backend 'up' is unavailable (HTTP {status})."
    assert err.retry_after == 3.0
    assert (err.status, err.code, err.retryable) == (503, "upstream_unavailable", True)


def test_long_upstream_messages_are_cut() -> None:
    err = mapped(400, body("x" * 5000))
    assert err.message == "x" * 1000


# ------------------------------------------------------------------ parse_retry_after


@pytest.mark.parametrize(
    ("hdrs", "expected"),
    [
        (None, None),
        ({}, None),
        (headers(retry_after="0"), 0.0),
        (headers(retry_after="12"), 12.0),
        (headers(retry_after="2.5"), 2.5),
        (headers(retry_after="-4"), 0.0),
        (headers(retry_after=""), None),
        (headers(retry_after="soon"), None),
        (headers(retry_after_ms="250"), 0.25),
        (headers(retry_after_ms="-250"), 0.0),
        (headers(retry_after_ms="abc", retry_after="4"), 4.0),
        (headers(retry_after_ms="", retry_after="4"), 4.0),
        (headers(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), 0.0),  # in the past
    ],
)
def test_parse_retry_after(hdrs: Any, expected: float | None) -> None:
    assert parse_retry_after(hdrs) == expected


def test_parse_retry_after_future_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    value = parse_retry_after(headers(retry_after=when))
    assert value is not None and 117.0 <= value <= 120.0


@pytest.mark.parametrize("hdrs", [headers(retry_after="inf"), headers(retry_after_ms="1e400")])
def test_non_finite_retry_after_is_rejected(hdrs: dict[str, str]) -> None:
    value = parse_retry_after(hdrs)
    assert value is None or value < 1e9
    error_headers(UpstreamRateLimited("x", retry_after=value))
