"""turnout.Gateway in-process against the fake upstream: default model, deadline, fallback
through a real OpenAI-compatible backend, and the request record written for each request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import free_port
from tests.fakes import FakeUpstream
from tests.storage.support import sqlite_url, stored_requests
from tests.unit.support import write_config
from turnout import ConfigError, Gateway, InvalidRequest, ModelNotFound, load_config
from turnout.config import Config
from turnout.exceptions import UpstreamUnavailable


def make_config(isolated: Path, upstream: FakeUpstream, **extra: Any) -> Config:
    content: dict[str, Any] = {
        "server": {"data_dir": str(isolated / "data")},
        "backends": {
            "fake": {"base_url": upstream.base_url, "timeout": {"total": 20}},
            "dead": {
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "timeout": {"connect": 1, "total": 5},
            },
        },
        "models": {
            "chat": {"deployments": [{"backend": "fake", "model": "gpt-4o-mini"}]},
            "resilient": {
                "deployments": [
                    {"backend": "dead", "model": "gpt-4o", "weight": 1},
                    {"backend": "fake", "model": "gpt-4o", "weight": 0},
                ]
            },
        },
        **extra,
    }
    return load_config(write_config(isolated / "gw.yaml", content), env={})


def down_config(isolated: Path, upstream: FakeUpstream) -> Config:
    """Only model ``down``: one deployment on the backend nothing listens for."""
    config = make_config(isolated, upstream)
    model = config.models["resilient"]
    down = model.model_copy(update={"deployments": model.deployments[:1]})
    return config.model_copy(update={"models": {"down": down}})


def records(isolated: Path) -> list[dict[str, Any]]:
    path = isolated / "data" / "turnout.db"
    return stored_requests(sqlite_url(path)) if path.exists() else []


async def test_predict_writes_one_record_and_metrics(
    isolated: Path, upstream: FakeUpstream
) -> None:
    config = make_config(isolated, upstream, default_model="chat")
    async with Gateway(config) as gateway:
        assert gateway.started
        assert await gateway.predict("hello there") == "echo: hello there"
        metrics = gateway.metrics.render().decode()
    assert not gateway.started
    usage = upstream.last_request("/v1/chat/completions").response_usage
    assert usage is not None
    [record] = records(isolated)
    assert {k: record[k] for k in ("endpoint", "model", "backend", "upstream_model")} == {
        "endpoint": "predict",
        "model": "chat",
        "backend": "fake",
        "upstream_model": "gpt-4o-mini",
    }
    assert (record["status"], record["error_code"], record["attempts"]) == (200, None, 1)
    assert record["stream"] is False
    assert record["prompt_tokens"] == usage["prompt_tokens"]
    assert record["completion_tokens"] == usage["completion_tokens"] == 3
    assert record["latency"] > 0
    assert record["request_id"].startswith("lib-")
    assert (
        'turnout_requests_total{backend="fake",endpoint="predict",model="chat",status="200"} 1.0'
        in metrics
    )


async def test_fallback_from_a_dead_backend(isolated: Path, upstream: FakeUpstream) -> None:
    async with Gateway(make_config(isolated, upstream)) as gateway:
        assert await gateway.predict("x y", model="resilient") == "echo: x y"
    [record] = records(isolated)
    assert (record["backend"], record["attempts"], record["status"]) == ("fake", 2, 200)
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o"


def test_default_model(isolated: Path, upstream: FakeUpstream) -> None:
    assert Gateway(make_config(isolated, upstream)).default_model is None  # two models
    assert Gateway(make_config(isolated, upstream, default_model="resilient")).default_model == (
        "resilient"
    )
    single = make_config(isolated, upstream)
    single = single.model_copy(update={"models": {"chat": single.models["chat"]}})
    assert Gateway(single).default_model == "chat"


async def test_no_default_model(isolated: Path, upstream: FakeUpstream) -> None:
    async with Gateway(make_config(isolated, upstream)) as gateway:
        with pytest.raises(InvalidRequest) as info:
            await gateway.predict("x")
    assert info.value.param == "model"
    assert "set default_model in the configuration" in info.value.message


def test_request_timeout_is_the_longest_total(isolated: Path, upstream: FakeUpstream) -> None:
    assert Gateway(make_config(isolated, upstream)).request_timeout == 20.0
    assert Gateway(Config()).request_timeout == 600.0


async def test_unknown_model_is_recorded(isolated: Path, upstream: FakeUpstream) -> None:
    async with Gateway(make_config(isolated, upstream)) as gateway:
        with pytest.raises(ModelNotFound):
            await gateway.predict("x", model="nope")
    [record] = records(isolated)
    assert (record["model"], record["status"], record["error_code"]) == (
        "nope",
        404,
        "model_not_found",
    )


@pytest.mark.parametrize(
    "backend",
    [
        {"headers": {"X-Team": "ml\r\nX-Injected: 1"}},
        {"headers": {"X-Team": "caf€"}},
        {"api_key": "sk-€uro"},
    ],
    ids=["crlf-header", "non-latin-1-header", "non-latin-1-key"],
)
def test_unsendable_backend_headers_are_a_config_error(
    isolated: Path, backend: dict[str, Any]
) -> None:
    path = write_config(
        isolated / "h.yaml", {"backends": {"b": {"base_url": "http://127.0.0.1:9/v1", **backend}}}
    )
    with pytest.raises(ConfigError, match=r"backends\.b"):
        Gateway(load_config(path, env={}))


async def test_a_failed_request_is_recorded(isolated: Path, upstream: FakeUpstream) -> None:
    async with Gateway(down_config(isolated, upstream)) as gateway:
        with pytest.raises(UpstreamUnavailable):
            await gateway.predict("x", model="down")
    [record] = records(isolated)
    assert (record["model"], record["status"], record["error_code"], record["attempts"]) == (
        "down",
        503,
        "upstream_unavailable",
        3,  # the first try and two retries (router.retries.max_retries)
    )
    assert [t["error"] for t in record["tries"]] == ["upstream_unavailable"] * 3


async def test_a_failed_request_names_its_backend(isolated: Path, upstream: FakeUpstream) -> None:
    async with Gateway(down_config(isolated, upstream)) as gateway:
        with pytest.raises(UpstreamUnavailable):
            await gateway.predict("x", model="down")
        metrics = gateway.metrics.render().decode()
    [record] = records(isolated)
    assert (record["backend"], record["upstream_model"]) == ("dead", "gpt-4o")
    assert 'turnout_backend_errors_total{backend="dead",code="upstream_unavailable"} 1.0' in metrics
