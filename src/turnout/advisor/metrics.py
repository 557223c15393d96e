"""What one request measured, and the statistics ``vllm bench serve`` reports over many.

Per request (:class:`Sample`): end-to-end latency (E2EL), time to first token (TTFT: the
first chunk carrying output text; streams only), time per output token after the first
(TPOT = (E2EL - TTFT) / (output tokens - 1), requests with more than one output token),
inter-token latencies (ITL: the gaps between chunks carrying output; an engine may send
several tokens in one chunk) and output tokens per second (output tokens / E2EL). Token
counts are the ones the response's ``usage`` reports.

Per target and concurrency (:class:`LevelStats`): mean, median, p90 and p99 of each, the
request and output-token throughput over the run's wall time, and the failures by type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Distribution", "LevelStats", "Outcome", "Sample", "percentile", "summarize"]

PERCENTILES = (50, 90, 99)


@dataclass(slots=True)
class Outcome:
    """What a target reports for one request."""

    ok: bool
    latency: float
    error: str | None = None
    ttft: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: seconds between consecutive chunks that carried output
    itl: list[float] = field(default_factory=list)
    #: ``backend/model`` that served the request, when the target can tell
    deployment: str | None = None

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.completion_tokens < 2:
            return None
        return (self.latency - self.ttft) / (self.completion_tokens - 1)

    @property
    def output_rate(self) -> float | None:
        """Output tokens per second of this request, from its start to its end."""
        if self.latency <= 0 or self.completion_tokens == 0:
            return None
        return self.completion_tokens / self.latency


@dataclass(slots=True)
class Sample:
    """One measured request: its outcome and where it belongs."""

    target: str
    concurrency: int
    repeat: int
    #: index into the workload
    item: int
    #: seconds from the start of its run to the start of this request
    start: float
    outcome: Outcome
    #: US dollars at the target's token prices (None: local, or no price known)
    cost: float | None = None

    def as_dict(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "repeat": self.repeat,
            "item": self.item,
            "start_s": _round(self.start),
            "ok": o.ok,
            "error": o.error,
            "e2e_latency_s": _round(o.latency),
            "ttft_s": _round(o.ttft),
            "tpot_s": _round(o.tpot),
            "prompt_tokens": o.prompt_tokens,
            "completion_tokens": o.completion_tokens,
            "deployment": o.deployment,
            "cost_usd": self.cost,
        }


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile of sorted ``values``, interpolated linearly between the two
    nearest ranks (numpy's default, which vLLM's benchmark uses)."""
    if not values:
        raise ValueError("no values")
    rank = (len(values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Distribution:
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Distribution | None:
        data = sorted(v for v in values if v is not None)
        if not data:
            return None
        p50, p90, p99 = (percentile(data, p) for p in PERCENTILES)
        return cls(len(data), sum(data) / len(data), p50, p90, p99, data[-1])

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": _round(self.mean),
            "p50": _round(self.p50),
            "p90": _round(self.p90),
            "p99": _round(self.p99),
            "max": _round(self.max),
        }


@dataclass(frozen=True, slots=True)
class LevelStats:
    """One target at one concurrency, over every repeat."""

    target: str
    concurrency: int
    requests: int
    completed: int
    errors: dict[str, int]
    #: wall time of the runs, summed over the repeats
    duration: float
    prompt_tokens: int
    completion_tokens: int
    e2e_latency: Distribution | None
    ttft: Distribution | None
    tpot: Distribution | None
    itl: Distribution | None
    output_rate: Distribution | None
    cost: float | None

    @property
    def failed(self) -> int:
        return self.requests - self.completed

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.duration if self.duration > 0 else 0.0

    @property
    def output_tokens_per_s(self) -> float:
        return self.completion_tokens / self.duration if self.duration > 0 else 0.0

    @property
    def total_tokens_per_s(self) -> float:
        total = self.prompt_tokens + self.completion_tokens
        return total / self.duration if self.duration > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        def dist(d: Distribution | None) -> dict[str, Any] | None:
            return d.as_dict() if d is not None else None

        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "error_rate": _round(self.error_rate),
            "errors": dict(sorted(self.errors.items())),
            "duration_s": _round(self.duration),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "throughput": {
                "requests_per_s": _round(self.requests_per_s),
                "output_tokens_per_s": _round(self.output_tokens_per_s),
                "total_tokens_per_s": _round(self.total_tokens_per_s),
            },
            "e2e_latency_s": dist(self.e2e_latency),
            "ttft_s": dist(self.ttft),
            "tpot_s": dist(self.tpot),
            "itl_s": dist(self.itl),
            "output_tokens_per_s_per_request": dist(self.output_rate),
            "cost_usd": self.cost,
        }


def summarize(
    target: str, concurrency: int, samples: Sequence[Sample], duration: float
) -> LevelStats:
    ok = [s.outcome for s in samples if s.outcome.ok]
    errors: dict[str, int] = {}
    for s in samples:
        if not s.outcome.ok:
            key = s.outcome.error or "unknown"
            errors[key] = errors.get(key, 0) + 1
    costs = [s.cost for s in samples if s.cost is not None]
    return LevelStats(
        target=target,
        concurrency=concurrency,
        requests=len(samples),
        completed=len(ok),
        errors=errors,
        duration=duration,
        prompt_tokens=sum(o.prompt_tokens for o in ok),
        completion_tokens=sum(o.completion_tokens for o in ok),
        e2e_latency=Distribution.of(o.latency for o in ok),
        ttft=Distribution.of(o.ttft for o in ok),
        tpot=Distribution.of(o.tpot for o in ok),
        itl=Distribution.of(gap for o in ok for gap in o.itl),
        output_rate=Distribution.of(o.output_rate for o in ok),
        cost=sum(costs) if costs else None,
    )


def _round(value: float | None) -> float | None:
    """Six significant digits: microseconds for latencies, enough for throughput."""
    if value is None:
        return None
    return float(f"{value:.6g}")
