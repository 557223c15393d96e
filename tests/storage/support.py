"""Databases for the storage tests: a SQLite file, and a fresh PostgreSQL database per session
(on 127.0.0.1:5432 as user postgres; the tests skip, saying so, when none is reachable)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from turnout.telemetry.records import RequestRecord

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


async def _pg_admin(*statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=3
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def pg_admin(*statements: str, database: str = "postgres") -> None:
    """Run statements as the superuser (in a thread of its own: callable from async tests)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _pg_admin(*statements, database=database)).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a PostgreSQL database created for this test session, dropped after it."""
    name = f"turnout_test_{os.getpid()}_{time.time_ns() % 10**9}"
    try:
        pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as user {PG_USER} "
            f"({type(exc).__name__}: {exc}); start it to run the PostgreSQL storage tests"
        )
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_wipe(url: str) -> None:
    """Empty the database: every table (alembic's included) gone."""
    pg_admin("DROP SCHEMA public CASCADE", "CREATE SCHEMA public", database=url.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """An empty database of each kind, as the URL a user would configure."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'turnout.db'}"
    url: str = request.getfixturevalue("pg_database")
    pg_wipe(url)
    return url


def make_record(i: int, **fields: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "request_id": f"req_{i:06d}",
        "started": 1_700_000_000.0 + i,
        "endpoint": "chat",
        "model": "chat",
        "backend": "fake",
        "upstream_model": "gpt-4o-mini",
        "attempts": 1,
        "latency": 0.25,
        "prompt_tokens": 12,
        "completion_tokens": 3,
    }
    values.update(fields)
    return RequestRecord(**values)


class TcpProxy:
    """A loopback port forwarded to ``target``: stop() refuses new connections and cuts the
    open ones (the database is "down"); start() again listens on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


def stored_requests(url: str) -> list[dict[str, Any]]:
    """Every request_log row, oldest first, as dicts (callable from sync and async tests)."""
    from turnout.storage.db import Database, parse_url
    from turnout.storage.models import RequestLog

    async def read() -> list[dict[str, Any]]:
        database = Database(parse_url(url))
        try:
            async with database.session() as session:
                rows = await session.scalars(select(RequestLog).order_by(RequestLog.id))
                names = RequestLog.__table__.columns.keys()
                return [{name: getattr(row, name) for name in names} for row in rows]
        finally:
            await database.aclose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
