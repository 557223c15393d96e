"""The request log: records queued on the hot path, written in batches by a background task.

The embedded sink appends JSON lines to ``DATA_DIR/requests.jsonl``; the write happens in a
worker thread so the event loop never blocks on the disk. ``aclose()`` flushes everything
queued, so a clean shutdown loses nothing; records of a log nobody closed (a library user's
event loop that simply ended) are written by an exit hook.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import weakref
from collections.abc import Callable
from pathlib import Path

import orjson

from turnout.telemetry.records import RequestRecord

__all__ = ["JsonlRequestLog"]

log = logging.getLogger("turnout.request_log")

_open_logs: weakref.WeakSet[JsonlRequestLog] = weakref.WeakSet()


@atexit.register
def _flush_open_logs() -> None:
    for request_log in list(_open_logs):
        request_log.flush_sync()


class JsonlRequestLog:
    def __init__(
        self,
        path: Path,
        *,
        interval: float = 0.5,
        max_pending: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.interval = interval
        self.max_pending = max_pending
        self._pending: list[RequestRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._on_drop = on_drop
        _open_logs.add(self)

    def submit(self, record: RequestRecord) -> None:
        if len(self._pending) >= self.max_pending:
            if self._on_drop is not None:
                self._on_drop(1)
            return
        self._pending.append(record)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="turnout-request-log")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued, in a worker thread."""
        data = self._take()
        if data:
            await asyncio.to_thread(self._append, data)

    def flush_sync(self) -> None:
        """Write what is queued, blocking (shutdown and exit hooks)."""
        data = self._take()
        if data:
            self._append(data)

    def _take(self) -> bytes:
        batch, self._pending = self._pending, []
        return b"".join(orjson.dumps(r) + b"\n" for r in batch)

    def _append(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as fh:
                fh.write(data)
        except OSError as exc:
            log.error("cannot write the request log %s: %s", self.path, exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush_sync()  # at shutdown a worker thread may no longer be available
        _open_logs.discard(self)
