"""Retries: jittered exponential backoff that honours ``Retry-After``, and a retry budget.

A retry is a second (third, ...) try of a deployment the request already tried. Moving on to
the next deployment of a fallback chain is not a retry: it costs no budget and no pause.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from turnout.config import RetryConfig

__all__ = ["Backoff", "RetryBudget"]


class Backoff:
    """Pauses before retries: full jitter over ``backoff * 2**(n-1)``, capped."""

    def __init__(self, config: RetryConfig, rng: Callable[[], float] = random.random) -> None:
        self.config = config
        self._rng = rng

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based); None: do not retry,
        the upstream asked for a longer pause than ``max_retry_after``."""
        cfg = self.config
        if retry_after is not None and retry_after > cfg.max_retry_after:
            return None
        ceiling = min(cfg.max_backoff, cfg.backoff * 2.0 ** (retry - 1))
        pause: float = ceiling * self._rng()
        return max(pause, retry_after or 0.0)


class RetryBudget:
    """Retries may add at most ``ratio`` of the requests seen over the last ``window`` seconds,
    plus ``min_per_second`` retries per second so that quiet traffic can still retry.

    Counts live in one-second buckets; checking and spending cost a few arithmetic operations.
    """

    def __init__(
        self,
        ratio: float,
        min_per_second: float,
        window: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.window = window
        self._clock = clock
        self._requests = [0] * window
        self._retries = [0] * window
        self._stamp = [-1] * window

    def _slot(self) -> int:
        second = int(self._clock())
        i = second % self.window
        if self._stamp[i] != second:
            self._stamp[i] = second
            self._requests[i] = self._retries[i] = 0
        return i

    def _totals(self) -> tuple[int, int]:
        oldest = int(self._clock()) - self.window
        requests = retries = 0
        for i in range(self.window):
            if self._stamp[i] > oldest:
                requests += self._requests[i]
                retries += self._retries[i]
        return requests, retries

    def record_request(self) -> None:
        self._requests[self._slot()] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when retries are at their share."""
        requests, retries = self._totals()
        allowed = self.ratio * requests + self.min_per_second * self.window
        if retries + 1 > allowed:
            return False
        self._retries[self._slot()] += 1
        return True
