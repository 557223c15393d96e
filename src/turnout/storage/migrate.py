"""Schema migrations: Alembic, with the numbered revisions shipped in ``migrations/versions``.

:func:`upgrade` runs at every gateway start and from ``turnout db upgrade``. Several replicas
or worker processes may start at once, so the whole upgrade is one transaction that first takes
a lock: a transaction-scoped advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` (the database's
write lock) on SQLite. The others wait for it, then find the schema already up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Revision", "current", "head", "history", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
#: the PostgreSQL advisory lock key held while migrating (b"turnout!" read as a big-endian int64)
PG_LOCK_KEY = int.from_bytes(b"turnout!", "big", signed=True)

# alembic's INFO lines ("Context impl SQLiteImpl.") are noise at every start; the database
# logs one line of its own when it migrates
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Revision:
    id: str
    down: str | None
    message: str


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def head() -> str:
    """The newest revision this version of turnout knows."""
    found = _script().get_current_head()
    assert found is not None, "no migrations shipped"
    return found


def history() -> list[Revision]:
    """Every revision, oldest first."""
    revisions = reversed(list(_script().walk_revisions()))
    return [Revision(r.revision, _down(r.down_revision), r.doc or "") for r in revisions]


def _down(value: str | Sequence[str] | None) -> str | None:
    return value if value is None or isinstance(value, str) else ",".join(value)


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision (None: an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``target`` under the migration lock; (revision before, after)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            return await conn.run_sync(_upgrade, target)


def _upgrade(conn: Connection, target: str) -> tuple[str | None, str | None]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    before = _current(conn)
    if before != head() or target != "head":
        command.upgrade(_alembic_config(conn), target)
    return before, _current(conn)
