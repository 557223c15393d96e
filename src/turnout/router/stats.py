"""What the router knows about each deployment: requests in flight, recent latency, and a
window of recent outcomes (for canary rollback). Updated once per try, read when planning."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DeploymentStats", "StatsBoard", "WindowSummary"]

#: weight of the newest sample in the moving average
_ALPHA = 0.2
#: outcomes kept per deployment for rollback decisions
_WINDOW_CAP = 10_000


@dataclass(slots=True)
class WindowSummary:
    requests: int
    errors: int
    p95: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(slots=True)
class DeploymentStats:
    in_flight: int = 0
    #: exponential moving average of the time until the response starts (first chunk)
    latency: float | None = None
    #: (clock time, ok, latency) of recent tries
    outcomes: deque[tuple[float, bool, float]] = field(
        default_factory=lambda: deque(maxlen=_WINDOW_CAP)
    )

    def observe(self, now: float, ok: bool, latency: float) -> None:
        if ok:
            self.latency = (
                latency
                if self.latency is None
                else (_ALPHA * latency + (1 - _ALPHA) * self.latency)
            )
        self.outcomes.append((now, ok, latency))


class StatsBoard:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: the clock of the outcome windows (``time.monotonic``; tests pass their own)
        self.clock = clock
        self._stats: dict[str, DeploymentStats] = {}

    def get(self, label: str) -> DeploymentStats:
        stats = self._stats.get(label)
        if stats is None:
            stats = self._stats[label] = DeploymentStats()
        return stats

    def observe(self, label: str, ok: bool, latency: float) -> None:
        self.get(label).observe(self.clock(), ok, latency)

    def window(self, labels: list[str], seconds: float) -> WindowSummary:
        """Requests, errors and p95 latency of successful tries over the last ``seconds``,
        summed over ``labels``."""
        since = self.clock() - seconds
        requests = errors = 0
        latencies: list[float] = []
        for label in labels:
            for stamp, ok, latency in reversed(self.get(label).outcomes):
                if stamp < since:
                    break
                requests += 1
                if ok:
                    latencies.append(latency)
                else:
                    errors += 1
        return WindowSummary(requests, errors, _p95(latencies))


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    values.sort()
    return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]
