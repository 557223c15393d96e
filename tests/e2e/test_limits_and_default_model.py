"""A gateway with a small ``server.max_body_bytes`` and a single model, no ``default_model``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.support import (
    UPSTREAM_KEY,
    Gateway,
    assert_error,
    backend,
    deployment,
    run_gateway,
)
from tests.fakes import FakeUpstream

MAX_BODY = 4096


@pytest.fixture(scope="module")
def small_gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    config = {
        "server": {"max_body_bytes": MAX_BODY},
        "backends": {"fake": backend(upstream_server.base_url, "env:FAKE_UPSTREAM_KEY")},
        "models": {"solo": deployment("fake", "gpt-4o-mini")},
    }
    workdir = tmp_path_factory.mktemp("small-gateway")
    with run_gateway(workdir, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


def chat_body_of_size(size: int) -> bytes:
    """A valid chat request of exactly ``size`` bytes."""
    empty = json.dumps({"model": "solo", "messages": [{"role": "user", "content": ""}]})
    filler = " ".join(["w"] * ((size - len(empty)) // 2))
    body = json.dumps({"model": "solo", "messages": [{"role": "user", "content": filler}]})
    body += " " * (size - len(body))
    assert len(body) == size
    return body.encode()


def test_predict_uses_the_only_model(small_gateway: Gateway, upstream: FakeUpstream) -> None:
    resp = small_gateway.post("/api/v1/predict", {"input": "hello"})
    assert resp.status == 200, resp.text
    assert (resp.json()["result"], resp.json()["model"]) == ("echo: hello", "solo")
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o-mini"


def test_models_list_has_only_the_configured_model(small_gateway: Gateway) -> None:
    resp = small_gateway.get("/v1/models")
    assert [m["id"] for m in resp.json()["data"]] == ["solo"]


@pytest.mark.parametrize("size", [MAX_BODY - 96, MAX_BODY])
def test_body_within_the_limit(small_gateway: Gateway, upstream: FakeUpstream, size: int) -> None:
    resp = small_gateway.post("/v1/chat/completions", data=chat_body_of_size(size))
    assert resp.status == 200, resp.text
    assert upstream.requests_to("/v1/chat/completions")


@pytest.mark.parametrize("size", [MAX_BODY + 1, 4 * MAX_BODY])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/predict"])
def test_body_over_the_configured_limit(
    small_gateway: Gateway, upstream: FakeUpstream, size: int, path: str
) -> None:
    body: Any = chat_body_of_size(size)
    if path == "/api/v1/predict":
        body = json.dumps({"input": "x" * size}).encode()
    assert_error(small_gateway.post(path, data=body), 413, code="request_too_large")
    assert upstream.requests == []
    assert small_gateway.get("/healthz", auth=False).status == 200
