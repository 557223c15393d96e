"""Upstream failures map to documented gateway errors, and the gateway survives each one.

Faults are installed with ``upstream.failing(...)`` (every upstream request fails while the
block runs) so the expected status holds whether or not the gateway retries upstream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.support import Gateway, assert_error, assert_healthy, assert_no_traceback
from tests.fakes import (
    ErrorStatus,
    FakeUpstream,
    Fault,
    Hang,
    Html,
    ResetMidStream,
    SlowFirstByte,
    rate_limited,
)
from tests.rawhttp import RawResponse, sse_data

WORDS = "one two three four five six"


@pytest.fixture(autouse=True)
def _gateway_survives(gateway: Gateway, upstream: FakeUpstream) -> Iterator[None]:
    yield
    assert_healthy(gateway, upstream)


def chat(gateway: Gateway, model: str = "chat", **extra: Any) -> RawResponse:
    body = {"model": model, "messages": [{"role": "user", "content": WORDS}], **extra}
    return gateway.post("/v1/chat/completions", body)


def test_upstream_500_is_502(gateway: Gateway, upstream: FakeUpstream) -> None:
    with upstream.failing(ErrorStatus(500)):
        resp = chat(gateway)
    assert_error(resp, 502, type="api_error", code="upstream_error")
    assert upstream.requests_to("/v1/chat/completions")


def test_upstream_503_is_503(gateway: Gateway, upstream: FakeUpstream) -> None:
    with upstream.failing(ErrorStatus(503)):
        resp = chat(gateway)
    assert_error(resp, 503, code="upstream_unavailable")


def test_connection_refused_is_503(gateway: Gateway) -> None:
    assert_error(chat(gateway, model="chat-dead"), 503, code="upstream_unavailable")


def test_upstream_429_keeps_retry_after(gateway: Gateway, upstream: FakeUpstream) -> None:
    with upstream.failing(rate_limited(7)):
        resp = chat(gateway)
    assert_error(resp, 429, type="rate_limit_error")
    assert resp.headers.get("retry-after") == "7"


def test_upstream_400_is_passed_on(gateway: Gateway, upstream: FakeUpstream) -> None:
    message = "Invalid 'logit_bias': the fake upstream refuses it."
    with upstream.failing(ErrorStatus(400, message=message)):
        resp = chat(gateway)
    error = assert_error(resp, 400)
    assert message in error["message"]


def test_upstream_html_page_is_502(gateway: Gateway, upstream: FakeUpstream) -> None:
    with upstream.failing(Html()):
        resp = chat(gateway)
    error = assert_error(resp, 502, code="upstream_invalid_response")
    assert "<html" not in error["message"].lower()


def test_upstream_500_on_embeddings_is_502(gateway: Gateway, upstream: FakeUpstream) -> None:
    with upstream.failing(ErrorStatus(500)):
        resp = gateway.post("/v1/embeddings", {"model": "embed", "input": "x"})
    assert_error(resp, 502, type="api_error", code="upstream_error")


def test_upstream_hang_hits_the_total_deadline(gateway: Gateway, upstream: FakeUpstream) -> None:
    started = time.monotonic()
    with upstream.failing(Hang()):
        resp = chat(gateway, model="chat-deadline")  # backend timeout.total = 1.5 s
    elapsed = time.monotonic() - started
    assert_error(resp, 504, code="upstream_timeout")
    assert 1.0 <= elapsed < 8.0, f"504 after {elapsed:.1f} s, deadline is 1.5 s"
    # the gateway gave up on the upstream request: it closed the connection
    hung = upstream.requests_to("/v1/chat/completions")
    assert hung
    for rec in hung:
        assert rec.disconnected.wait(5), "the gateway left the timed-out upstream request open"


def test_slow_first_byte_within_the_limits_is_fine(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.enqueue(SlowFirstByte(0.5))
    resp = chat(gateway)
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == f"echo: {WORDS}"


SDK_CASES: dict[str, tuple[Fault, type[openai.APIStatusError], int]] = {
    "500": (ErrorStatus(500), openai.InternalServerError, 502),
    "503": (ErrorStatus(503), openai.InternalServerError, 503),
    "429": (rate_limited(7), openai.RateLimitError, 429),
    "400": (ErrorStatus(400), openai.BadRequestError, 400),
    "html": (Html(), openai.InternalServerError, 502),
}


@pytest.mark.parametrize(("fault", "exc_type", "status"), SDK_CASES.values(), ids=SDK_CASES.keys())
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_sdk_sees_mapped_errors(
    client: openai.OpenAI,
    upstream: FakeUpstream,
    fault: Fault,
    exc_type: type[openai.APIStatusError],
    status: int,
    stream: bool,
) -> None:
    """Also for ``stream=True``: the upstream failed before the first byte, so the gateway
    can still answer with a proper HTTP error status."""
    with upstream.failing(fault), pytest.raises(exc_type) as exc_info:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], stream=stream
        )
    assert exc_info.value.status_code == status
    assert exc_info.value.response.headers.get("x-request-id")
    assert_no_traceback(exc_info.value.message)


def test_sdk_sees_504_on_deadline(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with upstream.failing(Hang()), pytest.raises(openai.InternalServerError) as exc_info:
        client.chat.completions.create(
            model="chat-deadline", messages=[{"role": "user", "content": "x"}]
        )
    assert exc_info.value.status_code == 504
    assert exc_info.value.code == "upstream_timeout"


# --------------------------------------------------------- reset in mid-stream


def test_reset_mid_stream_raw(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(ResetMidStream(after_chunks=3))
    resp = chat(gateway, stream=True)
    assert resp.status == 200
    events = sse_data(resp.body)
    assert "[DONE]" not in events, "a broken stream must not look complete"
    *chunks, last = (json.loads(e) for e in events)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert set(last) == {"error"}, last
    assert isinstance(last["error"], dict)
    assert isinstance(last["error"].get("message"), str) and last["error"]["message"]
    assert_no_traceback(json.dumps(last))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert f"echo: {WORDS}".startswith(text)


def test_reset_mid_stream_sdk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(ResetMidStream(after_chunks=3))
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": WORDS}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as exc_info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    # an SSE error event, not a broken connection (which would be APIConnectionError)
    assert type(exc_info.value) is openai.APIError
    assert_no_traceback(exc_info.value.message)
    assert f"echo: {WORDS}".startswith("".join(received))


async def test_reset_mid_stream_async_sdk(
    aclient: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(ResetMidStream(after_chunks=2, rst=False))
    stream = await aclient.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": WORDS}], stream=True
    )
    with pytest.raises(openai.APIError) as exc_info:
        async for _chunk in stream:
            pass
    assert type(exc_info.value) is openai.APIError
