"""The request log: records queued on the hot path, written in batches by a background task.

The embedded sink appends JSON lines to ``DATA_DIR/requests.jsonl``; the write happens in a
worker thread so the event loop never blocks on the disk. ``aclose()`` flushes everything
queued, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import orjson

from turnout.telemetry.records import RequestRecord

__all__ = ["JsonlRequestLog"]

log = logging.getLogger("turnout.request_log")


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
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        data = b"".join(orjson.dumps(r) + b"\n" for r in batch)
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as exc:
            log.error("cannot write the request log %s: %s", self.path, exc)

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as fh:
            fh.write(data)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
