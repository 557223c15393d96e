"""The request log's writer: records queued on the hot path, written in batches by a task.

``submit()`` only appends to a queue; a background task writes what is queued every
``interval`` seconds, or as soon as ``batch_size`` records wait, each batch as one INSERT
statement executed for all its rows, in one transaction; while more than a batch waits, batches
grow to ``CATCH_UP`` times ``batch_size`` (see ``_take``). When the database fails, the records
stay queued and the task retries with growing pauses (up to ``max_backoff``); only past
``max_pending`` queued records are the oldest dropped, and counted
(``turnout_request_log_dropped``).

The writer keeps one connection open between batches: opening one per batch cost more than
the batch itself (on SQLite a connection, its thread, its pragmas, and the checkpoint of the
write-ahead log when the last connection closes: ≈ 40 µs per logged request under load). A
connection that failed is thrown away and a new one opened on the next try; on SQLite, a
database file that was moved, replaced or deleted while open (its inode changed) is reopened by
path before the next batch, so that records never go to a file nobody reads.

Nothing is lost on a clean shutdown: ``aclose()`` writes everything queued, and if the database
is down even then (for ``close_timeout`` seconds), it spools the rest to a JSON-lines file in
``spool_dir``, which the next start of any writer on that directory puts back in the queue.
Records of a writer nobody closed (a library user's event loop that just ended) are written
when its task is cancelled, else spooled by an exit hook.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import operator
import os
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from turnout.storage.db import Database, describe
from turnout.storage.models import RequestLog
from turnout.telemetry.records import RequestRecord

__all__ = ["BatchInsert", "RequestLogWriter", "record_row"]

log = logging.getLogger("turnout.storage.writer")

#: what a failed write raises: the database's errors and the network's
DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
_SPOOL_GLOB = "request-log-*.jsonl"

_open_writers: weakref.WeakSet[RequestLogWriter] = weakref.WeakSet()


@atexit.register
def _spool_open_writers() -> None:
    for writer in list(_open_writers):
        writer.spool()


#: the most rows in one SQLite INSERT (a power of two; see BatchInsert)
MAX_ROWS_PER_STATEMENT = 256
#: a batch holds up to this many times ``batch_size`` records while the queue is behind
CATCH_UP = 8

_COLUMNS = frozenset(RequestLog.__table__.columns.keys())
#: the record's fields stored in a column of the same name (``started`` goes to started_at)
_STORED = tuple(f.name for f in fields(RequestRecord) if f.name in _COLUMNS)
_RECORD_FIELDS = frozenset(f.name for f in fields(RequestRecord))


def record_row(record: RequestRecord) -> dict[str, Any]:
    """The request_log row of one record, as the ORM sees it."""
    row = {name: getattr(record, name) for name in _STORED}
    row["started_at"] = datetime.fromtimestamp(record.started, UTC)
    return row


class BatchInsert:
    """The INSERT of a batch, at driver level: few statements for all the rows.

    SQLAlchemy's per-row bind processing costs several times what the database's own work does
    (bench/request_log.py), so the rows are built here as the drivers take them: JSON as text,
    the time as an aware datetime (asyncpg) or as SQLAlchemy's SQLite text form, in UTC. The
    statement is SQLAlchemy's, compiled once for the dialect.

    On PostgreSQL it is executed for every row (asyncpg pipelines them). On SQLite the rows go
    in multi-row ``VALUES`` statements of power-of-two sizes up to ``rows_per_statement``
    (256; a batch of 500 is six statements): the sqlite3 module releases the GIL around every
    step of a statement, so ``executemany`` of 500 rows handed the GIL back and forth with the
    event loop 500 times, each a pair of context switches that the requests on that core
    waited for, and it costs less CPU besides (bench/request_log.py). sqlite3 keeps the
    compiled statement of each size, at most nine of them.

    tests/storage checks that the ORM reads back exactly :func:`record_row`.
    """

    def __init__(self, dialect: Dialect) -> None:
        columns = [*_STORED, "started_at"]
        compiled = insert(RequestLog).compile(dialect=dialect, column_keys=columns)
        order = list(compiled.positiontup or ())
        assert sorted(order) == sorted(columns), order
        self._time_at = order.index("started_at")
        names = [n for n in order if n != "started_at"]
        self._fields = operator.attrgetter(*names)
        table = RequestLog.__table__
        self._json = [i for i, n in enumerate(names) if isinstance(table.c[n].type, JSON)]
        self._time = _sqlite_time if dialect.name == "sqlite" else _utc
        self.sql = compiled.string
        #: rows in one multi-row statement (SQLite); 0: one statement executed per row
        self.rows_per_statement = 0
        if dialect.name == "sqlite":
            variables = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
            fits = min(variables // len(order), MAX_ROWS_PER_STATEMENT)
            self.rows_per_statement = 1 << (fits.bit_length() - 1)
            head, _, values = self.sql.partition(" VALUES ")
            assert values.startswith("(") and values.count("?") == len(order), self.sql
            self._head, self._values = head + " VALUES ", values

    def statements(
        self, batch: list[RequestRecord]
    ) -> Iterator[tuple[str, list[tuple[Any, ...]] | tuple[Any, ...]]]:
        """(SQL, parameters) to execute for the batch, in one transaction."""
        rows = [self.row(r) for r in batch]
        size = self.rows_per_statement
        if not size:
            yield self.sql, rows
            return
        start = 0
        while start < len(rows):
            # parts of a power-of-two size: a few statements to compile and keep, whatever
            # the batch sizes (sqlite3 caches each; one of 500 rows holds about 2 MB)
            count = min(size, 1 << ((len(rows) - start).bit_length() - 1))
            part = rows[start : start + count]
            start += count
            yield self._multi(count), tuple(v for row in part for v in row)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one instance per writer, a few sizes
    def _multi(self, rows: int) -> str:
        return self._head + ", ".join([self._values] * rows)

    def row(self, record: RequestRecord) -> tuple[Any, ...]:
        values = list(self._fields(record))
        for i in self._json:
            if values[i] is not None:
                values[i] = orjson.dumps(values[i]).decode()
        values.insert(self._time_at, self._time(record.started))
        return tuple(values)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


_EPOCH = datetime(1970, 1, 1)


def _sqlite_time(timestamp: float) -> str:
    # SQLAlchemy's SQLite DATETIME storage format in UTC, always with microseconds (so that
    # text comparisons order correctly): "2026-01-31 23:59:59.000001"
    return (_EPOCH + timedelta(seconds=timestamp)).isoformat(" ", "microseconds")


class RequestLogWriter:
    """A :class:`~turnout.services.accounting.RecordSink` that writes to ``request_log``."""

    def __init__(
        self,
        database: Database,
        *,
        interval: float = 0.5,
        batch_size: int = 500,
        max_pending: int = 100_000,
        max_backoff: float = 30.0,
        close_timeout: float = 10.0,
        spool_dir: Path | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.database = database
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.spool_dir = spool_dir
        self._on_drop = on_drop
        self._pending: deque[RequestRecord] = deque()
        #: records taken from the queue for the write in progress
        self._writing = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing_since: float | None = None
        self._insert = BatchInsert(database.engine.dialect)
        #: the connection kept between batches, and the identity of the SQLite file it opened
        self._conn: AsyncConnection | None = None
        self._file: tuple[int, int] | None = None
        _open_writers.add(self)

    @property
    def pending(self) -> int:
        """Records queued and not yet written (the batch being written included)."""
        return len(self._pending) + self._writing

    def submit(self, record: RequestRecord) -> None:
        """Queue one record (the hot path: no I/O, no await)."""
        pending = self._pending
        pending.append(record)
        if len(pending) > self.max_pending:
            pending.popleft()
            self._dropped(1)
        wake = self._wake
        if wake is not None and len(pending) >= self.batch_size and self._failing_since is None:
            wake.set()

    async def start(self) -> None:
        """Put spooled records back in the queue and start the writing task."""
        self._wake = asyncio.Event()
        self._closing = False
        self._requeue(self._load_spool())
        if len(self._pending) >= self.batch_size:
            self._wake.set()  # a batch waits already (spooled, or queued before the start)
        self._task = asyncio.create_task(self._run(), name="turnout-request-log")

    async def aclose(self) -> None:
        """Write everything queued; spool what the database does not take in time."""
        task, self._task = self._task, None
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        try:
            async with asyncio.timeout(self.close_timeout):
                if task is not None:
                    await task
                await self._drain()
        except TimeoutError:
            log.warning("request log: the database did not take the last records in time")
        await self._disconnect()
        self.spool()
        _open_writers.discard(self)

    # ------------------------------------------------------------------- background task

    async def _run(self) -> None:
        backoff = self.interval
        try:
            while not self._closing:
                await self._sleep(backoff)
                if await self._flush():
                    backoff = self.interval
                else:
                    backoff = min(max(backoff * 2, 0.5), self.max_backoff)
        except asyncio.CancelledError:
            if not self._closing:  # the event loop is ending and nobody called aclose()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.close_timeout):
                        await self._drain()
                await self._disconnect()
                self.spool()
            raise

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _drain(self) -> None:
        """Write everything queued, retrying until it is done (callers bound the time)."""
        backoff = 0.1
        while self._pending:
            if not await self._flush():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _flush(self) -> bool:
        """Write what was queued when called, batch by batch; False when the database failed.

        Records queued meanwhile wait for the next turn (a full batch or the interval): going
        on until the queue is empty wrote, under steady load, a small batch after every write,
        a transaction per few requests instead of one per ``batch_size``."""
        todo = len(self._pending)
        while todo > 0 and self._pending:
            batch = self._take()
            todo -= len(batch)
            self._writing = len(batch)
            try:
                await self._write(batch)
            except Exception as exc:
                if not _about_the_rows(exc):
                    self._requeue(batch)
                    self._failed(exc)
                    return False
                log.warning("request log: a batch was refused (%s); writing it apart", _why(exc))
                try:
                    await self._write_apart(batch)  # requeues what it did not write
                except Exception as failure:
                    self._failed(failure)
                    return False
            except BaseException:
                self._requeue(batch)  # cancelled mid-write: the rows were not committed
                raise
            finally:
                self._writing = 0
            self._recovered()
        return True

    async def _write_apart(self, batch: list[RequestRecord]) -> None:
        """Write a batch whose values the database refused, in halves, down to the records it
        refuses alone (a token count out of a column's range, say): those are dropped, logged
        and counted, so that one bad record cannot hold up the log. On any other failure what
        is not written goes back in the queue and the error is raised."""
        parts = [batch]
        while parts:
            part = parts.pop()
            try:
                await self._write(part)
            except BaseException as exc:
                if not (isinstance(exc, Exception) and _about_the_rows(exc)):
                    self._requeue([r for p in [part, *reversed(parts)] for r in p])
                    raise
                if len(part) > 1:
                    half = len(part) // 2
                    parts += [part[half:], part[:half]]
                    continue
                log.error(
                    "request log: the database refused the record of request %s (%s); "
                    "it is dropped",
                    part[0].request_id,
                    _why(exc),
                )
                self._dropped(1)

    async def _write(self, batch: list[RequestRecord]) -> None:
        """Write one batch in one transaction."""
        statements = list(self._insert.statements(batch))
        conn = await self._connection()
        try:
            async with conn.begin():
                for sql, params in statements:
                    await conn.exec_driver_sql(sql, params)
        except BaseException:
            await self._disconnect(broken=True)
            raise

    async def _connection(self) -> AsyncConnection:
        """The kept connection; a new one when there is none or its SQLite file was moved."""
        if self._conn is not None and self._file != self.database.file_identity():
            log.warning("request log: %s was moved or replaced; opening it again", self.database)
            await self._disconnect()
        if self._conn is None:
            self._conn = await self.database.engine.connect()
            self._file = self.database.file_identity()
        return self._conn

    async def _disconnect(self, *, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(*DB_ERRORS):
            if broken:  # its state is unknown: not back into a pool
                await conn.invalidate()
            await conn.close()

    # ------------------------------------------------------------------------- queue

    def _take(self) -> list[RequestRecord]:
        """The next batch: ``batch_size`` records, or up to ``CATCH_UP`` times that while
        more than one batch waits. When requests keep the event loop busy, every await of a
        write waits its turn behind them (≈ 20 ms per statement at 6k requests/s on one core:
        a batch of 500 took 150 ms, slower than the records came, and the queue grew to
        ``max_pending``, ~90 MB, then dropped records); a larger batch needs fewer statements
        and transactions per record, so the writer catches up."""
        pending = self._pending
        size = self.batch_size if len(pending) <= self.batch_size else self.batch_size * CATCH_UP
        return [pending.popleft() for _ in range(min(size, len(pending)))]

    def _requeue(self, records: list[RequestRecord]) -> None:
        """Put records back at the front (they are the oldest), keeping to max_pending."""
        self._pending.extendleft(reversed(records))
        excess = len(self._pending) - self.max_pending
        for _ in range(max(excess, 0)):
            self._pending.popleft()
        if excess > 0:
            self._dropped(excess)

    def _dropped(self, count: int) -> None:
        if self._on_drop is not None:
            self._on_drop(count)

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "request log: cannot write to %s (%s); keeping %d records and retrying",
                self.database,
                describe(exc),
                len(self._pending),
            )

    def _recovered(self) -> None:
        if self._failing_since is not None:
            down = time.monotonic() - self._failing_since
            self._failing_since = None
            log.warning("request log: %s is back after %.1f s", self.database, down)

    # ------------------------------------------------------------------------- spool

    def spool(self) -> None:
        """Save what is still queued to a file in spool_dir (blocking; shutdown only)."""
        if not self._pending or self.spool_dir is None:
            return
        records, self._pending = list(self._pending), deque()
        name = f"request-log-{os.getpid()}-{time.time_ns()}.jsonl"
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            data = b"".join(orjson.dumps(r.as_dict()) + b"\n" for r in records)
            (self.spool_dir / name).write_bytes(data)
        except OSError as exc:
            log.error("request log: %d records lost, cannot spool them: %s", len(records), exc)
            self._dropped(len(records))
            return
        log.warning(
            "request log: %d records spooled to %s; the next start writes them",
            len(records),
            self.spool_dir / name,
        )

    def _load_spool(self) -> list[RequestRecord]:
        """Records spooled by earlier runs; each file is claimed by one process only."""
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return []
        records: list[RequestRecord] = []
        for path in sorted(self.spool_dir.glob(_SPOOL_GLOB)):
            claimed = path.with_name(f"{path.name}.{os.getpid()}.claimed")
            try:
                path.rename(claimed)  # atomic: a second process finds the file gone
                records.extend(_parse_spool(claimed.read_bytes().splitlines()))
                claimed.unlink()
            except OSError as exc:
                log.warning("request log: cannot read spooled records %s: %s", path, exc)
        if records:
            log.info("request log: %d spooled records queued again", len(records))
        return records


def _about_the_rows(exc: BaseException) -> bool:
    """Whether the database refused the values rather than failed (retrying cannot help):
    integrity and data errors (SQLSTATE classes 22 and 23), values the driver cannot send."""
    if isinstance(exc, IntegrityError | DataError | TypeError | ValueError | OverflowError):
        return True
    cause = getattr(exc, "orig", None)
    state = getattr(getattr(cause, "__cause__", None) or cause, "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def _why(exc: BaseException) -> str:
    return describe(exc) if isinstance(exc, DB_ERRORS) else f"{type(exc).__name__}: {exc}"


def _parse_spool(lines: Iterable[bytes]) -> list[RequestRecord]:
    records = []
    for line in lines:
        try:
            data = orjson.loads(line)
            known = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
            records.append(RequestRecord(**known))
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            log.warning("request log: skipped a damaged spooled record")
    return records
