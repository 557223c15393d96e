"""The database: an async SQLAlchemy engine from a URL; SQLite embedded, PostgreSQL in production.

The URL comes from ``$TURNOUT_DATABASE_URL``, else ``database.url`` in the configuration, else
``sqlite+aiosqlite:///DATA_DIR/turnout.db``. ``postgresql://`` (and ``postgres://``) URLs get the
asyncpg driver, ``sqlite://`` ones aiosqlite. The URL is only ever shown with its password
masked (:func:`safe_url`).

SQLite connections run in WAL mode (readers do not block the writer, and several worker
processes can share the file) with foreign keys on and a busy timeout, so that a writer waits
for another process's transaction instead of failing. They are not pooled: an aiosqlite
connection owns a thread, and a pool nobody disposed would keep the process from exiting.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from turnout.config import Config
from turnout.exceptions import ConfigError, StorageUnavailable
from turnout.storage import migrate

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_FILE",
    "Database",
    "create_engine",
    "database_url",
    "parse_url",
    "safe_url",
]

log = logging.getLogger("turnout.storage")

DATABASE_URL_ENV = "TURNOUT_DATABASE_URL"
DEFAULT_FILE = "turnout.db"
#: seconds a SQLite writer waits for another connection's write transaction to end
SQLITE_BUSY_TIMEOUT = 15.0
#: seconds to wait for a PostgreSQL connection, and for one statement
PG_CONNECT_TIMEOUT = 10.0
PG_COMMAND_TIMEOUT = 60.0

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_EXAMPLES = "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:///PATH/turnout.db"


class Database:
    """One database: its engine, a session factory, and its migrations."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_config(cls, config: Config) -> Database:
        return cls(database_url(config))

    def __str__(self) -> str:
        return safe_url(self.url)

    def file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of a SQLite database's file, None when it is missing or not a file
        database: a change means the file was moved, replaced or deleted (see the writer)."""
        if self.url.get_backend_name() != "sqlite" or not self.url.database:
            return None
        try:
            st = os.stat(self.url.database)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def session(self) -> AsyncSession:
        return self.sessions()

    async def migrate(self) -> None:
        """Bring the schema up to date (safe when several processes start together)."""
        try:
            before, after = await migrate.upgrade(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise self.unavailable(exc) from exc
        if before != after:
            log.info("database %s migrated from %s to %s", self, before or "empty", after)

    def unavailable(self, exc: BaseException) -> StorageUnavailable:
        """The error to raise for a failure of this database, with what to check."""
        return StorageUnavailable(
            f"the database {self} is unavailable: {describe(exc)}; check that it is running, "
            f"that database.url (or ${DATABASE_URL_ENV}) points at it, and that its user may "
            "create tables"
        )

    async def aclose(self) -> None:
        await self.engine.dispose()


def describe(exc: BaseException) -> str:
    """A short, secret-free account of a database error (no SQL, no parameters)."""
    cause = exc.orig if isinstance(exc, SQLAlchemyError) and hasattr(exc, "orig") else exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def database_url(config: Config) -> URL:
    """The configured database (``database.url``; load_config applies the environment)."""
    secret = config.database.url
    if secret is None:
        path = config.data_path / DEFAULT_FILE
        return URL.create("sqlite+aiosqlite", database=str(path))
    return parse_url(secret.get_secret_value())


def parse_url(raw: str) -> URL:
    """A database URL with its async driver; ConfigError naming the fix when it is not one."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            f"database.url: not a database URL; write e.g. {_EXAMPLES} "
            f"(in the configuration or ${DATABASE_URL_ENV})"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"database.url: {url.drivername!r} databases are not supported; use {_EXAMPLES}"
        )
    url = url.set(drivername=driver)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigError(
            "database.url: an in-memory SQLite database would be lost at exit and is not shared "
            "between connections; give a file, e.g. sqlite:///PATH/turnout.db"
        )
    if "sslmode" in url.query:  # libpq's name; asyncpg calls it ssl
        query = dict(url.query)
        query["ssl"] = query.pop("sslmode")
        url = url.set(query=query)
    return url


def safe_url(url: URL) -> str:
    """The URL as it may be printed or logged: the password masked."""
    return url.render_as_string(hide_password=True)


def create_engine(url: URL) -> AsyncEngine:
    """An engine for ``url`` (see :func:`parse_url`); connects lazily."""
    options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, **options
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        pool_size=5,
        max_overflow=5,
        pool_pre_ping=True,  # a restarted server's dead connections are replaced, not used
        connect_args={"timeout": PG_CONNECT_TIMEOUT, "command_timeout": PG_COMMAND_TIMEOUT},
        **options,
    )


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # transactions are begun explicitly (_sqlite_begin), not by the sqlite3 module's guesswork
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # statement journals and temporary indexes in memory: the request log's batch INSERT
    # otherwise spilled its statement journal to a temporary file, a write per page
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at once (waiting up to the busy timeout): used for
    # migrations, so that two processes starting together run them one after the other
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
