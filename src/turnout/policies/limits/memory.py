"""The in-memory limiter: GCRA state in this process, bounded in size.

Counts are per process: with several worker processes or replicas each keeps its own, so a
limit holds per worker. Use the Redis limiter for limits shared by all of them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from turnout.policies.limits.gcra import charge, spend
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.rules import Decision, Quota, Reservation

__all__ = ["DEFAULT_MAX_KEYS", "MemoryLimiter"]

DEFAULT_MAX_KEYS = 100_000
#: idle keys dropped per operation (amortised clean-up; the size cap is the hard bound)
_SWEEP = 2


class MemoryLimiter(Limiter):
    """GCRA over a dict of key → TAT, least recently used first.

    A key whose TAT has passed is as good as absent (a full bucket), so it is dropped as soon
    as it reaches the old end of the order. When ``max_keys`` are held, the least recently used
    key is dropped even if it is not idle: that forgives one subject's recent use rather than
    letting memory grow; ``evicted`` counts those."""

    def __init__(
        self, *, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.clock = clock
        self.evicted = 0
        self._tats: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tats)

    async def spend(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        return self.spend_now(key, quota, cost)

    async def charge(self, key: str, quota: Quota, delta: int) -> None:
        self.charge_now(key, quota, delta)

    def settle_soon(self, reservation: Reservation, actual: int) -> None:
        """Settled at once: nothing here waits."""
        if not reservation.settled:
            reservation.settled = True
            self.charge_now(reservation.key, reservation.quota, actual - reservation.amount)

    def spend_now(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        now = self.clock()
        tat, decision = spend(self._tats.get(key, now), now, quota, cost)
        if decision.allowed:
            self._store(key, tat, now)
        return decision

    def charge_now(self, key: str, quota: Quota, delta: int) -> None:
        now = self.clock()
        self._store(key, charge(self._tats.get(key, now), now, quota, delta), now)

    def _store(self, key: str, tat: float, now: float) -> None:
        tats = self._tats
        if tat <= now:
            tats.pop(key, None)
        else:
            tats[key] = tat
            tats.move_to_end(key)
        self._sweep(now)

    def _sweep(self, now: float) -> None:
        tats = self._tats
        for _ in range(_SWEEP):
            if not tats:
                return
            oldest = next(iter(tats))
            if tats[oldest] > now:
                break
            del tats[oldest]
        while len(tats) > self.max_keys:
            tats.popitem(last=False)
            self.evicted += 1
