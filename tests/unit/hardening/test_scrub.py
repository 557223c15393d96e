"""An upstream that repeats the gateway's credentials in its error text: they never reach the
caller. Through the real backend against the fake upstream, and on status_error itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes import FakeUpstream
from tests.fakes.upstream import ErrorStatus
from turnout.backends.base import BackendRequest, RequestContext
from turnout.backends.errors import REDACTED, status_error
from turnout.backends.openai_compat import OpenAICompatBackend
from turnout.config import BackendConfig
from turnout.exceptions import BackendError

KEY = "sk-scrub-test-0123456789"
TOKEN = "tok-scrub-test-abcdef"


@pytest.fixture
async def backend(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatBackend]:
    config = BackendConfig(
        base_url=upstream.base_url,
        api_key=KEY,
        headers={"X-Api-Token": TOKEN, "X-Team": "search"},
    )
    b = OpenAICompatBackend("fake", config)
    await b.start()
    yield b
    await b.aclose()


def request() -> BackendRequest:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return BackendRequest(body)


@pytest.mark.parametrize("status", [400, 404, 422, 429])
async def test_echoed_credentials_are_redacted(
    backend: OpenAICompatBackend, upstream: FakeUpstream, status: int
) -> None:
    echo = f"Bad key {KEY} with token {TOKEN} for team search"
    upstream.enqueue(ErrorStatus(status, message=echo))
    with pytest.raises(BackendError) as caught:
        await backend.chat(request(), RequestContext.create("r1", 10))
    message = caught.value.message
    assert KEY not in message and TOKEN not in message
    assert f"Bad key {REDACTED} with token {REDACTED} for team search" in message


def test_status_error_without_secrets_keeps_the_text() -> None:
    raw = b'{"error": {"message": "Bad key sk-123456"}}'
    assert "sk-123456" in status_error("b", 400, raw, {}).message
    assert "sk-123456" not in status_error("b", 400, raw, {}, ("sk-123456",)).message
