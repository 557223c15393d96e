"""The limiter interface: where counts live (this process, or Redis shared by replicas).

Contract
--------
A limiter implements two primitives over GCRA state kept per key (see
:mod:`turnout.policies.limits.gcra`):

- :meth:`Limiter.spend` takes ``cost`` units of ``quota`` from ``key`` if they fit, atomically,
  and says how many remain; refused, it changes nothing.
- :meth:`Limiter.charge` adds ``delta`` units unconditionally (negative: gives units back).

On top of them every limiter has :meth:`reserve` (take a request's ``max_tokens`` before the
backend call) and :meth:`settle` (correct the reservation with the real usage afterwards).
Keys belong to the limiter's caller; a limiter only prefixes them. State of an idle key must
disappear by itself (memory: evicted; Redis: a TTL), so memory use stays bounded.

A limiter whose store cannot be reached raises
:class:`~turnout.exceptions.LimiterUnavailable`, quickly (short timeouts), and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from turnout.policies.limits.rules import Decision, Quota, Reservation

__all__ = ["Limiter"]

log = logging.getLogger("turnout.limits")


class Limiter(ABC):
    """Base of the in-memory and the Redis limiter; see the module docstring."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()

    @abstractmethod
    async def spend(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        """Take ``cost`` units if they fit now; a refusal changes nothing."""

    @abstractmethod
    async def charge(self, key: str, quota: Quota, delta: int) -> None:
        """Add ``delta`` units whether they fit or not (negative: give them back)."""

    async def reserve(self, key: str, quota: Quota, amount: int) -> tuple[Reservation, Decision]:
        """Take ``amount`` units up front; the reservation is ``settled`` only if allowed."""
        decision = await self.spend(key, quota, amount)
        return Reservation(key, quota, amount, settled=not decision.allowed), decision

    async def settle(self, reservation: Reservation, actual: int) -> None:
        """Correct a reservation to the ``actual`` use: refund or charge the difference."""
        if reservation.settled:
            return
        reservation.settled = True
        delta = actual - reservation.amount
        if delta:
            await self.charge(reservation.key, reservation.quota, delta)

    def settle_soon(self, reservation: Reservation, actual: int) -> None:
        """:meth:`settle` off the caller's path (from synchronous code, e.g. accounting)."""
        task = asyncio.get_running_loop().create_task(self._settle_logged(reservation, actual))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_logged(self, reservation: Reservation, actual: int) -> None:
        try:
            await self.settle(reservation, actual)
        except Exception:  # a lost settlement only makes one subject's count less exact
            log.debug("settling %s failed", reservation.key, exc_info=True)

    async def start(self) -> None:
        """Connect, load scripts; LimiterUnavailable when the store does not answer."""

    async def aclose(self) -> None:
        """Wait for pending settlements, then release connections."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
