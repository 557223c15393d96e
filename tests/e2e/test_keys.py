"""API keys end to end through the real gateway: the official openai SDK with a developer
key, the Anthropic SDK's x-api-key header, model allow-lists, budgets and cost, per-key rate
limits, scoped request logs, the audit trail, revocation across two gateway processes
sharing a database (SQLite and PostgreSQL), and the ``turnout keys`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.governance import create_key, eventually, keys_config, send
from tests.e2e.support import MASTER_KEY, Gateway, assert_error, gateway_env, run_gateway
from tests.fakes import FakeUpstream
from tests.storage.support import pg_wipe, sqlite_url, stored_requests

HELLO = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def gw(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("keys"), config=keys_config(upstream_server)) as g:
        yield g


def test_a_developer_key_works_with_the_openai_sdk_within_its_allow_list(gw: Gateway) -> None:
    key = create_key(gw, owner="sdk", allowed_models=["chat", "embed"])
    with gw.client(api_key=key["key"]) as client:
        reply = client.chat.completions.create(model="chat", messages=HELLO)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "echo: Say hi"
        chunks = client.chat.completions.create(model="chat", messages=HELLO, stream=True)  # type: ignore[arg-type]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert sorted(m.id for m in client.models.list()) == ["chat", "embed"]
        for model in ("other", "no-such-model"):
            with pytest.raises(openai.NotFoundError) as info:
                client.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
            body: Any = info.value.body
            assert body["code"] == "model_not_found"
            assert body["message"] == (
                f"The model '{model}' does not exist or you do not have access to it. "
                "Available: chat, embed."
            )
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("other")
    with gw.client() as admin:
        assert {m.id for m in admin.models.list()} == {"chat", "embed", "other"}


def test_the_anthropic_sdk_header_gets_the_same_checks(gw: Gateway) -> None:
    key = create_key(gw, owner="anthropic-style")
    client = anthropic.Anthropic(api_key=key["key"], base_url=gw.url, max_retries=0)
    listed: Any = client.get("/v1/models", cast_to=object)  # sends x-api-key + anthropic-version
    assert {m["id"] for m in listed["data"]} == {"chat", "embed", "other"}
    bad = anthropic.Anthropic(api_key="tk_000000000000_nope", base_url=gw.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.get("/v1/models", cast_to=object)
    raw = send(
        gw,
        key["key"],
        "POST",
        "/v1/chat/completions",
        {"model": "chat", "messages": HELLO},
        header="x-api-key",
    )
    assert raw.status == 200, raw.text


def test_a_key_over_its_budget_gets_402_before_the_backend(
    gw: Gateway, upstream: FakeUpstream
) -> None:
    key = create_key(gw, owner="thrifty", budget=0.000001)
    with gw.client(api_key=key["key"]) as client:
        client.chat.completions.create(model="chat", messages=HELLO)  # type: ignore[arg-type]
        upstream.reset()
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="chat", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.status_code == 402
    body: Any = info.value.body
    assert body["code"] == "budget_exceeded" and body["type"] == "insufficient_quota"
    assert key["prefix"] in body["message"] and "turnout keys update" in body["message"]
    assert upstream.requests == []  # refused before the backend
    shown = send(gw, MASTER_KEY, "GET", f"/admin/keys/{key['prefix']}").json()
    # gpt-4o-mini: 2 prompt words x $0.15/M + 3 completion words x $0.60/M
    assert shown["spent"] == pytest.approx(2.1e-6)
    usage = send(gw, MASTER_KEY, "GET", f"/admin/usage?key={key['prefix']}").json()["data"]
    assert usage[0]["budget"] == 0.000001 and usage[0]["spent"] == pytest.approx(2.1e-6)

    def logged() -> bool:
        rows = send(gw, key["key"], "GET", "/admin/requests").json()["data"]
        return len(rows) == 2

    eventually(logged, 5, "two request log rows")
    rows = send(gw, key["key"], "GET", "/admin/requests").json()["data"]
    assert [(r["status"], r["principal"]) for r in rows] == [(402, key["prefix"])] * 1 + [
        (200, key["prefix"])
    ]
    assert rows[1]["cost"] == pytest.approx(2.1e-6) and rows[1]["key_id"] == key["id"]
    raised = send(gw, MASTER_KEY, "PATCH", f"/admin/keys/{key['prefix']}", {"budget": 1})
    assert raised.status == 200
    assert (
        send(
            gw, key["key"], "POST", "/v1/chat/completions", {"model": "chat", "messages": HELLO}
        ).status
        == 200
    )


def test_a_key_has_its_own_rate_limit(gw: Gateway) -> None:
    key = create_key(gw, owner="limited", limits={"requests_per_minute": 2, "burst": 2})
    other = create_key(gw, owner="unlimited")
    for _ in range(2):
        assert send(gw, key["key"], "GET", "/v1/models").status == 200
    refused = send(gw, key["key"], "GET", "/v1/models")
    error = assert_error(refused, 429, code="rate_limit_exceeded")
    assert f"API key {key['prefix']}" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert send(gw, other["key"], "GET", "/v1/models").status == 200  # per key, not global


def test_the_audit_trail_records_admin_actions(gw: Gateway) -> None:
    auditor = create_key(gw, role="auditor", owner="audit-team")
    key = create_key(gw, owner="audited")
    prefix = key["prefix"]
    send(gw, MASTER_KEY, "PATCH", f"/admin/keys/{prefix}", {"budget": 5})
    rotated = send(gw, MASTER_KEY, "POST", f"/admin/keys/{prefix}/rotate")
    send(gw, MASTER_KEY, "DELETE", f"/admin/keys/{prefix}")
    send(gw, MASTER_KEY, "PATCH", "/admin/routes/chat", {"weights": {"fake/gpt-4o-mini": 2}})
    send(gw, MASTER_KEY, "POST", "/admin/models", {"name": "m1", "path": "/nowhere"})
    send(gw, auditor["key"], "DELETE", f"/admin/keys/{prefix}")
    entries = send(gw, auditor["key"], "GET", "/admin/audit?limit=50").json()["data"]
    seen = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in reversed(entries)]
    for expected in (
        ("master", "key.create", prefix, "ok"),
        ("master", "key.update", prefix, "ok"),
        ("master", "key.rotate", prefix, "ok"),
        ("master", "key.revoke", prefix, "ok"),
        ("master", "route.weights", "chat", "ok"),
        ("master", "model.deploy", "m1", "error"),
        (auditor["prefix"], "key.revoke", f"/admin/keys/{prefix}", "denied"),
    ):
        assert expected in seen, (expected, seen)
    text = json.dumps(entries)
    assert key["key"] not in text and rotated.json()["key"] not in text
    weights = next(e for e in entries if e["action"] == "route.weights")
    assert weights["details"] == {"weights": {"fake/gpt-4o-mini": 2}} and weights["request_id"]
    for method in ("DELETE", "PATCH", "PUT", "POST"):
        resp = send(gw, MASTER_KEY, method, "/admin/audit", {} if method != "DELETE" else None)
        assert resp.status == 405, (method, resp.text)
    assert send(gw, key["key"], "GET", "/admin/audit").status == 401  # revoked


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "shared.db")
    url: str = request.getfixturevalue("pg_database")
    pg_wipe(url)
    return url


def test_two_gateways_sharing_a_database_see_each_others_keys_within_seconds(
    tmp_path: Path, upstream: FakeUpstream, shared_db: str
) -> None:
    env = {"TURNOUT_DATABASE_URL": shared_db}
    config = keys_config(upstream)
    with (
        run_gateway(tmp_path / "a", config=config, env=env) as a,
        run_gateway(tmp_path / "b", config=config, env=env) as b,
    ):
        key = create_key(a, owner="roaming")
        works_on_b = eventually(
            lambda: send(b, key["key"], "GET", "/v1/models").status == 200, 5, "key on b"
        )
        assert works_on_b < 3.5  # keys.refresh_interval is 2 s
        chat = {"model": "chat", "messages": HELLO}
        assert send(b, key["key"], "POST", "/v1/chat/completions", chat).status == 200
        assert send(a, MASTER_KEY, "DELETE", f"/admin/keys/{key['prefix']}").status == 200
        assert send(a, key["key"], "GET", "/v1/models").status == 401  # at once on a
        refused_on_b = eventually(
            lambda: send(b, key["key"], "GET", "/v1/models").status == 401, 5, "revoke on b"
        )
        assert refused_on_b < 3.5
    rows = stored_requests(shared_db)
    assert {r["principal"] for r in rows} == {key["prefix"]}


def test_the_keys_cli_manages_keys_of_a_running_gateway(gw: Gateway, tmp_path: Path) -> None:
    env = gateway_env(tmp_path, {"TURNOUT_API_KEY": MASTER_KEY})

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "turnout", "keys", *args, "--url", gw.url, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = cli(
        "create", "--owner", "cli-user", "--models", "chat", "--rpm", "10", "--budget", "3"
    )
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["allowed_models"] == ["chat"] and created["limits"] == {
        "requests_per_minute": 10
    }
    prefix = created["prefix"]
    assert prefix in {k["prefix"] for k in cli("list", "--owner", "cli-user")}
    assert cli("update", prefix, "--budget", "7", "--all-models")["budget"] == 7
    assert cli("show", prefix)["allowed_models"] is None
    rotated = cli("rotate", prefix)
    assert rotated["key"] != created["key"]
    assert send(gw, rotated["key"], "GET", "/v1/models").status == 200
    assert cli("revoke", prefix)["status"] == "revoked"
    denied = subprocess.run(
        [sys.executable, "-m", "turnout", "keys", "list", "--url", gw.url],
        env={**env, "TURNOUT_API_KEY": rotated["key"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1 and "revoked" in denied.stderr
