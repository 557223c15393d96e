"""POST /api/v1/predict: the simple text-in / text-out endpoint, with raw HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.support import Gateway, assert_error
from tests.fakes import FakeUpstream


def assert_usage_is_upstreams(result: dict[str, Any], upstream: FakeUpstream) -> None:
    reported = upstream.last_request("/v1/chat/completions").response_usage
    assert reported is not None
    assert result["usage"] == {
        "prompt_tokens": reported["prompt_tokens"],
        "completion_tokens": reported["completion_tokens"],
        "total_tokens": reported["total_tokens"],
    }


def test_predict_with_default_model(gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = gateway.post("/api/v1/predict", {"input": "hello"})
    assert resp.status == 200, resp.text
    assert resp.content_type.startswith("application/json")
    assert resp.headers.get("x-request-id")
    body = resp.json()
    assert body["result"] == "echo: hello"
    assert body["model"] == "chat"
    assert isinstance(body["id"], str) and body["id"]
    assert body["usage"]["completion_tokens"] == 2
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    assert_usage_is_upstreams(body, upstream)

    rec = upstream.last_request("/v1/chat/completions")
    assert rec.json["model"] == "gpt-4o-mini"
    assert rec.json["messages"][-1] == {"role": "user", "content": "hello"}
    assert rec.json.get("stream") in (None, False)


def test_predict_with_explicit_model(gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = gateway.post("/api/v1/predict", {"input": "hi there", "model": "chat-literal-key"})
    assert resp.status == 200, resp.text
    body = resp.json()
    assert (body["result"], body["model"]) == ("echo: hi there", "chat-literal-key")
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o"
    assert_usage_is_upstreams(body, upstream)


def test_predict_forwards_generation_parameters(gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = gateway.post(
        "/api/v1/predict", {"input": "one two three", "max_tokens": 2, "temperature": 0.3}
    )
    assert resp.status == 200, resp.text
    body = resp.json()
    assert body["result"] == "echo: one"
    assert body["usage"]["completion_tokens"] == 2
    sent = upstream.last_request("/v1/chat/completions").json
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 2
    assert sent["temperature"] == 0.3


@pytest.mark.parametrize(
    "body",
    [{}, {"input": ""}, {"input": None}, {"model": "chat"}],
    ids=["no-input", "empty-input", "null-input", "model-only"],
)
def test_predict_without_input_is_400(gateway: Gateway, upstream: FakeUpstream, body: Any) -> None:
    assert_error(gateway.post("/api/v1/predict", body), 400, type="invalid_request_error")
    assert upstream.requests == []


@pytest.mark.parametrize("value", [123, ["hello"], {"text": "hello"}], ids=["int", "list", "obj"])
def test_predict_input_of_wrong_type_is_400(
    gateway: Gateway, upstream: FakeUpstream, value: Any
) -> None:
    resp = gateway.post("/api/v1/predict", {"input": value})
    assert_error(resp, 400, type="invalid_request_error", param="input")
    assert upstream.requests == []


def test_predict_invalid_json(gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = gateway.post("/api/v1/predict", data=b'{"input": "hello"')
    assert_error(resp, 400, type="invalid_request_error", code="invalid_json")
    assert upstream.requests == []


def test_predict_unknown_model(gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = gateway.post("/api/v1/predict", {"input": "hello", "model": "no-such-model"})
    assert_error(resp, 404, code="model_not_found", param="model")
    assert upstream.requests == []


def test_predict_bad_generation_parameter(gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = gateway.post("/api/v1/predict", {"input": "hello", "max_tokens": -1})
    assert_error(resp, 400, type="invalid_request_error", param="max_tokens")
    assert upstream.requests == []
