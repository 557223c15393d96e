"""Schema migrations: Alembic, with the numbered revisions shipped in ``migrations/versions``.

:func:`upgrade` runs at every gateway start and from ``turnout db upgrade``. Several replicas
or worker processes may start at once, so the whole upgrade is one transaction that first takes
a lock: a transaction-scoped advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` (the database's
write lock) on SQLite. The others wait for it, then find the schema already up to date.

Alembic is imported only when there is something to migrate: a database already at
:data:`HEAD_REVISION` is recognised by one query of ``alembic_version``, so that a gateway that
restarts does not carry Alembic and Mako (≈ 10 MB of its resident memory) for nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

__all__ = ["HEAD_REVISION", "Revision", "current", "head", "history", "upgrade"]

#: the newest revision in migrations/versions (tests/storage checks it is Alembic's head)
HEAD_REVISION = "0002"

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
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

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
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``target`` under the migration lock; (revision before, after)."""
    if target == "head":
        at = await _recorded(engine)
        if at == HEAD_REVISION:
            return at, at
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            return await conn.run_sync(_upgrade, target)


async def _recorded(engine: AsyncEngine) -> str | None:
    """The revision in alembic_version without Alembic (None: none, or no such table)."""
    async with engine.connect() as conn:
        try:
            rows = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        except DBAPIError:  # no table yet: an empty database
            return None
    return rows[0][0] if len(rows) == 1 else None


def _upgrade(conn: Connection, target: str) -> tuple[str | None, str | None]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    before = _current(conn)
    if before != head() or target != "head":
        from alembic import command

        command.upgrade(_alembic_config(conn), target)
    return before, _current(conn)
