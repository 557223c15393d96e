"""A client that goes away must make the gateway drop its upstream request too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest

from tests import rawhttp
from tests.e2e.support import CHAT_BODY, Gateway, assert_healthy
from tests.fakes import EndlessStream, FakeUpstream, Hang

DISCONNECT_TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def _gateway_survives(gateway: Gateway, upstream: FakeUpstream) -> Iterator[None]:
    yield
    assert_healthy(gateway, upstream)


def test_sdk_stream_closed_midway(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(EndlessStream(interval=0.05))
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True
    )
    for i, _chunk in enumerate(stream):
        if i == 3:
            break
    stream.close()
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.disconnected.wait(DISCONNECT_TIMEOUT), "upstream stream still open"


async def test_async_sdk_stream_closed_midway(
    aclient: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(EndlessStream(interval=0.05))
    stream = await aclient.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = 0
    async for _chunk in stream:
        seen += 1
        if seen == 3:
            break
    await stream.close()
    rec = upstream.last_request("/v1/chat/completions")
    assert await asyncio.to_thread(rec.disconnected.wait, DISCONNECT_TIMEOUT)


def test_raw_socket_closed_midway(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(EndlessStream(interval=0.05))
    with rawhttp.open_stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**CHAT_BODY, "stream": True},
        headers=gateway.auth_headers(),
        timeout=10,
    ) as resp:
        assert resp.status == 200
        data_lines = 0
        while data_lines < 3:
            line = resp.readline()
            assert line, "stream ended early"
            data_lines += line.startswith(b"data: ")
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.disconnected.wait(DISCONNECT_TIMEOUT)


def test_client_timeout_while_upstream_hangs(gateway: Gateway, upstream: FakeUpstream) -> None:
    """Not streaming: the client gives up after 1 s, long before the backend's 10 s deadline;
    the gateway should stop waiting for the upstream as well."""
    upstream.enqueue(Hang())
    with gateway.client(timeout=1.0) as c, pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    rec = upstream.wait_for_request("/v1/chat/completions")
    assert rec.disconnected.wait(DISCONNECT_TIMEOUT)
