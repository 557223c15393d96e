"""Run one workload against several targets, side by side, at several concurrency levels.

For each concurrency level, each target first gets ``warmup`` requests that are not measured
(loading, compiling, connection set-up), then ``requests`` measured ones with that many in
flight at a time; with ``repeats`` > 1 the measured pass runs again, the targets taking turns,
so that a slow spell of the machine does not fall on one target only. Targets never run at the
same time: on one machine a local engine and a client would compete for the CPU.

Stopping (the ``stop`` event, set on Ctrl-C): requests in flight are abandoned and everything
completed so far is kept; :attr:`Measurements.interrupted` says the run is partial.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from turnout.advisor.metrics import LevelStats, Outcome, Sample, summarize
from turnout.advisor.targets import Source, Target
from turnout.advisor.workload import Workload

__all__ = ["Comparison", "Measurements", "Progress", "Run", "Settings", "TargetInfo"]


@dataclass(frozen=True, slots=True)
class Settings:
    #: requests in flight at a time, one run per level
    concurrency: tuple[int, ...] = (1, 4)
    #: measured requests per target, level and repeat
    requests: int = 12
    repeats: int = 1
    #: unmeasured requests per target and level, before the measured ones
    warmup: int = 1
    stream: bool = True


class Progress(Protocol):
    """What a progress display is told while the comparison runs."""

    def begin(self, total: int) -> None: ...

    def phase(self, target: str, concurrency: int, repeat: int, warmup: bool) -> None: ...

    def advance(self, sample: Sample) -> None: ...


@dataclass(slots=True)
class Run:
    """The measured requests of one target at one concurrency, one repeat."""

    target: str
    concurrency: int
    repeat: int
    samples: list[Sample] = field(default_factory=list)
    #: wall time from the first request sent to the last one finished (or to the stop)
    duration: float = 0.0
    complete: bool = False


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """What the samples say about a target: where it ran and what its tokens cost."""

    name: str
    #: local, hosted, mixed (both kinds of deployment served it) or unknown (nothing served)
    kind: str
    #: requests served per ``backend/model``
    deployments: dict[str, int]
    #: token prices per deployment (hosted ones; None where unknown)
    prices: dict[str, tuple[float, float] | None]


@dataclass(slots=True)
class Measurements:
    settings: Settings
    workload: Workload
    targets: list[TargetInfo]
    runs: list[Run]
    started_at: datetime
    finished_at: datetime
    interrupted: bool

    def stats(self) -> list[LevelStats]:
        """One entry per target and concurrency (repeats pooled), in the order they ran."""
        grouped: dict[tuple[str, int], list[Run]] = {}
        for run in self.runs:
            grouped.setdefault((run.target, run.concurrency), []).append(run)
        return [
            summarize(
                target,
                concurrency,
                [s for run in runs for s in run.samples],
                sum(run.duration for run in runs),
            )
            for (target, concurrency), runs in grouped.items()
            if any(run.samples for run in runs)
        ]

    def samples(self) -> list[Sample]:
        return [s for run in self.runs for s in run.samples]


class Comparison:
    def __init__(
        self,
        source: Source,
        targets: Sequence[Target],
        workload: Workload,
        settings: Settings,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.targets = list(targets)
        self.workload = workload
        self.settings = settings
        self.progress = progress
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event | None = None) -> Measurements:
        """Measure every target at every level; returns early, with what was measured,
        once ``stop`` is set."""
        self._stop = stop or asyncio.Event()
        s = self.settings
        if self.progress is not None:
            total = len(s.concurrency) * len(self.targets) * s.repeats * s.requests
            self.progress.begin(total)
        started = datetime.now(UTC)
        runs: list[Run] = []
        for level in s.concurrency:
            if not await self._level(level, runs):
                break
        return Measurements(
            settings=s,
            workload=self.workload,
            targets=[self._info(t.name, runs) for t in self.targets],
            runs=runs,
            started_at=started,
            finished_at=datetime.now(UTC),
            interrupted=self._stop.is_set(),
        )

    async def _level(self, level: int, runs: list[Run]) -> bool:
        """Warm-up and measured runs of every target at one level; False once stopped."""
        s = self.settings
        for target in self.targets:
            if s.warmup:
                self._phase(target.name, level, 0, warmup=True)
                await self._batch(target, level, s.warmup, lambda i, start, outcome: None)
            if self._stop.is_set():
                return False
        for repeat in range(s.repeats):
            for target in self.targets:
                self._phase(target.name, level, repeat, warmup=False)
                run = Run(target.name, level, repeat)
                runs.append(run)
                run.duration, run.complete = await self._batch(
                    target, level, s.requests, self._recorder(run)
                )
                if not run.complete:
                    return False
        return True

    def _phase(self, target: str, level: int, repeat: int, *, warmup: bool) -> None:
        if self.progress is not None:
            self.progress.phase(target, level, repeat, warmup)

    def _recorder(self, run: Run) -> Callable[[int, float, Outcome], None]:
        def record(index: int, start: float, outcome: Outcome) -> None:
            cost = None
            price = self.source.price(outcome.deployment) if outcome.ok else None
            if price is not None:
                cost = price.cost(outcome.prompt_tokens, outcome.completion_tokens)
            item = index % len(self.workload.items)
            sample = Sample(run.target, run.concurrency, run.repeat, item, start, outcome, cost)
            run.samples.append(sample)
            if self.progress is not None:
                self.progress.advance(sample)

        return record

    async def _batch(
        self,
        target: Target,
        concurrency: int,
        count: int,
        record: Callable[[int, float, Outcome], None],
    ) -> tuple[float, bool]:
        """Send ``count`` requests, ``concurrency`` at a time; (wall time, finished)."""
        indexes = iter(range(count))
        t0 = time.perf_counter()

        async def worker() -> None:
            for index in indexes:  # shared: each index is taken by one worker
                start = time.perf_counter() - t0
                body = self.workload.item(index).body
                record(index, start, await target.send(body, self.settings.stream))

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, count))]
        everything: asyncio.Future[Any] = asyncio.gather(*workers)
        stopped: asyncio.Future[Any] = asyncio.create_task(self._stop.wait())
        finished = False
        try:
            done, _ = await asyncio.wait({everything, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finished = everything in done
        finally:
            stopped.cancel()
            if not finished:
                everything.cancel()
            await asyncio.gather(everything, return_exceptions=True)
        duration = time.perf_counter() - t0
        if finished:
            everything.result()  # a target's bug surfaces here instead of passing silently
        return duration, finished

    def _info(self, name: str, runs: list[Run]) -> TargetInfo:
        served: dict[str, int] = {}
        for run in runs:
            if run.target != name:
                continue
            for sample in run.samples:
                deployment = sample.outcome.deployment
                if deployment and sample.outcome.ok:
                    served[deployment] = served.get(deployment, 0) + 1
        local = {d: self.source.is_local(name, d) for d in served}
        if name in self.source.declared_local:
            kind = "local"
        elif not local:
            kind = "unknown"
        else:
            kinds = set(local.values())
            kind = "mixed" if len(kinds) > 1 else "local" if True in kinds else "hosted"
        prices: dict[str, tuple[float, float] | None] = {}
        for deployment, is_local in local.items():
            if not is_local:
                price = self.source.price(deployment)
                prices[deployment] = (price.input, price.output) if price else None
        return TargetInfo(name, kind, served, prices)
