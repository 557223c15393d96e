"""Master-key auth, upstream credentials, and x-request-id on every response."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests import rawhttp
from tests.e2e.support import (
    CHAT_BODY,
    LITERAL_KEY,
    MASTER_KEY,
    UPSTREAM_KEY,
    Gateway,
    assert_error,
)
from tests.fakes import FakeUpstream

PROTECTED: list[tuple[str, str, Any]] = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/chat", None),
    ("POST", "/v1/chat/completions", CHAT_BODY),
    ("POST", "/v1/completions", {"model": "chat", "prompt": "hi"}),
    ("POST", "/v1/embeddings", {"model": "embed", "input": "hi"}),
    ("POST", "/api/v1/predict", {"input": "hello"}),
]
BAD_CREDENTIALS = {
    "missing": {},
    "wrong-key": {"Authorization": "Bearer sk-wrong"},
    "no-scheme": {"Authorization": MASTER_KEY},
    "basic-scheme": {"Authorization": "Basic c2stdGVzdC1tYXN0ZXI6"},
    "empty-bearer": {"Authorization": "Bearer "},
    "key-prefix": {"Authorization": f"Bearer {MASTER_KEY[:-1]}"},
}


def send(gateway: Gateway, method: str, path: str, body: Any, **kwargs: Any) -> Any:
    if method == "GET":
        return gateway.get(path, **kwargs)
    return gateway.post(path, body, **kwargs)


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[p for _, p, _ in PROTECTED])
def test_protected_endpoints_reject_missing_or_wrong_key(
    gateway: Gateway,
    upstream: FakeUpstream,
    credentials: dict[str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    resp = send(gateway, method, path, body, auth=False, headers=credentials)
    error = assert_error(
        resp, 401, type="invalid_request_error", code="invalid_api_key", param=None
    )
    assert MASTER_KEY not in error["message"]
    assert upstream.requests == []


def test_sdk_with_wrong_key_raises_authentication_error(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    with gateway.client(api_key="sk-not-the-master-key") as c:
        with pytest.raises(openai.AuthenticationError) as exc_info:
            c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        assert exc_info.value.code == "invalid_api_key"
        assert exc_info.value.type == "invalid_request_error"
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
    assert upstream.requests == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_need_no_key(gateway: Gateway, path: str) -> None:
    resp = gateway.get(path, auth=False)
    assert resp.status == 200
    assert resp.headers.get("x-request-id")


def test_upstream_gets_the_backend_key_never_the_master_key(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    client.embeddings.create(model="embed", input="x")
    client.chat.completions.create(
        model="chat-literal-key", messages=[{"role": "user", "content": "x"}]
    )
    chat, embed, literal = upstream.requests
    assert chat.authorization == f"Bearer {UPSTREAM_KEY}"
    assert embed.authorization == f"Bearer {UPSTREAM_KEY}"
    assert literal.authorization == f"Bearer {LITERAL_KEY}"
    for rec in upstream.requests:
        leaked = {k: v for k, v in rec.headers.items() if MASTER_KEY in v}
        assert leaked == {}, f"master key forwarded upstream in {leaked}"


# ------------------------------------------------------------------ x-request-id

SAFE_ID = "req-Abc_123.xyz"

EVERY_KIND_OF_RESPONSE: dict[str, tuple[str, str, Any, bool]] = {
    "healthz": ("GET", "/healthz", None, False),
    "readyz": ("GET", "/readyz", None, False),
    "models": ("GET", "/v1/models", None, True),
    "model": ("GET", "/v1/models/chat", None, True),
    "chat": ("POST", "/v1/chat/completions", CHAT_BODY, True),
    "chat-stream": ("POST", "/v1/chat/completions", {**CHAT_BODY, "stream": True}, True),
    "completions": ("POST", "/v1/completions", {"model": "chat", "prompt": "hi"}, True),
    "embeddings": ("POST", "/v1/embeddings", {"model": "embed", "input": "hi"}, True),
    "predict": ("POST", "/api/v1/predict", {"input": "hello"}, True),
    "401": ("POST", "/v1/chat/completions", CHAT_BODY, False),
    "400-invalid-json": ("POST", "/v1/chat/completions", b"{oops", True),
    "400-validation": ("POST", "/v1/chat/completions", {"model": "chat", "messages": []}, True),
    "404-unknown-model": ("POST", "/v1/chat/completions", {**CHAT_BODY, "model": "nope"}, True),
    "404-unknown-route": ("GET", "/v1/no-such-endpoint", None, True),
}


def send_any(
    gateway: Gateway, method: str, path: str, body: Any, auth: bool, **kwargs: Any
) -> rawhttp.RawResponse:
    if isinstance(body, bytes):
        return gateway.post(path, data=body, auth=auth, **kwargs)
    return send(gateway, method, path, body, auth=auth, **kwargs)


@pytest.mark.parametrize(
    ("method", "path", "body", "auth"),
    EVERY_KIND_OF_RESPONSE.values(),
    ids=EVERY_KIND_OF_RESPONSE.keys(),
)
def test_every_response_has_a_request_id_and_echoes_a_safe_one(
    gateway: Gateway, method: str, path: str, body: Any, auth: bool
) -> None:
    generated = send_any(gateway, method, path, body, auth)
    assert generated.headers.get("x-request-id"), generated.status

    echoed = send_any(gateway, method, path, body, auth, headers={"x-request-id": SAFE_ID})
    assert echoed.status == generated.status
    assert echoed.headers.get("x-request-id") == SAFE_ID


def test_generated_request_ids_are_unique(gateway: Gateway) -> None:
    ids = {gateway.get("/v1/models").headers.get("x-request-id") for _ in range(5)}
    assert len(ids) == 5


def test_client_request_id_wins_over_the_upstream_one(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # the fake upstream answers with its own x-request-id (req_fake...), like OpenAI does
    resp = gateway.post("/v1/chat/completions", CHAT_BODY, headers={"X-Request-Id": SAFE_ID})
    assert resp.status == 200
    assert resp.headers.get_all("x-request-id") == [SAFE_ID]


def test_request_id_of_exactly_128_safe_chars_is_echoed(gateway: Gateway) -> None:
    rid = "a1-_." * 25 + "xyz"
    assert len(rid) == 128
    assert gateway.get("/healthz", headers={"x-request-id": rid}).headers["x-request-id"] == rid


@pytest.mark.parametrize(
    "bad_id",
    ["a" * 129, "has space", "semi;colon", 'quote"d', "new\tline"],
    ids=["129-chars", "space", "semicolon", "quote", "tab"],
)
def test_unsafe_request_id_is_replaced(gateway: Gateway, bad_id: str) -> None:
    resp = gateway.get("/v1/models", headers={"x-request-id": bad_id})
    assert resp.status == 200
    rid = resp.headers.get("x-request-id")
    assert rid and rid != bad_id
    assert len(rid) <= 128
