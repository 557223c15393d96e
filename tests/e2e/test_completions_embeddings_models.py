"""POST /v1/completions, POST /v1/embeddings, GET /v1/models through the gateway."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from tests.e2e.support import MAIN_MODELS, Gateway, assert_error
from tests.fakes import FakeUpstream, fake_embedding

# ------------------------------------------------------------------ completions


def test_completions_json(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    resp = client.completions.create(model="chat", prompt="Say hi", max_tokens=10)
    assert resp.object == "text_completion"
    [choice] = resp.choices
    assert choice.text == "echo: Say hi"
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 3)
    assert resp.usage.total_tokens == 5
    rec = upstream.last_request("/v1/completions")
    assert rec.json["model"] == "gpt-4o-mini"
    assert rec.json["prompt"] == "Say hi"
    assert rec.json["max_tokens"] == 10


def test_completions_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="chat",
            prompt="stream it",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: stream it"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)


async def test_async_completions(aclient: openai.AsyncOpenAI) -> None:
    resp = await aclient.completions.create(model="chat", prompt="async prompt")
    assert resp.choices[0].text == "echo: async prompt"


# ------------------------------------------------------------------- embeddings


def test_embeddings_sdk_default_base64(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    resp = client.embeddings.create(model="embed", input="hello embeddings")
    [item] = resp.data
    assert item.index == 0
    assert item.embedding == fake_embedding("hello embeddings")
    assert (resp.usage.prompt_tokens, resp.usage.total_tokens) == (2, 2)
    rec = upstream.last_request("/v1/embeddings")
    assert rec.json["model"] == "text-embedding-3-small"
    assert rec.json["input"] == "hello embeddings"


def test_embeddings_float_list_input_and_dimensions(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    resp = client.embeddings.create(
        model="embed", input=["alpha", "beta gamma"], encoding_format="float", dimensions=4
    )
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[0].embedding == fake_embedding("alpha", 4)
    assert resp.data[1].embedding == fake_embedding("beta gamma", 4)
    assert resp.usage.prompt_tokens == 3
    body = upstream.last_request("/v1/embeddings").json
    assert body["dimensions"] == 4
    assert body["input"] == ["alpha", "beta gamma"]


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_wire_format(gateway: Gateway, encoding: str) -> None:
    resp = gateway.post(
        "/v1/embeddings", {"model": "embed", "input": "wire", "encoding_format": encoding}
    )
    assert resp.status == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    [item] = body["data"]
    assert item["object"] == "embedding"
    if encoding == "float":
        assert item["embedding"] == fake_embedding("wire")
    else:
        assert isinstance(item["embedding"], str)
        decoded = struct.unpack("<8f", base64.b64decode(item["embedding"]))
        assert list(decoded) == fake_embedding("wire")


async def test_async_embeddings(aclient: openai.AsyncOpenAI) -> None:
    resp = await aclient.embeddings.create(model="embed", input="async vec")
    assert resp.data[0].embedding == fake_embedding("async vec")


# ----------------------------------------------------------------------- models


def test_models_list(client: openai.OpenAI, gateway: Gateway) -> None:
    models = list(client.models.list())
    assert {m.id for m in models} == MAIN_MODELS
    assert all(m.object == "model" for m in models)
    raw = gateway.get("/v1/models").json()
    assert raw["object"] == "list"
    assert {m["id"] for m in raw["data"]} == MAIN_MODELS


def test_models_retrieve(client: openai.OpenAI) -> None:
    model = client.models.retrieve("chat")
    assert (model.id, model.object) == ("chat", "model")


def test_models_retrieve_unknown(client: openai.OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    assert_error(gateway.get("/v1/models/no-such-model"), 404, code="model_not_found")
