"""Bad requests, sent as raw HTTP: the gateway answers OpenAI error objects itself and
never bothers the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests import rawhttp
from tests.e2e.support import Gateway, assert_error, assert_healthy
from tests.fakes import FakeUpstream

MSGS = [{"role": "user", "content": "hi"}]
POST_ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/v1/predict"]


@pytest.fixture(autouse=True)
def _upstream_untouched(upstream: FakeUpstream) -> Iterator[None]:
    yield
    assert upstream.requests == [], "an invalid request must not reach the upstream"


@pytest.mark.parametrize(
    "data",
    [b"{not json", b'{"model": "chat",', b"", b"\xff\xfe{}", b"{'model': 'chat'}"],
    ids=["garbage", "truncated", "empty", "not-utf8", "single-quotes"],
)
@pytest.mark.parametrize("path", POST_ENDPOINTS)
def test_invalid_json(gateway: Gateway, path: str, data: bytes) -> None:
    resp = gateway.post(path, data=data)
    assert_error(resp, 400, type="invalid_request_error", code="invalid_json")


@pytest.mark.parametrize("data", [b"[]", b'"chat"', b"42", b"null"])
@pytest.mark.parametrize("path", POST_ENDPOINTS)
def test_json_that_is_not_an_object(gateway: Gateway, path: str, data: bytes) -> None:
    assert_error(gateway.post(path, data=data), 400, type="invalid_request_error")


CHAT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "messages-string": ({"model": "chat", "messages": "hello"}, "messages"),
    "messages-empty": ({"model": "chat", "messages": []}, "messages"),
    "messages-missing": ({"model": "chat"}, "messages"),
    "temperature-string": (
        {"model": "chat", "messages": MSGS, "temperature": "hot"},
        "temperature",
    ),
    "max_tokens-negative": ({"model": "chat", "messages": MSGS, "max_tokens": -1}, "max_tokens"),
    "max_tokens-2**31": ({"model": "chat", "messages": MSGS, "max_tokens": 2**31}, "max_tokens"),
    "max_tokens-string": ({"model": "chat", "messages": MSGS, "max_tokens": "10"}, "max_tokens"),
    "n-zero": ({"model": "chat", "messages": MSGS, "n": 0}, "n"),
    "model-missing": ({"messages": MSGS}, "model"),
    "model-not-a-string": ({"model": 5, "messages": MSGS}, "model"),
}


@pytest.mark.parametrize(("body", "param"), CHAT_CASES.values(), ids=CHAT_CASES.keys())
def test_chat_validation(gateway: Gateway, body: dict[str, Any], param: str) -> None:
    resp = gateway.post("/v1/chat/completions", body)
    assert_error(resp, 400, type="invalid_request_error", param=param)


def test_chat_validation_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.chat.completions.create(model="chat", messages=MSGS, max_tokens=-1)
    assert exc_info.value.param == "max_tokens"
    assert exc_info.value.type == "invalid_request_error"


OTHER_CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "completions-model-missing": ("/v1/completions", {"prompt": "hi"}, "model"),
    "completions-max_tokens": (
        "/v1/completions",
        {"model": "chat", "prompt": "hi", "max_tokens": -1},
        "max_tokens",
    ),
    "embeddings-model-missing": ("/v1/embeddings", {"input": "hi"}, "model"),
}


@pytest.mark.parametrize(("path", "body", "param"), OTHER_CASES.values(), ids=OTHER_CASES.keys())
def test_other_endpoints_validation(
    gateway: Gateway, path: str, body: dict[str, Any], param: str
) -> None:
    assert_error(gateway.post(path, body), 400, type="invalid_request_error", param=param)


UNKNOWN_MODEL = {
    "/v1/chat/completions": {"model": "no-such-model", "messages": MSGS},
    "/v1/completions": {"model": "no-such-model", "prompt": "hi"},
    "/v1/embeddings": {"model": "no-such-model", "input": "hi"},
}


@pytest.mark.parametrize(("path", "body"), UNKNOWN_MODEL.items(), ids=UNKNOWN_MODEL.keys())
def test_unknown_model_is_404(gateway: Gateway, path: str, body: dict[str, Any]) -> None:
    error = assert_error(gateway.post(path, body), 404, code="model_not_found", param="model")
    assert error["type"] == "invalid_request_error"


def test_unknown_model_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc_info:
        client.chat.completions.create(model="no-such-model", messages=MSGS)
    assert exc_info.value.code == "model_not_found"


# ------------------------------------------------------------------ body size

TWENTY_MB = 20 * 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_413(
    gateway: Gateway, upstream: FakeUpstream, chunked: bool
) -> None:
    resp = rawhttp.send_large_body(
        gateway.url + "/v1/chat/completions",
        prefix=b'{"model": "chat", "messages": [{"role": "user", "content": "',
        filler_size=TWENTY_MB,
        suffix=b'"}]}',
        headers=gateway.auth_headers({"Content-Type": "application/json"}),
        chunked=chunked,
    )
    assert_error(resp, 413, code="request_too_large")
    assert_healthy(gateway, upstream)
