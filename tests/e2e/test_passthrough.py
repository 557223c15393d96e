"""No config file: OPENAI_API_KEY + OPENAI_BASE_URL register an ``openai`` backend, and
``openai/<model>`` passes through to the upstream as ``<model>``."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.support import Gateway, assert_error, run_gateway
from tests.fakes import FakeUpstream, fake_embedding

OPENAI_KEY = "sk-openai-from-env"


@pytest.fixture(scope="module")
def passthrough_gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("passthrough")  # no turnout.yaml in there
    env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": upstream_server.base_url}
    with run_gateway(workdir, config=None, env=env) as gw:
        yield gw


@pytest.fixture
def pclient(passthrough_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with passthrough_gateway.client() as c:
        yield c


@pytest.mark.parametrize("model", ["gpt-4o-mini", "some-future-model-2030"])
def test_provider_model_passes_through(
    pclient: openai.OpenAI, upstream: FakeUpstream, model: str
) -> None:
    resp = pclient.chat.completions.create(
        model=f"openai/{model}", messages=[{"role": "user", "content": "via env"}]
    )
    assert resp.choices[0].message.content == "echo: via env"
    assert resp.usage is not None and resp.usage.total_tokens == 5
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.json["model"] == model
    assert rec.authorization == f"Bearer {OPENAI_KEY}"


def test_provider_model_stream(pclient: openai.OpenAI, upstream: FakeUpstream) -> None:
    chunks = list(
        pclient.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "streamed"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: streamed"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 3
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o-mini"


def test_provider_embeddings(pclient: openai.OpenAI, upstream: FakeUpstream) -> None:
    resp = pclient.embeddings.create(model="openai/text-embedding-3-small", input="vec")
    assert resp.data[0].embedding == fake_embedding("vec")
    assert upstream.last_request("/v1/embeddings").json["model"] == "text-embedding-3-small"


def test_predict_with_provider_model(passthrough_gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = passthrough_gateway.post(
        "/api/v1/predict", {"input": "hello", "model": "openai/gpt-4o-mini"}
    )
    assert resp.status == 200, resp.text
    assert resp.json()["result"] == "echo: hello"
    assert resp.json()["model"] == "openai/gpt-4o-mini"
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o-mini"


def test_unknown_provider_is_404(passthrough_gateway: Gateway, upstream: FakeUpstream) -> None:
    body = {"model": "nosuchprovider/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    resp = passthrough_gateway.post("/v1/chat/completions", body)
    assert_error(resp, 404, code="model_not_found", param="model")
    assert upstream.requests == []


def test_master_key_still_required(passthrough_gateway: Gateway, upstream: FakeUpstream) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    resp = passthrough_gateway.post("/v1/chat/completions", body, auth=False)
    assert_error(resp, 401, code="invalid_api_key")
    assert upstream.requests == []
