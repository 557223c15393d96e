"""API keys and the audit trail in the database, on SQLite and PostgreSQL: management with its
escalation rules, two processes kept in step (revocation, rotation, spend), queries that
treat hostile text as data, and an audit trail the database refuses to change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from tests.storage.support import make_record
from turnout.exceptions import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from turnout.policies.keys import MASTER, Caller, KeyRing
from turnout.policies.limits import MemoryLimiter, RateLimitPolicy, Rule
from turnout.services.audit import AuditTrail
from turnout.services.key_sync import KeySync
from turnout.services.keys import KeyService
from turnout.storage.audit import AuditEvent, audit_page
from turnout.storage.db import Database, parse_url
from turnout.storage.models import ApiKey, AuditEntry, RequestLog
from turnout.storage.queries import request_page, usage_by_principal
from turnout.storage.writer import record_row


class Process:
    """What one gateway process holds: its key ring, kept in step by its own KeySync."""

    def __init__(self, url: str) -> None:
        self.database = Database(parse_url(url))
        self.ring = KeyRing()
        self.audit = AuditTrail(self.database)
        limits = RateLimitPolicy(MemoryLimiter())
        self.sync = KeySync(
            self.database,
            self.ring,
            self.audit,
            limits,
            interval=3600,  # the tests call sync() themselves
            default_rule=Rule(requests_per_minute=60),
        )
        self.keys = KeyService(self.sync)

    async def start(self) -> Process:
        await self.database.migrate()
        await self.sync.start()
        return self

    async def aclose(self) -> None:
        await self.sync.aclose()
        await self.database.aclose()


@pytest.fixture
async def one(db_url: str) -> AsyncIterator[Process]:
    process = await Process(db_url).start()
    yield process
    await process.aclose()


@pytest.fixture
async def two(db_url: str, one: Process) -> AsyncIterator[Process]:
    process = await Process(db_url).start()
    yield process
    await process.aclose()


def caller_of(process: Process, secret: str) -> Caller:
    return process.ring.authenticate(secret.encode())


async def test_another_process_sees_new_revoked_and_rotated_keys_after_one_sync(
    one: Process, two: Process
) -> None:
    secret, view = await one.keys.create(MASTER, {"owner": "alice"})
    assert caller_of(one, secret).name == view["prefix"]  # at once where it was made
    with pytest.raises(AuthenticationFailed):
        caller_of(two, secret)
    await two.sync.sync()
    assert caller_of(two, secret).role == "developer"
    new, _ = await one.keys.rotate(MASTER, view["prefix"])
    await two.sync.sync()
    with pytest.raises(AuthenticationFailed, match="Incorrect"):
        caller_of(two, secret)
    assert caller_of(two, new).name == view["prefix"]
    await one.keys.revoke(MASTER, view["prefix"])
    await two.sync.sync()
    with pytest.raises(AuthenticationFailed, match="revoked"):
        caller_of(two, new)


async def test_spend_from_two_processes_adds_up(one: Process, two: Process) -> None:
    secret, view = await one.keys.create(MASTER, {"owner": "bob", "budget": 1.0})
    await two.sync.sync()
    in_one, in_two = caller_of(one, secret).key, caller_of(two, secret).key
    assert in_one is not None and in_two is not None
    one.sync.charge(in_one, 0.5)
    two.sync.charge(in_two, 0.25)
    await one.sync.sync()
    await two.sync.sync()
    await one.sync.sync()
    assert in_one.total_spent == pytest.approx(0.75) == in_two.total_spent
    assert (await one.keys.show(MASTER, view["prefix"]))["spent"] == pytest.approx(0.75)
    two.sync.charge(in_two, 0.25)
    assert in_two.over_budget and not in_one.over_budget  # exact only after the next sync
    await two.sync.aclose()  # a clean shutdown writes what is unsaved
    await one.sync.sync()
    assert in_one.over_budget


async def test_the_key_sync_serves_from_memory_while_the_database_is_down(
    one: Process,
) -> None:
    secret, _ = await one.keys.create(MASTER, {"owner": "carol"})
    await one.database.engine.dispose()
    down = Database(parse_url("postgresql://postgres@127.0.0.1:9/none"))
    one.sync.database = down
    await one.sync.sync()  # logs a warning, raises nothing
    assert caller_of(one, secret).name.startswith("tk_")
    await down.aclose()


async def test_developers_see_only_themselves(one: Process) -> None:
    mine, me = await one.keys.create(MASTER, {"owner": "dev-a"})
    _, other = await one.keys.create(MASTER, {"owner": "dev-b"})
    dev = caller_of(one, mine)
    assert [k["prefix"] for k in await one.keys.list(dev)] == [me["prefix"]]
    assert (await one.keys.show(dev, me["prefix"]))["owner"] == "dev-a"
    with pytest.raises(NotFound):
        await one.keys.show(dev, other["prefix"])
    assert len(await one.keys.list(MASTER)) == 2


async def test_nobody_grants_more_than_they_have(one: Process) -> None:
    restricted, view = await one.keys.create(
        MASTER,
        {
            "owner": "team-admin",
            "role": "admin",
            "allowed_models": ["chat", "embed"],
            "limits": {"requests_per_minute": 100, "burst": 20},
            "budget": 10.0,
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
    )
    admin = caller_of(one, restricted)
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ok = {
        "owner": "x",
        "allowed_models": ["chat"],
        "limits": {"requests_per_minute": 50, "burst": 10},
        "budget": 5,
        "expires_at": soon,
    }
    await one.keys.create(admin, ok)
    for change in (
        {"allowed_models": None},
        {"allowed_models": ["chat", "secret-model"]},
        {"limits": None},
        {"limits": {"requests_per_minute": 500}},
        {"limits": {"requests_per_minute": 50, "burst": 50}},
        {"budget": None},
        {"budget": 11},
        {"expires_at": None},
        {"expires_at": (datetime.now(UTC) + timedelta(days=60)).isoformat()},
    ):
        with pytest.raises(PermissionDenied, match="more than it has"):
            await one.keys.create(admin, {**ok, **change})
    with pytest.raises(PermissionDenied, match="its own settings"):
        await one.keys.update(admin, view["prefix"], {"budget": 1000})
    dev_secret, _ = await one.keys.create(MASTER, {"owner": "d"})
    dev = caller_of(one, dev_secret)
    with pytest.raises(PermissionDenied, match="cannot grant the role 'admin'"):
        await one.keys.create(dev, {"owner": "y", "role": "admin"})


async def test_keys_are_validated_with_the_field_named(one: Process) -> None:
    for body, param in (
        ({}, "owner"),
        ({"owner": "x", "role": "root"}, "role"),
        ({"owner": "x", "budget": "5"}, "budget"),
        ({"owner": "x", "budget": -1}, "budget"),
        ({"owner": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"owner": "x", "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"owner": "x", "limits": {"burst": 5}}, "limits"),
        ({"owner": "x", "hash": "0" * 64}, "hash"),
    ):
        with pytest.raises(InvalidRequest) as info:
            await one.keys.create(MASTER, body)
        assert info.value.param == param, (body, info.value.message)


@pytest.mark.parametrize(
    "hostile",
    [
        "tk_' OR '1'='1",
        "x'; DROP TABLE api_keys; --",
        "tk_000000000000' UNION SELECT hash FROM api_keys --",
        "tk_\x00\x00",
        "ключ",
    ],
)
async def test_hostile_text_is_data_not_sql(one: Process, hostile: str) -> None:
    await one.keys.create(MASTER, {"owner": "victim"})
    with pytest.raises(NotFound):
        await one.keys.show(MASTER, hostile)
    if "\x00" not in hostile:  # PostgreSQL text cannot hold NUL
        assert await one.keys.list(MASTER, owner=hostile) == []
        assert await request_page(one.database, principal=hostile) == []
    async with one.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == 1


async def test_update_changes_only_the_fields_given(one: Process) -> None:
    _, view = await one.keys.create(
        MASTER, {"owner": "o", "budget": 3, "allowed_models": ["b", "a", "a"]}
    )
    assert view["allowed_models"] == ["a", "b"]
    changed = await one.keys.update(MASTER, view["prefix"], {"budget": None, "owner": "p"})
    assert (changed["owner"], changed["budget"], changed["allowed_models"]) == (
        "p",
        None,
        ["a", "b"],
    )
    assert changed["updated_at"] > view["updated_at"]
    await one.keys.revoke(MASTER, view["prefix"])
    with pytest.raises(InvalidRequest, match="revoked"):
        await one.keys.rotate(MASTER, view["prefix"])


# ------------------------------------------------------------------------- audit trail


async def test_the_audit_trail_is_append_only_in_the_database(one: Process) -> None:
    for i in range(3):
        await one.audit.record(AuditEvent("master", "key.create", f"tk_{i}", "ok", f"req_{i}"))
    page = await audit_page(one.database, 2)
    assert [e.target for e in page] == ["tk_2", "tk_1"]
    assert [e.target for e in await audit_page(one.database, 10, before_id=page[-1].id)] == ["tk_0"]
    for statement in (
        "UPDATE audit_log SET outcome = 'ok', actor = 'someone-else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = 1",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with one.database.engine.begin() as conn:
                await conn.execute(text(statement))
    if one.database.url.get_backend_name() == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with one.database.engine.begin() as conn:
                await conn.execute(text("TRUNCATE audit_log"))
    async with one.database.session() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(r.actor, r.target) for r in rows] == [("master", f"tk_{i}") for i in range(3)]


async def test_audit_entries_wait_for_a_database_that_is_down(
    one: Process, unused_tcp_port: int
) -> None:
    trail = AuditTrail(Database(parse_url(f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/x")))
    await trail.record(AuditEvent("master", "model.deploy", "m", "ok"))
    assert trail.pending == 1
    trail.database = one.database
    assert await trail.flush()
    assert [e.action for e in await audit_page(one.database)] == ["model.deploy"]


def test_no_code_path_changes_or_deletes_audit_rows() -> None:
    from pathlib import Path

    import turnout

    root = Path(turnout.__file__).parent
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        for banned in (
            "update(AuditEntry",
            "delete(AuditEntry",
            "UPDATE audit_log",
            "DELETE FROM audit_log",
        ):
            assert banned not in source, f"{path}: {banned}"


# ------------------------------------------------------------------------ usage queries


async def test_usage_and_request_pages(one: Process) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(10):
        who = "tk_aaaaaaaaaaaa" if i % 2 else "master"
        record = make_record(i, principal=who, cost=0.01, status=500 if i == 9 else 200)
        rows.append(record_row(record))
    async with one.database.engine.begin() as conn:
        await conn.execute(insert(RequestLog), rows)
    usage = {u.principal: u for u in await usage_by_principal(one.database)}
    assert usage["master"].requests == 5 and usage["tk_aaaaaaaaaaaa"].errors == 1
    assert usage["master"].cost == pytest.approx(0.05)
    assert usage["master"].prompt_tokens == 60
    first = await request_page(one.database, 3, principal="tk_aaaaaaaaaaaa")
    assert [r.request_id for r in first] == ["req_000009", "req_000007", "req_000005"]
    rest = await request_page(one.database, 3, principal="tk_aaaaaaaaaaaa", before_id=first[-1].id)
    assert [r.request_id for r in rest] == ["req_000003", "req_000001"]
