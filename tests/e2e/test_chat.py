"""POST /v1/chat/completions through the gateway, with the sync and async openai SDK."""

from __future__ import annotations

import asyncio
import json

import openai

from tests import rawhttp
from tests.e2e.support import CHAT_BODY, Gateway
from tests.fakes import FakeUpstream

PUBLIC_OR_UPSTREAM = {"chat", "gpt-4o-mini"}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_json(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello"},
    ]
    resp = client.chat.completions.create(model="chat", messages=messages)

    assert resp.object == "chat.completion"
    assert resp.id
    assert resp.model in PUBLIC_OR_UPSTREAM
    [choice] = resp.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: Say hello"
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 5  # "You are terse." + "Say hello"
    assert resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == 8

    [rec] = upstream.requests_to("/v1/chat/completions")
    assert rec.method == "POST"
    assert rec.json["model"] == "gpt-4o-mini"
    assert rec.json["messages"] == messages
    assert rec.json.get("stream") in (None, False)


def test_unknown_fields_and_sampling_params_reach_the_upstream_unchanged(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    extension = {"a": [1, 2.5, {"b": None}], "c": "ü"}
    client.chat.completions.create(
        model="chat",
        messages=user("x"),
        temperature=0.25,
        top_p=0.5,
        seed=42,
        stop=["\n\n"],
        user="user-17",
        extra_body={"foo_extension": 1, "nested_extension": extension},
    )
    body = upstream.last_request("/v1/chat/completions").json
    assert body["foo_extension"] == 1
    assert body["nested_extension"] == extension
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.25, 0.5, 42)
    assert body["stop"] == ["\n\n"]
    assert body["user"] == "user-17"
    assert body["model"] == "gpt-4o-mini"


def test_deployment_model_name_is_what_the_upstream_sees(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    resp = client.chat.completions.create(model="chat-literal-key", messages=user("x"))
    assert resp.choices[0].message.content == "echo: x"
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o"


def test_n_and_max_tokens(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    resp = client.chat.completions.create(
        model="chat", messages=user("one two three"), n=2, max_tokens=2
    )
    assert [c.index for c in resp.choices] == [0, 1]
    assert [c.message.content for c in resp.choices] == ["echo: one", "echo: one"]
    assert [c.finish_reason for c in resp.choices] == ["length", "length"]
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (3, 4)
    body = upstream.last_request("/v1/chat/completions").json
    assert (body["n"], body["max_tokens"]) == (2, 2)


def test_content_parts_pass_through(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    parts = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    resp = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": parts}],
    )
    assert resp.choices[0].message.content == "echo: part one part two"
    assert upstream.last_request("/v1/chat/completions").json["messages"][0]["content"] == parts


def test_chat_stream_without_usage(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    chunks = list(
        client.chat.completions.create(model="chat", messages=user("stream this"), stream=True)
    )
    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.choices for c in chunks), "no usage-only chunk unless include_usage"
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: stream this"
    finish = [c.choices[0].finish_reason for c in chunks]
    assert finish[-1] == "stop" and set(finish[:-1]) <= {None}
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.json["stream"] is True
    assert rec.json["model"] == "gpt-4o-mini"


def test_chat_stream_with_include_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=user("count these words"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *content_chunks, last = chunks
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == (
        "echo: count these words"
    )
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 3
    assert last.usage.completion_tokens == 4
    assert last.usage.total_tokens == 7
    assert all(c.usage is None for c in content_chunks)


def test_chat_stream_wire_format(gateway: Gateway) -> None:
    resp = gateway.post("/v1/chat/completions", {**CHAT_BODY, "stream": True})
    assert resp.status == 200
    assert resp.content_type.startswith("text/event-stream")
    assert resp.headers.get("x-request-id")
    events = rawhttp.sse_data(resp.body)
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: Say hi"
    for line in resp.body.split(b"\n"):
        assert line == b"" or line.startswith((b"data: ", b":")), line


async def test_async_chat_json(aclient: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    resp = await aclient.chat.completions.create(model="chat", messages=user("async hello"))
    assert resp.choices[0].message.content == "echo: async hello"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 3)
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o-mini"


async def test_async_chat_stream_with_usage(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="chat",
        messages=user("async stream"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: async stream"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5


async def test_concurrent_requests_do_not_mix(
    aclient: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    async def ask(i: int) -> str | None:
        if i % 2:
            stream = await aclient.chat.completions.create(
                model="chat", messages=user(f"question {i}"), stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream])
        resp = await aclient.chat.completions.create(model="chat", messages=user(f"question {i}"))
        return resp.choices[0].message.content

    answers = await asyncio.gather(*(ask(i) for i in range(24)))
    assert answers == [f"echo: question {i}" for i in range(24)]
    assert len(upstream.requests_to("/v1/chat/completions")) == 24
