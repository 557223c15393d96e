"""What happens when the shared store (Redis) fails: refuse, or count locally for a while.

``mode="closed"``: every request that needs the store is refused with 503
``rate_limiter_unavailable`` until it answers again. ``mode="local"``: requests are counted
by an in-memory limiter instead, against each rule scaled by ``share`` (set it to
1/replicas to keep the sum over all replicas near the limit).

Either way latency stays bounded: after a failure the store is left alone for
``retry_interval`` seconds (requests go straight to the fallback, or are refused), then one
request tries it again. The outage is logged once when it starts and once when it ends,
never per request; ``on_error`` is called for every failed or skipped call (a metric).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from turnout.exceptions import LimiterUnavailable
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.memory import MemoryLimiter
from turnout.policies.limits.rules import Decision, Quota

__all__ = ["FailoverLimiter", "OnError"]

log = logging.getLogger("turnout.limits")

OnError = Literal["closed", "local"]


class FailoverLimiter(Limiter):
    def __init__(
        self,
        primary: Limiter,
        *,
        mode: OnError,
        fallback: MemoryLimiter | None = None,
        share: float = 1.0,
        retry_interval: float = 1.0,
        on_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        where: str = "the shared store",
    ) -> None:
        super().__init__()
        self.primary = primary
        self.mode = mode
        self.fallback = fallback or MemoryLimiter()
        self.share = share
        self.retry_interval = retry_interval
        self.on_error = on_error
        self.clock = clock
        self.where = where
        #: the store failed and is left alone until this clock value
        self._down_until: float | None = None

    @property
    def down(self) -> bool:
        return self._down_until is not None

    async def start(self) -> None:
        try:
            await self.primary.start()
        except LimiterUnavailable as exc:  # the gateway starts anyway: requests decide
            self._failed(exc)

    async def aclose(self) -> None:
        await super().aclose()
        await self.primary.aclose()
        await self.fallback.aclose()

    async def spend(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        if self._usable():
            try:
                decision = await self.primary.spend(key, quota, cost)
            except LimiterUnavailable as exc:
                self._failed(exc)
            else:
                self._recovered()
                return decision
        self.on_error()
        if self.mode == "closed":
            raise self._refusal()
        return self.fallback.spend_now(key, self._local(quota), cost)

    async def charge(self, key: str, quota: Quota, delta: int) -> None:
        if self._usable():
            try:
                await self.primary.charge(key, quota, delta)
            except LimiterUnavailable as exc:
                self._failed(exc)
            else:
                self._recovered()
                return
        if self.mode == "local":
            self.fallback.charge_now(key, self._local(quota), delta)

    def _usable(self) -> bool:
        return self._down_until is None or self.clock() >= self._down_until

    def _failed(self, exc: LimiterUnavailable) -> None:
        if self._down_until is None:
            then = (
                "refusing requests (on_redis_error: closed)"
                if self.mode == "closed"
                else f"counting in memory at {self.share:g} of each limit (on_redis_error: local)"
            )
            log.error("%s; %s until it answers again", exc.message, then)
        self._down_until = self.clock() + self.retry_interval

    def _recovered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.warning("the rate-limit store (%s) answers again; limits are shared", self.where)

    def _local(self, quota: Quota) -> Quota:
        if self.share == 1.0:
            return quota
        limit = max(1, int(quota.limit * self.share))
        return Quota(limit, max(1, int(quota.burst * self.share)), quota.period)

    def _refusal(self) -> LimiterUnavailable:
        return LimiterUnavailable(
            "The gateway cannot reach its rate-limit store and refuses requests until it is "
            f"back; retry in {self.retry_interval:g} s. Operators: check Redis, or set "
            "limits.on_redis_error: local to count in memory meanwhile.",
            retry_after=self.retry_interval,
        )
