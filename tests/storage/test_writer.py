"""The request log's batch writer on SQLite and PostgreSQL: batches, fields, no record lost on
a clean shutdown under load, records kept while the database is down, the cap, the spool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from tests.storage.support import TcpProxy, make_record
from turnout.storage.db import Database, parse_url
from turnout.storage.models import RequestLog
from turnout.storage.queries import recent_requests
from turnout.storage.writer import CATCH_UP, RequestLogWriter, record_row
from turnout.telemetry.records import RequestRecord


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = Database(parse_url(db_url))
    await database.migrate()
    yield database
    await database.aclose()


async def count_rows(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(RequestLog)) or 0)


async def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def test_every_record_field_has_a_column() -> None:
    columns = set(RequestLog.__table__.columns.keys())
    stored = {f.name for f in fields(RequestRecord)} - {"started"}
    assert stored <= columns, f"add a column and a migration for {stored - columns}"
    assert set(record_row(make_record(1))) == stored | {"started_at"}


class Writes:
    """Rows of request_log written per INSERT statement and per transaction."""

    def __init__(self, database: Database) -> None:
        self.statements: list[int] = []
        self.batches: list[int] = []
        self._open = 0
        engine = database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._execute)
        event.listen(engine, "commit", self._commit)

    def _execute(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO request_log"):
            # SQLite: multi-row statements, parameters flat (BatchInsert.rows_per_statement)
            rows = statement.count("(?") if isinstance(params, tuple) else len(params)
            self.statements.append(rows)
            self._open += rows

    def _commit(self, conn: Any) -> None:
        if self._open:
            self.batches.append(self._open)
            self._open = 0


async def test_records_are_written_in_batches(database: Database) -> None:
    writes = Writes(database)
    writer = RequestLogWriter(database, interval=60.0, batch_size=100)
    await writer.start()
    for i in range(250):
        writer.submit(make_record(i))
    # a full batch wakes the writer, without waiting for the 60 s interval; it writes
    # everything queued then in one transaction (more than a batch waited: a catch-up batch),
    # in one INSERT executed for all its rows (PostgreSQL) or a few multi-row INSERTs (SQLite)
    await wait_for(lambda: _equals(count_rows(database), 250))
    assert writer.pending == 0
    assert writes.batches == [250]
    assert len(writes.statements) <= 8  # 250 rows: parts of powers of two
    for i in range(99):
        writer.submit(make_record(1000 + i))
    await asyncio.sleep(0.3)
    assert writer.pending == 99  # below batch_size: waits for the interval, or aclose()
    await writer.aclose()
    assert await count_rows(database) == 349
    assert writes.batches == [250, 99]


async def _equals(rows: Any, want: int) -> bool:
    return bool(await rows == want)


async def test_one_connection_serves_every_batch(database: Database) -> None:
    # opening a connection per batch cost more than the batch (docs/benchmarks.md)
    checkouts: list[object] = []
    event.listen(database.engine.sync_engine.pool, "checkout", lambda *a: checkouts.append(a))
    writes = Writes(database)
    writer = RequestLogWriter(database, interval=60.0, batch_size=10)
    await writer.start()
    for round_ in range(5):
        for i in range(10):
            writer.submit(make_record(round_ * 10 + i))
        while writer.pending:  # a full batch wakes the writer
            await asyncio.sleep(0.01)
    await writer.aclose()
    assert (writes.batches, len(checkouts)) == ([10] * 5, 1)
    assert await count_rows(database) == 50


async def test_a_replaced_sqlite_file_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "turnout.db"
    database = Database(make_url(f"sqlite+aiosqlite:///{path}"))
    await database.migrate()
    writer = RequestLogWriter(database, interval=0.05)
    await writer.start()
    writer.submit(make_record(1))
    await wait_for(lambda: _equals(count_rows(database), 1))
    # an operator deletes the database while the gateway runs, and a new one is created: the
    # kept connection still holds the deleted file, where the records would be lost
    for name in ("turnout.db", "turnout.db-wal", "turnout.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    fresh = Database(make_url(f"sqlite+aiosqlite:///{path}"))
    await fresh.migrate()
    for i in range(2, 12):
        writer.submit(make_record(i))
    await wait_for(lambda: _equals(count_rows(fresh), 10))
    await writer.aclose()
    assert await count_rows(fresh) == 10
    await fresh.aclose()
    await database.aclose()


async def test_steady_traffic_is_written_in_full_batches(database: Database) -> None:
    # records keep arriving while a batch is written: they wait for the next full batch
    # instead of following at once as a small batch (a transaction per few requests)
    writes = Writes(database)
    writer = RequestLogWriter(database, interval=60.0, batch_size=100)
    await writer.start()
    for i in range(1000):
        writer.submit(make_record(i))
        await asyncio.sleep(0.0005)
    await writer.aclose()
    assert sum(writes.batches) == 1000
    assert len(writes.batches) <= 11, writes.batches
    assert await count_rows(database) == 1000


async def test_a_writer_behind_catches_up_in_larger_batches(database: Database) -> None:
    # a backlog (requests kept the event loop busy) goes out in batches of up to CATCH_UP
    # times batch_size, fewer statements and transactions per record; once caught up,
    # batches are batch_size again
    writes = Writes(database)
    writer = RequestLogWriter(database, interval=60.0, batch_size=100)
    for i in range(2000):
        writer.submit(make_record(i))  # queued before the writer runs: 20 batches behind
    await writer.start()
    await _caught_up(writer)
    assert writes.batches == [100 * CATCH_UP, 100 * CATCH_UP, 2000 - 200 * CATCH_UP]
    for first in (2000, 2100):
        for i in range(first, first + 100):
            writer.submit(make_record(i))
        await _caught_up(writer)
    for i in range(2200, 2250):
        writer.submit(make_record(i))
    await writer.aclose()
    assert writes.batches[3:] == [100, 100, 50]  # never more than one batch behind
    assert await count_rows(database) == 2250


async def _caught_up(writer: RequestLogWriter) -> None:
    async with asyncio.timeout(10):
        while writer.pending:
            await asyncio.sleep(0.01)


async def test_sqlite_batches_past_a_statement_s_rows_are_split(tmp_path: Path) -> None:
    database = Database(make_url(f"sqlite+aiosqlite:///{tmp_path / 'split.db'}"))
    await database.migrate()
    writer = RequestLogWriter(database, interval=60.0, batch_size=100)
    assert writer._insert.rows_per_statement == 256
    writer._insert.rows_per_statement = 8  # as with SQLite's old limit of 999 variables
    writes = Writes(database)
    await writer.start()
    for i in range(50):
        writer.submit(make_record(i))
    await writer.aclose()
    assert writes.statements == [8] * 6 + [2]  # 50 rows: 8 at most, in powers of two
    assert writes.batches == [50]
    assert await count_rows(database) == 50
    rows = await recent_requests(database, 100)
    assert sorted(r.request_id for r in rows) == [f"req_{i:06d}" for i in range(50)]
    await database.aclose()


async def test_the_interval_flushes_a_partial_batch(database: Database) -> None:
    writer = RequestLogWriter(database, interval=0.05, batch_size=1000)
    await writer.start()
    writer.submit(make_record(1))
    await wait_for(lambda: _equals(count_rows(database), 1))
    await writer.aclose()


async def test_a_row_holds_every_field(database: Database) -> None:
    record = make_record(
        7,
        principal="tk_3f9a2c",
        status=502,
        error_code="upstream_unavailable",
        stream=True,
        attempts=2,
        latency=1.5,
        ttft=0.125,
        privacy="local",
        privacy_categories=["email", "phone"],
        tries=[
            {"deployment": "dead/gpt-4o", "error": "upstream_unavailable", "latency": 0.01},
            {"deployment": "fake/gpt-4o", "error": None, "latency": 0.2},
        ],
    )
    writer = RequestLogWriter(database)
    await writer.start()
    writer.submit(record)
    writer.submit(make_record(8))
    await writer.aclose()
    async with database.session() as session:
        rows = (await session.scalars(select(RequestLog).order_by(RequestLog.id))).all()
    row, plain = rows
    assert row.started_at == datetime.fromtimestamp(record.started, UTC)
    assert row.started_at.tzinfo is UTC
    for name, value in record_row(record).items():
        assert getattr(row, name) == value, name
    assert (plain.ttft, plain.tries, plain.privacy) == (None, [], None)
    assert plain.privacy_categories == []
    assert (plain.key_id, plain.cost, plain.cache_hit, plain.input_chars) == (None,) * 4


async def test_awkward_values_are_stored_exactly(database: Database) -> None:
    # on SQLite the batch travels as JSON text: floats, quotes, escapes and non-ASCII must
    # come back bit for bit, and big integers must stay integers
    floats = [0.1 + 0.2, 1e-7, 123456.789012345, 5e-324, 1.7976931348623157e308, 2.0**-30]
    texts = ['quote " and \\ backslash', "line\nbreak\ttab", "中文 ünïcödé 🚀", "\u2028", "nul\x01"]
    records = [
        make_record(
            i,
            latency=f,
            ttft=f / 3,
            cost=f / 7,
            model=texts[i % len(texts)],
            principal=texts[(i + 1) % len(texts)],
            prompt_tokens=2**31 - 1 - i,
            privacy_categories=[texts[i % len(texts)]],
            tries=[{"deployment": texts[i % len(texts)], "error": None, "latency": f}],
            started=1_700_000_000.000001 + i * 0.1,
        )
        for i, f in enumerate(floats)
    ]
    writer = RequestLogWriter(database)
    await writer.start()
    for record in records:
        writer.submit(record)
    await writer.aclose()
    async with database.session() as session:
        rows = (await session.scalars(select(RequestLog).order_by(RequestLog.id))).all()
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        for name, value in record_row(record).items():
            assert getattr(row, name) == value, name


async def test_a_record_the_database_refuses_does_not_hold_up_the_log(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # an upstream's absurd usage (out of any integer column's range) and a record missing a
    # required value: the batch is written apart, those two are dropped, logged and counted,
    # and the rest is written, then and afterwards
    dropped: list[int] = []
    writer = RequestLogWriter(database, interval=60.0, batch_size=100, on_drop=dropped.append)
    await writer.start()
    for i in range(100):
        bad = {37: {"prompt_tokens": 2**70}, 80: {"model": None}}.get(i, {})
        writer.submit(make_record(i, **bad))
    await wait_for(lambda: _equals(count_rows(database), 98))
    assert sum(dropped) == 2
    assert "refused the record of request req_000037" in caplog.text
    assert "refused the record of request req_000080" in caplog.text
    for i in range(100, 110):
        writer.submit(make_record(i))
    await writer.aclose()
    assert await count_rows(database) == 108
    async with database.engine.connect() as conn:
        ids = set((await conn.scalars(select(RequestLog.request_id))).all())
    assert ids == {f"req_{i:06d}" for i in range(110)} - {"req_000037", "req_000080"}


async def test_times_compare_with_the_queries_times(database: Database) -> None:
    writer = RequestLogWriter(database)
    await writer.start()
    for i in range(10):
        writer.submit(make_record(i, started=1_700_000_000.123456 + i))
    await writer.aclose()
    since = datetime(2023, 11, 14, 22, 13, 25, 123456, tzinfo=UTC)  # the sixth record
    rows = await recent_requests(database, 100, since=since)
    assert [r.request_id for r in rows] == [f"req_{i:06d}" for i in range(9, 4, -1)]
    assert rows[-1].started_at == since


async def test_no_record_is_lost_on_aclose_under_load(database: Database) -> None:
    writer = RequestLogWriter(database, interval=0.1, batch_size=500)
    await writer.start()

    async def client(n: int) -> None:
        for i in range(1000):
            writer.submit(make_record(n * 1000 + i))
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the writer interleave with the submitters

    await asyncio.gather(*(client(n) for n in range(10)))
    await writer.aclose()
    async with database.engine.connect() as conn:
        ids = (await conn.scalars(select(RequestLog.request_id))).all()
    assert len(ids) == 10_000
    assert len(set(ids)) == 10_000


# --------------------------------------------------------------- the database down


class Outage:
    """A database reached through a proxy that can be cut (PostgreSQL), or a SQLite file
    whose directory is moved away (connections cannot open it); ``up()`` brings it back."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.proxy: TcpProxy | None = None
        self.database: Database | None = None

    async def start(self) -> Database:
        url = parse_url(self.url)
        if url.get_backend_name() == "postgresql":
            self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
            await self.proxy.start()
            url = url.set(host="127.0.0.1", port=self.proxy.port)
        else:
            url = make_url(f"sqlite+aiosqlite:///{self.tmp_path / 'outage' / 'turnout.db'}")
        self.database = Database(url)
        await self.database.migrate()
        return self.database

    async def down(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        else:
            (self.tmp_path / "outage").rename(self.tmp_path / "away")

    async def up(self) -> None:
        assert self.database is not None
        if self.proxy is not None:
            await self.proxy.start()
        else:
            (self.tmp_path / "away").rename(self.tmp_path / "outage")

    async def aclose(self) -> None:
        if self.database is not None:
            await self.database.aclose()
        if self.proxy is not None and self.proxy._server is not None:
            await self.proxy.stop()


@pytest.fixture
async def outage(db_url: str, tmp_path: Path) -> AsyncIterator[Outage]:
    outage = Outage(db_url, tmp_path)
    yield outage
    await outage.aclose()


async def test_records_wait_while_the_database_is_down(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    database = await outage.start()
    writer = RequestLogWriter(database, interval=0.05, max_backoff=0.2)
    await writer.start()
    writer.submit(make_record(0))
    await wait_for(lambda: _equals(count_rows(database), 1))
    await outage.down()
    for i in range(1, 301):
        writer.submit(make_record(i))
    async with asyncio.timeout(10):  # the first failed try (slower on a loaded machine)
        while "cannot write to" not in caplog.text:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # more failed tries
    assert writer.pending == 300
    await outage.up()
    await wait_for(lambda: _equals(count_rows(database), 301))
    assert writer.pending == 0
    await writer.aclose()


async def test_past_the_cap_the_oldest_records_are_dropped_and_counted(outage: Outage) -> None:
    database = await outage.start()
    dropped: list[int] = []
    writer = RequestLogWriter(
        database, interval=0.05, max_backoff=0.1, max_pending=100, on_drop=dropped.append
    )
    await writer.start()
    await outage.down()
    for i in range(150):
        writer.submit(make_record(i))
    await asyncio.sleep(0.3)
    assert writer.pending == 100
    assert sum(dropped) == 50
    await outage.up()
    await wait_for(lambda: _equals(count_rows(database), 100))
    await writer.aclose()
    async with database.engine.connect() as conn:
        oldest = await conn.scalar(select(func.min(RequestLog.request_id)))
    assert oldest == "req_000050"


async def test_a_shutdown_while_the_database_is_down_spools_the_records(
    outage: Outage, tmp_path: Path
) -> None:
    database = await outage.start()
    spool = tmp_path / "spool"
    writer = RequestLogWriter(database, close_timeout=0.3, spool_dir=spool)
    await writer.start()
    await outage.down()
    for i in range(20):
        writer.submit(make_record(i, privacy_categories=["email"]))
    await writer.aclose()
    assert len(list(spool.glob("request-log-*.jsonl"))) == 1
    await outage.up()
    assert await count_rows(database) == 0

    again = RequestLogWriter(database, spool_dir=spool)
    await again.start()
    await again.aclose()
    assert await count_rows(database) == 20
    assert list(spool.iterdir()) == []
    async with database.engine.connect() as conn:
        categories = await conn.scalar(select(RequestLog.privacy_categories).limit(1))
    assert categories == ["email"]
