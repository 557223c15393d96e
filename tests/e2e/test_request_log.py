"""The request log end to end: the real gateway serves requests through the official SDK, and
after it shuts down every request is a row in the database with the right fields, on SQLite
(the default, DATA_DIR/turnout.db) and on PostgreSQL ($TURNOUT_DATABASE_URL), with one
worker process and with two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.support import UPSTREAM_KEY, backend, deployment, run_gateway
from tests.fakes import FakeUpstream
from tests.storage.support import pg_wipe, sqlite_url, stored_requests

REQUESTS = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(URL to read the rows from, environment for the gateway)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "gateway" / "turnout-home" / "turnout.db"), {}
    url: str = request.getfixturevalue("pg_database")
    pg_wipe(url)
    return url, {"TURNOUT_DATABASE_URL": url}


@pytest.mark.parametrize("workers", [1, 2])
def test_every_request_is_a_row_after_shutdown(
    tmp_path: Path,
    upstream: FakeUpstream,
    database: tuple[str, dict[str, str]],
    workers: int,
) -> None:
    url, env = database
    config = {
        "backends": {"fake": backend(upstream.base_url, UPSTREAM_KEY)},
        "models": {"chat": deployment("fake", "gpt-4o-mini")},
    }
    args = ("--workers", str(workers))
    with (
        run_gateway(tmp_path / "gateway", config=config, env=env, args=args) as gw,
        gw.client() as client,
    ):
        for i in range(REQUESTS):
            chat(client, f"req-json-{i}")
        stream(client, "req-stream")
        with pytest.raises(openai.NotFoundError):
            chat(client, "req-missing", model="no-such-model")
    rows = {row["request_id"]: row for row in stored_requests(url)}
    assert len(rows) == REQUESTS + 2, sorted(rows)
    check_json_row(rows["req-json-0"], upstream)
    check_stream_row(rows["req-stream"])
    missing = rows["req-missing"]
    assert (missing["model"], missing["status"], missing["error_code"]) == (
        "no-such-model",
        404,
        "model_not_found",
    )
    assert missing["backend"] is None


def chat(client: openai.OpenAI, request_id: str, model: str = "chat") -> None:
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"X-Request-Id": request_id},
    )


def stream(client: openai.OpenAI, request_id: str) -> None:
    chunks = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": request_id},
    )
    assert list(chunks)


def check_json_row(row: dict[str, Any], upstream: FakeUpstream) -> None:
    usage = upstream.requests_to("/v1/chat/completions")[0].response_usage
    assert usage is not None
    assert {k: row[k] for k in ("endpoint", "model", "backend", "upstream_model")} == {
        "endpoint": "chat",
        "model": "chat",
        "backend": "fake",
        "upstream_model": "gpt-4o-mini",
    }
    assert (row["status"], row["error_code"], row["stream"], row["attempts"]) == (
        200,
        None,
        False,
        1,
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row["principal"] == "master"
    assert 0 < row["latency"] < 30
    assert row["started_at"].tzinfo is not None
    assert isinstance(row["tries"], list)


def check_stream_row(row: dict[str, Any]) -> None:
    assert (row["endpoint"], row["stream"], row["status"]) == ("chat", True, 200)
    assert row["completion_tokens"] > 0
    assert row["ttft"] is not None
    assert 0 < row["ttft"] <= row["latency"]
