"""Migrations on SQLite and PostgreSQL: up from empty, idempotent, the schema the models
declare, the same on both databases, and safe when several processes start at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from tests.storage.support import pg_wipe
from turnout.storage import migrate
from turnout.storage.db import Database, parse_url
from turnout.storage.models import Base

TABLES = {"request_log", "api_keys", "audit_log", "alembic_version"}


async def test_upgrade_from_empty_then_nothing_to_do(db_url: str) -> None:
    database = Database(parse_url(db_url))
    try:
        assert await migrate.current(database.engine) is None
        assert await migrate.upgrade(database.engine) == (None, migrate.head())
        assert await migrate.current(database.engine) == migrate.head()
        assert await migrate.upgrade(database.engine) == (migrate.head(), migrate.head())
        async with database.engine.connect() as conn:
            assert set(await conn.run_sync(lambda c: inspect(c).get_table_names())) == TABLES
    finally:
        await database.aclose()


async def test_the_migrations_create_exactly_the_models(db_url: str) -> None:
    database = Database(parse_url(db_url))
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == []
    finally:
        await database.aclose()


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def history_lists_the_numbered_revisions() -> None:
    revisions = migrate.history()
    assert [r.id for r in revisions] == [f"{i:04d}" for i in range(1, len(revisions) + 1)]
    assert revisions[0].down is None
    assert migrate.head() == revisions[-1].id


def test_revision_files_are_numbered() -> None:
    history_lists_the_numbered_revisions()
    files = sorted(p.name for p in (migrate.MIGRATIONS / "versions").glob("*.py"))
    assert [f[:5] for f in files] == [f"{r.id}_" for r in migrate.history()]


# ---------------------------------------------------------------- same schema on both


async def reflected(url: str) -> dict[str, Any]:
    """Tables, columns (type family, nullable), primary keys, indexes and unique constraints."""
    database = Database(parse_url(url))
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            return await conn.run_sync(_reflect)
    finally:
        await database.aclose()


def _reflect(conn: Connection) -> dict[str, Any]:
    insp = inspect(conn)
    schema: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        columns = {c["name"]: (_family(c["type"]), c["nullable"]) for c in insp.get_columns(table)}
        schema[table] = {
            "columns": columns,
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]))
                for i in insp.get_indexes(table)
                if "duplicates_constraint" not in i  # PostgreSQL: a unique constraint's index
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
        }
    return schema


def _family(column_type: Any) -> str:
    """The portable kind of a reflected type (SQLite and PostgreSQL spell them differently)."""
    name = type(column_type).__name__.upper()
    for family, spellings in {
        "integer": ("INTEGER", "BIGINT", "SMALLINT"),
        "string": ("VARCHAR", "STRING", "TEXT"),
        "datetime": ("DATETIME", "TIMESTAMP"),
        "float": ("DOUBLE", "DOUBLE_PRECISION", "FLOAT", "REAL"),
        "boolean": ("BOOLEAN",),
        "json": ("JSON", "JSONB"),
    }.items():
        if name in spellings:
            length = getattr(column_type, "length", None)
            return f"{family}({length})" if family == "string" and length else family
    raise AssertionError(f"unexpected column type {name}")


async def test_sqlite_and_postgresql_have_the_same_schema(tmp_path: Path, pg_database: str) -> None:
    pg_wipe(pg_database)
    on_sqlite = await reflected(f"sqlite:///{tmp_path / 'same.db'}")
    on_postgres = await reflected(pg_database)
    assert set(on_sqlite) == TABLES
    assert on_sqlite == on_postgres
    request_log = on_postgres["request_log"]
    assert request_log["columns"]["started_at"] == ("datetime", False)
    assert {"ix_request_log_started_at", "ix_request_log_key_id_started_at"} <= {
        name for name, _ in request_log["indexes"]
    }


async def test_timestamps_are_stored_with_their_time_zone(pg_database: str) -> None:
    pg_wipe(pg_database)
    database = Database(parse_url(pg_database))
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            kind = await conn.scalar(
                text(
                    "SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = 'request_log' AND column_name = 'started_at'"
                )
            )
        assert kind == "timestamp with time zone"
    finally:
        await database.aclose()


# ------------------------------------------------------------- concurrent processes

RACER = """
    import asyncio, sys
    from turnout.storage.db import Database, parse_url
    async def main():
        database = Database(parse_url(sys.argv[1]))
        print("ready", flush=True)
        sys.stdin.readline()  # every process starts migrating at the same moment
        try:
            await database.migrate()
        finally:
            await database.aclose()
    asyncio.run(main())
"""


def test_processes_migrating_at_once_do_not_break_each_other(db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RACER), db_url],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    errors = [racer.communicate(timeout=60)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, "\n".join(errors)
    cli = subprocess.run(
        [sys.executable, "-m", "turnout", "db", "current"],
        env={**env, "TURNOUT_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert cli.stdout.strip().endswith(f"{migrate.head()} (head)"), cli.stdout


async def test_an_unreachable_database_says_where_without_the_password(
    unused_tcp_port: int,
) -> None:
    url = f"postgresql://turnout:s3cret-pw@127.0.0.1:{unused_tcp_port}/turnout"
    database = Database(parse_url(url))
    from turnout.exceptions import StorageUnavailable

    with pytest.raises(StorageUnavailable) as caught:
        await database.migrate()
    message = caught.value.message
    assert "s3cret-pw" not in message
    assert f"postgresql+asyncpg://turnout:***@127.0.0.1:{unused_tcp_port}/turnout" in message
    assert "TURNOUT_DATABASE_URL" in message
    assert caught.value.status == 503


def test_head_revision_names_the_newest_migration() -> None:
    # upgrade() recognises a current database by HEAD_REVISION without importing Alembic
    assert migrate.head() == migrate.HEAD_REVISION


def test_a_current_database_is_recognised_without_alembic(tmp_path: Path) -> None:
    # a restart must not load Alembic (≈ 10 MB of resident memory): a fresh interpreter
    # migrates, a second one finds the schema current and never imports alembic
    url = f"sqlite+aiosqlite:///{tmp_path / 'head.db'}"
    script = (
        "import asyncio, sys\n"
        "from turnout.storage.db import Database, parse_url\n"
        f"db = Database(parse_url({url!r}))\n"
        "asyncio.run(db.migrate())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')) != [])\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["True", "False"]
