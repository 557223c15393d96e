"""The upstream connection itself, end to end: HTTPS backends (a private CA, tls_ca_file,
tls_verify), compressed upstream responses, and responses larger than the upstream client's
flow-control window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.support import (
    UPSTREAM_KEY,
    Gateway,
    assert_error,
    assert_no_traceback,
    backend,
    deployment,
    run_gateway,
)
from tests.fakes import FakeUpstream, fake_embedding
from tests.fakes.tls import Certs, make_certs

MESSAGES: list[Any] = [{"role": "user", "content": "through the tunnel"}]


# ------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certs() -> Certs:
    return make_certs()


@pytest.fixture(scope="module")
def tls_upstream(certs: Certs) -> Iterator[FakeUpstream]:
    with FakeUpstream(ssl_context=certs.server_context()) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def tls_gateway(
    tls_upstream: FakeUpstream, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Three backends on the same HTTPS upstream: trusting its CA (tls_ca_file), trusting only
    the system store, and not verifying at all."""
    workdir = tmp_path_factory.mktemp("tls-gateway")
    ca_file = certs.write_ca(workdir / "private-ca.pem")
    base = tls_upstream.base_url
    assert base.startswith("https://127.0.0.1:")
    config = {
        "default_model": "chat",
        "backends": {
            "tls": {**backend(base, UPSTREAM_KEY), "tls_ca_file": str(ca_file)},
            "untrusted": backend(base, UPSTREAM_KEY),
            "unverified": {**backend(base, UPSTREAM_KEY), "tls_verify": False},
        },
        "models": {
            "chat": deployment("tls", "gpt-4o-mini"),
            "chat-untrusted": deployment("untrusted", "gpt-4o-mini"),
            "chat-unverified": deployment("unverified", "gpt-4o-mini"),
        },
    }
    with run_gateway(workdir, config=config) as gw:
        yield gw


def chat_both_ways(gateway: Gateway, model: str) -> None:
    """A JSON and a streamed chat completion through ``model`` answer correctly."""
    with gateway.client() as client:
        completion = client.chat.completions.create(model=model, messages=MESSAGES)
        assert completion.choices[0].message.content == "echo: through the tunnel"
        assert completion.usage is not None and completion.usage.prompt_tokens == 3
        stream = client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "echo: through the tunnel"


def test_https_backend_with_tls_ca_file(tls_gateway: Gateway, tls_upstream: FakeUpstream) -> None:
    tls_upstream.reset()
    chat_both_ways(tls_gateway, "chat")
    requests = tls_upstream.requests_to("/v1/chat/completions")
    assert len(requests) == 2
    assert all(r.authorization == f"Bearer {UPSTREAM_KEY}" for r in requests)


def test_https_backend_with_an_untrusted_certificate_is_503(
    tls_gateway: Gateway, tls_upstream: FakeUpstream
) -> None:
    tls_upstream.reset()
    for stream in (False, True):
        body = {"model": "chat-untrusted", "messages": MESSAGES, "stream": stream}
        resp = tls_gateway.post("/v1/chat/completions", body)
        error = assert_error(resp, 503, code="upstream_unavailable")
        assert "certificate" in error["message"].lower() or "TLS" in error["message"]
        assert UPSTREAM_KEY not in resp.text
    assert tls_upstream.requests == [], "no HTTP request goes over an unverified connection"
    # the gateway is fine: the other backends still answer
    assert tls_gateway.get("/healthz", auth=False).status == 200
    chat_both_ways(tls_gateway, "chat")
    assert_no_traceback(tls_gateway.log())


def test_https_backend_with_tls_verify_off(
    tls_gateway: Gateway, tls_upstream: FakeUpstream
) -> None:
    tls_upstream.reset()
    chat_both_ways(tls_gateway, "chat-unverified")
    assert len(tls_upstream.requests_to("/v1/chat/completions")) == 2


# ----------------------------------------------------------------------- compression


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_upstream_responses(
    client: openai.OpenAI, gateway: Gateway, upstream: FakeUpstream, coding: str
) -> None:
    upstream.compression = coding
    completion = client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: through the tunnel"
    assert completion.usage is not None and completion.usage.total_tokens == 7
    assert upstream.last_request("/v1/chat/completions").content_encoding == coding

    stream = client.chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: through the tunnel"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert upstream.last_request("/v1/chat/completions").content_encoding == coding

    embedding = client.embeddings.create(model="embed", input="squeeze")
    assert embedding.data[0].embedding == fake_embedding("squeeze")
    assert upstream.last_request("/v1/embeddings").content_encoding == coding

    # what the gateway sends on is plain JSON, whatever the upstream's encoding was
    raw = gateway.post("/v1/chat/completions", {"model": "chat", "messages": MESSAGES})
    assert raw.status == 200
    assert raw.headers.get("content-encoding") is None
    assert raw.json()["choices"][0]["message"]["content"] == "echo: through the tunnel"


@pytest.mark.parametrize("coding", [None, "gzip"])
def test_upstream_response_larger_than_the_flow_control_window(
    client: openai.OpenAI, upstream: FakeUpstream, coding: str | None
) -> None:
    """1.4 MB of embeddings JSON, which the upstream client reads whole (not streamed)."""
    upstream.compression = coding
    inputs = [f"text number {i}" for i in range(200)]
    result = client.embeddings.create(
        model="embed", input=inputs, dimensions=512, encoding_format="float"
    )
    assert len(result.data) == 200
    assert result.data[123].embedding == fake_embedding("text number 123", 512)
    assert upstream.last_request("/v1/embeddings").content_encoding == coding
