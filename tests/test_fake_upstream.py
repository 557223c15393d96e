"""The fake upstream speaks OpenAI's wire format: proven with the official openai SDK."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterator

import openai
import pytest

from tests import rawhttp
from tests.fakes import (
    EndlessStream,
    ErrorStatus,
    FakeUpstream,
    Hang,
    Html,
    ResetMidStream,
    SlowFirstByte,
    fake_embedding,
    rate_limited,
)

KEY = "sk-upstream-direct"


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0) as c:
        yield c


# ------------------------------------------------------------------------ chat


def test_chat_completion_json(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Say hello world"},
        ],
    )
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini"
    assert isinstance(resp.created, int)
    [choice] = resp.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: Say hello world"
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 4)
    assert resp.usage.total_tokens == 9

    rec = upstream.last_request("/v1/chat/completions")
    assert rec.method == "POST"
    assert rec.authorization == f"Bearer {KEY}"
    assert rec.json["model"] == "gpt-4o-mini"
    assert rec.json["messages"][-1] == {"role": "user", "content": "Say hello world"}
    assert rec.status == 200
    assert rec.response_usage is not None and rec.response_usage["total_tokens"] == 9


def test_chat_max_tokens_and_n(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "one two three four"}],
        max_tokens=3,
        n=2,
    )
    assert [c.index for c in resp.choices] == [0, 1]
    for choice in resp.choices:
        assert choice.message.content == "echo: one two"
        assert choice.finish_reason == "length"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (4, 6)


def test_chat_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "echo: stream me"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, 3)
    assert all(c.usage is None for c in body)


def test_chat_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_chat_stream_wire_format(upstream: FakeUpstream) -> None:
    resp = rawhttp.request(
        "POST",
        f"{upstream.base_url}/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "a b"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert resp.status == 200
    assert resp.content_type.startswith("text/event-stream")
    assert resp.body.startswith(b"data: {")
    assert resp.body.endswith(b"\n\ndata: [DONE]\n\n")
    events = rawhttp.sse_data(resp.body)
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"]["total_tokens"] == 5
    assert all(p["usage"] is None for p in parsed[:-1])


# ------------------------------------------------------------ other endpoints


def test_completions_json_and_stream(client: openai.OpenAI) -> None:
    resp = client.completions.create(model="gpt-4o-mini", prompt="Say hi")
    assert resp.object == "text_completion"
    assert resp.choices[0].text == "echo: Say hi"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 3)

    chunks = list(
        client.completions.create(
            model="gpt-4o-mini",
            prompt="Say hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: Say hi"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5


def test_embeddings_sdk_default_is_base64(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    resp = client.embeddings.create(model="text-embedding-3-small", input="hello there")
    assert upstream.last_request("/v1/embeddings").json["encoding_format"] == "base64"
    assert resp.object == "list"
    assert resp.model == "text-embedding-3-small"
    [item] = resp.data
    assert item.object == "embedding" and item.index == 0
    assert item.embedding == fake_embedding("hello there")
    assert (resp.usage.prompt_tokens, resp.usage.total_tokens) == (2, 2)


def test_embeddings_float_list_and_dimensions(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(
        model="text-embedding-3-small",
        input=["first", "second one"],
        encoding_format="float",
        dimensions=4,
    )
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[0].embedding == fake_embedding("first", 4)
    assert resp.data[1].embedding == fake_embedding("second one", 4)
    assert resp.usage.prompt_tokens == 3


def test_embeddings_base64_wire_format(upstream: FakeUpstream) -> None:
    resp = rawhttp.request(
        "POST",
        f"{upstream.base_url}/embeddings",
        json={"model": "m", "input": "x", "encoding_format": "base64"},
    )
    encoded = resp.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == fake_embedding("x")


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    model = client.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "system")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_invalid_requests_get_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert exc_info.value.param == "messages"


# ---------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_error_status_fault(
    client: openai.OpenAI, upstream: FakeUpstream, status: int, exc_type: type[Exception]
) -> None:
    upstream.enqueue(ErrorStatus(status, message=f"scripted {status}"))
    with pytest.raises(exc_type) as exc_info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert isinstance(exc_info.value, openai.APIStatusError)
    assert exc_info.value.status_code == status
    assert exc_info.value.message.endswith(f"scripted {status}")
    # the fault was used up: back to normal
    assert client.models.list().data
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert [r.status for r in upstream.requests] == [status, 200, 200]


def test_rate_limited_fault_has_retry_after(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(rate_limited(7))
    with pytest.raises(openai.RateLimitError) as exc_info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert exc_info.value.response.headers["retry-after"] == "7"
    assert exc_info.value.code == "rate_limit_exceeded"


def test_html_fault(upstream: FakeUpstream) -> None:
    upstream.enqueue(Html())
    resp = rawhttp.request(
        "POST",
        f"{upstream.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status == 200
    assert resp.content_type.startswith("text/html")
    assert resp.body.startswith(b"<html>")


def test_faults_are_consumed_in_order_and_filtered_by_path(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(ErrorStatus(500), ErrorStatus(503), path="/embeddings")
    client.models.list()  # a GET never consumes a fault
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert upstream.pending_faults() == 2
    for status in (500, 503):
        with pytest.raises(openai.APIStatusError) as exc_info:
            client.embeddings.create(model="e", input="x")
        assert exc_info.value.status_code == status
    client.embeddings.create(model="e", input="x")
    assert upstream.pending_faults() == 0


def test_failing_applies_until_the_block_exits(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with upstream.failing(ErrorStatus(503)):
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                client.embeddings.create(model="e", input="x")
    client.embeddings.create(model="e", input="x")


def test_hang_observes_the_client_going_away(upstream: FakeUpstream) -> None:
    upstream.enqueue(Hang())
    with (
        openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0, timeout=0.5) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    rec = upstream.wait_for_disconnect(timeout=5)
    assert rec.path == "/v1/chat/completions"
    assert rec.status is None
    assert upstream.disconnect_count == 1


def test_slow_first_byte(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(SlowFirstByte(0.4))
    started = time.monotonic()
    resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started >= 0.4
    assert resp.choices[0].message.content == "echo: x"


def test_reset_mid_stream(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(ResetMidStream(after_chunks=2))
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "echo:"]
    rec = upstream.last_request()
    assert rec.server_reset and rec.chunks_sent == 2
    assert rec.finished.wait(5)
    assert not rec.disconnected.is_set()


def test_reset_mid_json_body(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(ResetMidStream(rst=False))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_endless_stream_observes_client_disconnect(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(EndlessStream(interval=0.02))
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    for i, _chunk in enumerate(stream):
        if i == 5:
            break
    stream.close()
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.disconnected.wait(5)
    assert rec.chunks_sent >= 6


async def test_async_client_against_the_fake(upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0) as c:
        resp = await c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "async"}]
        )
        assert resp.choices[0].message.content == "echo: async"
        stream = await c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "async"}], stream=True
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
        assert text == "echo: async"
