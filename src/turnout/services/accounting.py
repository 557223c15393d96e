"""Accounting: every finished request becomes one record for metrics and the request log,
with its cost (from the price table), charged to the calling API key's budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from turnout.backends.base import RequestContext, Usage
from turnout.exceptions import TurnoutError
from turnout.telemetry.metrics import Metrics
from turnout.telemetry.records import RequestRecord

if TYPE_CHECKING:
    from turnout.policies.keys import ApiKeyState
    from turnout.policies.limits import RateLimitPolicy

__all__ = ["Accountant", "Charge", "Pricer", "RecordSink"]

#: the cost in US dollars of ``usage`` on (backend, upstream model); None: no price known
Pricer = Callable[[str, str, Usage], "float | None"]
#: counts a cost against an API key's budget
Charge = Callable[["ApiKeyState", float], None]


class RecordSink(Protocol):
    def submit(self, record: RequestRecord) -> None: ...


class Accountant:
    def __init__(
        self,
        metrics: Metrics,
        sink: RecordSink | None,
        limits: RateLimitPolicy | None = None,
        *,
        pricer: Pricer | None = None,
        charge: Charge | None = None,
    ) -> None:
        self.metrics = metrics
        self.sink = sink
        #: settles the request's token reservations with its real usage
        self.limits = limits
        self.pricer = pricer
        self.charge = charge

    def begin(self, ctx: RequestContext, endpoint: str, model: str) -> RequestRecord:
        self.metrics.in_flight.inc()
        key = ctx.caller.key if ctx.caller is not None else None
        return RequestRecord(
            request_id=ctx.request_id,
            started=time.time(),
            endpoint=endpoint,
            model=model,
            principal=ctx.principal,
            key_id=None if key is None else key.id,
        )

    def finish(
        self,
        rec: RequestRecord,
        ctx: RequestContext,
        *,
        usage: Usage | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.metrics.in_flight.dec()
        rec.latency = time.perf_counter() - ctx.t0
        rec.attempts = ctx.attempts
        rec.backend, rec.upstream_model = ctx.backend, ctx.upstream_model
        rec.tries = ctx.tries
        if ctx.privacy is not None:
            rec.privacy, rec.privacy_categories = ctx.privacy, sorted(ctx.privacy_categories)
        if usage is not None:
            rec.prompt_tokens = usage.prompt_tokens
            rec.completion_tokens = usage.completion_tokens
            self._cost(rec, ctx, usage)
        if isinstance(error, TurnoutError):
            rec.status, rec.error_code = error.status, error.code
        elif error is not None:
            rec.status, rec.error_code = 499 if _is_cancel(error) else 500, _code(error)
        if self.limits is not None:
            self.limits.settle(ctx, usage, error, delivered=rec.ttft is not None)
        self.metrics.observe(rec)
        if self.sink is not None:
            self.sink.submit(rec)

    def _cost(self, rec: RequestRecord, ctx: RequestContext, usage: Usage) -> None:
        if self.pricer is None or rec.backend is None or rec.upstream_model is None:
            return
        rec.cost = self.pricer(rec.backend, rec.upstream_model, usage)
        key = ctx.caller.key if ctx.caller is not None else None
        if rec.cost and key is not None and self.charge is not None:
            self.charge(key, rec.cost)

    def first_token(self, rec: RequestRecord, ctx: RequestContext) -> None:
        rec.ttft = time.perf_counter() - ctx.t0


def _is_cancel(error: BaseException) -> bool:
    return type(error).__name__ in {"CancelledError", "GeneratorExit"}


def _code(error: BaseException) -> str:
    return "client_disconnected" if _is_cancel(error) else "internal_error"
