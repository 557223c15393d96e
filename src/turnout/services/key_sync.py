"""Keeps this process's :class:`~turnout.policies.keys.KeyRing` in step with ``api_keys``.

At start every key is loaded. Then, every ``keys.refresh_interval`` seconds (2 by default),
one task:

1. adds the spend of this process's requests to ``api_keys.spent`` (``spent = spent + d``, so
   replicas never overwrite each other) and moves it from ``unsaved`` to ``spent`` here;
2. reads the rows whose ``updated_at`` is newer than the newest it has seen, less a 30 s
   overlap (for clock skew between replicas and transactions that commit late): a key
   created, changed, revoked or rotated by another replica or worker is in force here within
   one interval;
3. writes audit entries that an earlier database failure left queued.

Changes made through this process's admin API are applied at once (:meth:`KeySync.apply`).
While the database is down the ring keeps the keys it has: requests go on being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from turnout.exceptions import StorageUnavailable
from turnout.policies.keys import ApiKeyState, KeyRing
from turnout.policies.limits import RateLimitPolicy, Rule, Subject
from turnout.services.audit import AuditTrail
from turnout.storage import keys as key_table
from turnout.storage.db import Database
from turnout.storage.models import ApiKey

__all__ = ["OVERLAP", "KeySync", "stored_rule"]

log = logging.getLogger("turnout.keys")

OVERLAP = timedelta(seconds=30)
_RULE_FIELDS = ("requests_per_minute", "burst", "tokens_per_minute")


def stored_rule(limits: dict[str, object] | None) -> Rule | None:
    """The stored JSON limits of a key as a rule (None: the key has none of its own)."""
    if not limits:
        return None
    values = {k: v for k, v in limits.items() if k in _RULE_FIELDS and isinstance(v, int)}
    return Rule(**values) if values else None


class KeySync:
    def __init__(
        self,
        database: Database,
        ring: KeyRing,
        audit: AuditTrail,
        limits: RateLimitPolicy,
        *,
        interval: float = 2.0,
        default_rule: Rule | None = None,
    ) -> None:
        self.database = database
        self.ring = ring
        self.audit = audit
        self.limits = limits
        self.interval = interval
        self.default_rule = default_rule
        self._seen = datetime(1970, 1, 1, tzinfo=UTC)
        self._dirty: set[ApiKeyState] = set()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    # ------------------------------------------------------------------ rows to states

    def state(self, row: ApiKey) -> ApiKeyState:
        own = stored_rule(row.limits)
        models = row.allowed_models
        return ApiKeyState(
            id=row.id,
            prefix=row.prefix,
            hash=row.hash,
            role=row.role,
            owner=row.owner,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            allowed_models=None if models is None else frozenset(map(str, models)),
            limits=own,
            budget=row.budget,
            spent=row.spent,
            subject=self._subject(row.id, row.prefix, own or self.default_rule),
        )

    def _subject(self, key_id: int, prefix: str, rule: Rule | None) -> Subject | None:
        if rule is None:
            return None
        return self.limits.subject("key", str(key_id), f"API key {prefix}", rule)

    def apply(self, rows: Iterable[ApiKey]) -> None:
        """Put fresh rows in the ring (in place for keys it holds)."""
        for row in rows:
            self.ring.put(self.state(row))
            self._seen = max(self._seen, row.updated_at)

    # ------------------------------------------------------------------ spend

    def charge(self, key: ApiKeyState, cost: float) -> None:
        """Count ``cost`` dollars against ``key`` (the hot path: memory only)."""
        key.unsaved += cost
        self._dirty.add(key)

    async def _save_spend(self) -> None:
        dirty, self._dirty = self._dirty, set()
        deltas = {key.id: key.unsaved for key in dirty if key.unsaved}
        try:
            await key_table.add_spent(self.database, deltas)
        except BaseException:
            self._dirty |= dirty
            raise
        for key in dirty:
            delta = deltas.get(key.id, 0.0)
            key.unsaved -= delta
            key.spent += delta

    # ------------------------------------------------------------------ the task

    async def start(self) -> None:
        """Load every key (StorageUnavailable when the database fails), then keep syncing."""
        self.apply(await key_table.all_keys(self.database))
        self._task = asyncio.create_task(self._run(), name="turnout-key-sync")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    async def sync(self) -> None:
        """One round: save spend, read changed keys, write queued audit entries."""
        try:
            await self._save_spend()
            self.apply(await key_table.changed_since(self.database, self._seen - OVERLAP))
        except StorageUnavailable as exc:
            if not self._failing:
                self._failing = True
                log.warning("API keys: %s; serving the keys held in memory", exc.message)
            return
        if self._failing:
            self._failing = False
            log.warning("API keys: the database is back")
        await self.audit.flush()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(5):
                await self._save_spend()
        except (StorageUnavailable, TimeoutError):
            lost = sum(k.unsaved for k in self._dirty)
            log.warning("API keys: $%.6f of spend not saved (database unavailable)", lost)
