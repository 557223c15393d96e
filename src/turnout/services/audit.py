"""The audit trail of admin actions: who did what to what, when, and how it ended.

:meth:`AuditTrail.record` writes an entry before the action's answer goes out. When the
database fails, the entry stays queued (in order) and is written by the next
:meth:`~AuditTrail.flush` (the key sync task calls it every few seconds) or at shutdown; what
the database still refuses then is logged at ERROR as JSON, so that it is not lost silently.
Entries never carry a secret: keys appear by prefix only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import orjson

from turnout.exceptions import StorageUnavailable
from turnout.storage.audit import AuditEvent, append
from turnout.storage.db import Database

__all__ = ["AuditEvent", "AuditTrail"]

log = logging.getLogger("turnout.audit")

#: entries kept while the database is down; past it the oldest go to the log
MAX_PENDING = 10_000


class AuditTrail:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._pending: deque[AuditEvent] = deque()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(self, event: AuditEvent) -> None:
        """Write ``event`` (and anything still queued before it); never raises for the
        database: a failed write stays queued."""
        self._pending.append(event)
        while len(self._pending) > MAX_PENDING:
            _lost(self._pending.popleft())
        await self.flush()

    def record_soon(self, event: AuditEvent) -> None:
        """:meth:`record` from synchronous code (a router event)."""
        task = asyncio.get_running_loop().create_task(self.record(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> bool:
        """Write what is queued; False when the database refused."""
        async with self._lock:
            if not self._pending:
                return True
            batch = list(self._pending)
            try:
                await append(self.database, batch)
            except StorageUnavailable as exc:
                if not self._failing:
                    self._failing = True
                    log.warning("audit trail: %s; %d entries queued", exc.message, len(batch))
                return False
            for _ in batch:
                self._pending.popleft()
            if self._failing:
                self._failing = False
                log.warning("audit trail: the database is back; queued entries written")
            return True

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if not await self.flush():
            while self._pending:
                _lost(self._pending.popleft())


def _lost(event: AuditEvent) -> None:
    entry = {**event.row(), "at": event.at.isoformat()}
    log.error("audit entry not written to the database: %s", orjson.dumps(entry).decode())
