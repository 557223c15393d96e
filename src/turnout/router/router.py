"""Public model names to deployments, and the attempt loop: fallbacks, retries, breakers.

A public name (``chat``) maps to one or more deployments (backend + upstream model). A name
``BACKEND/MODEL`` reaches ``MODEL`` on ``BACKEND`` directly when that backend allows it.

One request's plan: the first deployment chosen by the route's strategy (see
``strategies``), then its other deployments in configured order, then the deployments of its
``fallbacks`` models — minus the ejected ones (``breaker``), and, for sensitive requests under
privacy policy ``local``, minus everything that is not on the operator's own hardware. The
plan is walked on errors that another deployment may not have (unavailable, rate limited,
timeout, context too long); after the whole chain failed, deployments that failed in a
retryable way are tried again with jittered exponential backoff that honours ``Retry-After``,
as far as the retry budget and the request's deadline allow. A stream is committed once its
first chunk has arrived: nothing is retried after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from turnout.backends.base import Backend, Chunk, RequestContext
from turnout.config import LOCAL_BACKEND, Config, RollbackConfig
from turnout.exceptions import (
    BackendError,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    NoLocalDeployment,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from turnout.pricing import Price, PriceTable
from turnout.router.breaker import CircuitBoard
from turnout.router.canary import rollback_reason
from turnout.router.retry import Backoff, RetryBudget
from turnout.router.stats import StatsBoard
from turnout.router.strategies import STRATEGIES, sticky_point
from turnout.telemetry.metrics import Metrics

__all__ = ["Route", "Router", "Target"]

T = TypeVar("T")
_MAX_DYNAMIC_ROUTES = 4096
DEMO_NOTICE = "turnout demo model: random weights, it writes nonsense"
#: seconds between two rollback judgements of one route
_JUDGE_EVERY = 1.0
_HEALTH_TIMEOUT = 5.0

log = logging.getLogger("turnout.router")


@dataclass(frozen=True, slots=True)
class Target:
    backend: Backend
    model: str
    weight: float = 1.0
    canary: bool = False
    #: ``backend/model``: names the deployment in headers, logs, metrics and circuit state
    label: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.backend.name}/{self.model}")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
    description: str = ""
    strategy: str = "weighted"
    sticky: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    privacy: str = "allow"
    rollback: RollbackConfig | None = None
    #: the targets that may be tried (not rolled-back canaries), and those among them that
    #: may be picked first (weight above 0)
    usable: tuple[Target, ...] = field(init=False, compare=False)
    live: tuple[Target, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        usable = tuple(t for t in self.targets if not (t.canary and t.weight == 0))
        object.__setattr__(self, "usable", usable)
        object.__setattr__(self, "live", tuple(t for t in usable if t.weight > 0))

    def plan(self) -> tuple[Target, ...]:
        """The order of attempts by weight alone: one drawn by weight, then the others."""
        live = [t for t in self.targets if t.weight > 0]
        if len(self.targets) == 1 or not live:
            return self.targets
        first = STRATEGIES["weighted"](live, _NO_STATS, _NO_PRICES, None)
        return (first, *(t for t in self.targets if t is not first))

    @property
    def has_canary(self) -> bool:
        return any(t.canary and t.weight > 0 for t in self.targets)


_NO_STATS = StatsBoard()
_NO_PRICES = PriceTable()


class Router:
    def __init__(
        self, config: Config, backends: dict[str, Backend], metrics: Metrics | None = None
    ) -> None:
        self.backends = backends
        self.metrics = metrics
        self.retry = config.router.retries
        self.backoff = Backoff(self.retry)
        self.budget = RetryBudget(self.retry.budget_ratio, self.retry.budget_min_per_second)
        self.breaker = config.router.breaker
        self.circuits = CircuitBoard(self.breaker, on_eject=self._ejected)
        self.stats = StatsBoard()
        self.prices = PriceTable({k: Price(v.input, v.output) for k, v in config.prices.items()})
        self.routes: dict[str, Route] = {
            name: _route_from_config(name, model, backends) for name, model in config.models.items()
        }
        local = backends.get(LOCAL_BACKEND)
        if local is not None:  # every local model is reachable under its own name
            for name in sorted(config.local_names):
                if name not in self.routes:
                    spec = config.local.models.get(name)
                    description = spec.description if spec else DEMO_NOTICE
                    self.routes[name] = Route(name, (Target(local, name),), description)
        self._passthrough = {name for name, spec in config.backends.items() if spec.passthrough}
        self._dynamic: dict[str, Route] = {}
        self._judged: dict[str, float] = {}
        #: recent routing events (weight changes, rollbacks, ejections) for the admin API
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        #: told of every event as it happens (the gateway audits canary rollbacks)
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self._health_task: asyncio.Task[None] | None = None

    # -- names ------------------------------------------------------------------------------

    def add_local(self, name: str, description: str = "") -> None:
        """Make a local model deployed at runtime reachable under its own name."""
        local = self.backends.get(LOCAL_BACKEND)
        if local is not None and name not in self.routes:
            self.routes[name] = Route(name, (Target(local, name),), description)

    def resolve(self, name: str) -> Route:
        """The route for a public model name; ModelNotFound says what exists."""
        route = self.routes.get(name) or self._dynamic.get(name)
        if route is not None:
            return route
        prefix, _, model = name.partition("/")
        if model and prefix in self._passthrough:
            route = Route(name, (Target(self.backends[prefix], model),))
            if len(self._dynamic) < _MAX_DYNAMIC_ROUTES:
                self._dynamic[name] = route
            return route
        raise ModelNotFound(self._not_found_message(name))

    def _not_found_message(self, name: str) -> str:
        known = sorted(self.routes)
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        hint = f" Available: {shown}." if known else " No models are configured."
        if self._passthrough:
            hint += (
                f" Or name BACKEND/MODEL with a backend of: {', '.join(sorted(self._passthrough))}."
            )
        return f"The model '{name}' does not exist or you do not have access to it.{hint}"

    # -- weights ----------------------------------------------------------------------------

    def set_weights(self, name: str, weights: dict[str, float], actor: str = "admin") -> Route:
        """Change deployment weights of a configured model at runtime (``backend/model`` →
        weight); the others keep theirs. Raises InvalidRequest naming what is wrong."""
        route = self.routes.get(name)
        if route is None:
            raise ModelNotFound(self._not_found_message(name))
        labels = {t.label for t in route.targets}
        for label, weight in weights.items():
            if label not in labels:
                raise InvalidRequest(
                    f"{name!r} has no deployment {label!r}; it has {sorted(labels)}.",
                    param="weights",
                )
            if not isinstance(weight, int | float) or not 0 <= weight < math.inf:
                raise InvalidRequest(
                    f"The weight of {label!r} must be a number >= 0.", param="weights"
                )
        targets = tuple(
            replace(t, weight=float(weights.get(t.label, t.weight))) for t in route.targets
        )
        if not any(t.weight > 0 for t in targets):
            raise InvalidRequest("At least one deployment needs a weight above 0.", param="weights")
        self.routes[name] = new = replace(route, targets=targets)
        old = {t.label: t.weight for t in route.targets}
        self._event("weights_changed", name, actor=actor, before=old, after=_weights(new))
        log.warning("weights of %s changed by %s: %s -> %s", name, actor, old, _weights(new))
        return new

    def _rollback(self, route: Route, canary: Target, reason: str) -> None:
        current = self.routes.get(route.name)
        if current is None or current is not route:
            return
        targets = tuple(replace(t, weight=0.0) if t is canary else t for t in route.targets)
        self.routes[route.name] = replace(route, targets=targets)
        self._event("canary_rolled_back", route.name, deployment=canary.label, reason=reason)
        log.warning("canary %s of %s rolled back to weight 0: %s", canary.label, route.name, reason)
        if self.metrics is not None:
            self.metrics.count_rollback(route.name, canary.label)

    def _judge(self, route: Route) -> None:
        """Roll back canaries that do worse than the stable deployments (at most 1/s)."""
        if route.rollback is None or not route.has_canary:
            return
        now = time.monotonic()
        if now - self._judged.get(route.name, 0.0) < _JUDGE_EVERY:
            return
        self._judged[route.name] = now
        stable = [t for t in route.targets if not t.canary and t.weight > 0]
        for canary in route.targets:
            if canary.canary and canary.weight > 0 and stable:
                reason = rollback_reason(canary, stable, self.stats, route.rollback)
                if reason is not None:
                    self._rollback(route, canary, reason)
                    return

    def _event(self, kind: str, model: str, **details: Any) -> None:
        event = {"time": time.time(), "event": kind, "model": model, **details}
        self.events.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # an observer never breaks routing
                log.exception("routing event hook failed for %s", kind)

    def _ejected(self, label: str, seconds: float) -> None:
        self._event("deployment_ejected", "", deployment=label, seconds=seconds)
        if self.metrics is not None:
            self.metrics.count_ejection(label)

    # -- planning ---------------------------------------------------------------------------

    def plan(
        self, route: Route, ctx: RequestContext, body: dict[str, Any], local_only: bool = False
    ) -> list[Target]:
        """The deployments to try, in order (see the module docstring)."""
        if not route.fallbacks and not local_only and not self.circuits.out:
            return self._first(route, route.usable, route.live, ctx, body)
        routes = self._chain(route)
        candidates = [t for r in routes for t in r.targets if t.canary is False or t.weight > 0]
        if local_only:
            candidates = [t for t in candidates if t.backend.local]
        out = self._out(candidates)
        plan: list[Target] = []
        seen: set[str] = set()
        for r in routes:
            for target in self._order(r, ctx, body, out, local_only):
                if target.label not in seen:
                    seen.add(target.label)
                    plan.append(target)
        return plan

    def _chain(self, route: Route) -> list[Route]:
        """The route and its fallback models', breadth first, each once."""
        chain, names = [route], {route.name}
        for current in chain:
            for name in current.fallbacks:
                other = self.routes.get(name)
                if other is not None and name not in names:
                    names.add(name)
                    chain.append(other)
        return chain

    def _out(self, candidates: list[Target]) -> set[str]:
        """Labels of ejected deployments to leave out, within ``max_ejected_share`` (never
        all): when too many are ejected, those closest to coming back stay in."""
        labels = list(dict.fromkeys(t.label for t in candidates))
        ejected = [(self.circuits.ejected_for(label), label) for label in labels]
        ejected = [e for e in ejected if e[0] > 0]
        if not ejected:
            return set()
        allowed = min(math.floor(self.breaker.max_ejected_share * len(labels)), len(labels) - 1)
        ejected.sort(reverse=True)
        return {label for _, label in ejected[: max(allowed, 0)]}

    def _order(
        self,
        route: Route,
        ctx: RequestContext,
        body: dict[str, Any],
        out: set[str],
        local_only: bool,
    ) -> list[Target]:
        usable = tuple(
            t for t in route.usable if t.label not in out and (t.backend.local or not local_only)
        )
        return self._first(route, usable, tuple(t for t in usable if t.weight > 0), ctx, body)

    def _first(
        self,
        route: Route,
        usable: tuple[Target, ...],
        live: tuple[Target, ...],
        ctx: RequestContext,
        body: dict[str, Any],
    ) -> list[Target]:
        """The strategy's pick among ``live`` first, then the rest of ``usable`` in order."""
        if len(live) <= 1:
            return [*live, *(t for t in usable if t.weight == 0)]
        point = self._sticky(route, ctx, body) if route.sticky else None
        first = STRATEGIES[route.strategy](live, self.stats, self.prices, point)
        return [first, *(t for t in usable if t is not first)]

    @staticmethod
    def _sticky(route: Route, ctx: RequestContext, body: dict[str, Any]) -> float | None:
        for source in route.sticky:
            value: Any = None
            if source == "key":
                value = ctx.principal if ctx.principal != "anonymous" else None
            elif source == "session":
                value = body.get("session_id") or _header(ctx, b"x-session-id")
            else:
                value = _header(ctx, source.removeprefix("header:").encode())
            if value:
                return sticky_point(route.name, str(value))
        return None

    # -- the attempt loop -------------------------------------------------------------------

    async def call(
        self,
        route: Route,
        ctx: RequestContext,
        op: Callable[[Target], Awaitable[T]],
        *,
        body: dict[str, Any] | None = None,
        local_only: bool = False,
        hold: bool = False,
    ) -> tuple[T, Target]:
        """Run ``op`` on the plan's deployments until one succeeds (module docstring).

        ``hold`` keeps the deployment counted in flight after success, until
        :meth:`stream_ended` (streams)."""
        plan = self.plan(route, ctx, body or {}, local_only)
        if not plan:
            raise self._nothing_to_try(route, local_only)
        self.budget.record_request()
        failed: dict[str, BackendError] = {}
        last: BackendError | None = None
        for target in plan:
            try:
                return await self._try(route, target, ctx, op, hold), target
            except BackendError as exc:
                if not _may_fall_back(exc):
                    raise
                failed[target.label], last = exc, exc
        assert last is not None
        return await self._retry(route, plan, failed, last, ctx, op, hold)

    async def _retry(
        self,
        route: Route,
        plan: list[Target],
        failed: dict[str, BackendError],
        last: BackendError,
        ctx: RequestContext,
        op: Callable[[Target], Awaitable[T]],
        hold: bool,
    ) -> tuple[T, Target]:
        for retry in range(1, self.retry.max_retries + 1):
            again = [
                t
                for t in plan
                if failed[t.label].retryable and not self.circuits.ejected_for(t.label)
            ]
            if not again:
                break
            target = again[(retry - 1) % len(again)]
            pause = self.backoff.delay(retry, failed[target.label].retry_after)
            if pause is None or pause >= ctx.remaining():
                break
            if not self.budget.try_spend():
                if self.metrics is not None:
                    self.metrics.retry_budget_exhausted.inc()
                break
            if self.metrics is not None:
                self.metrics.count_retry(route.name)
            await asyncio.sleep(pause)
            try:
                return await self._try(route, target, ctx, op, hold), target
            except BackendError as exc:
                if not exc.retryable:
                    raise
                failed[target.label], last = exc, exc
        raise last

    async def _try(
        self,
        route: Route,
        target: Target,
        ctx: RequestContext,
        op: Callable[[Target], Awaitable[T]],
        hold: bool,
    ) -> T:
        left = ctx.remaining()  # a passed deadline ends the chain
        ctx.attempts += 1
        ctx.backend, ctx.upstream_model = target.backend.name, target.model
        stats = self.stats.get(target.label)
        stats.in_flight += 1
        limit = self.retry.try_timeout
        started = time.perf_counter()
        try:
            if limit is None or limit >= left:
                result = await op(target)
            else:
                result = await _bounded(op, target, limit)
        except BaseException as exc:
            stats.in_flight -= 1
            self._failed(route, target, ctx, time.perf_counter() - started, exc)
            raise
        latency = time.perf_counter() - started
        ctx.tries.append({"deployment": target.label, "error": None, "latency": latency})
        self.circuits.success(target.label)
        if not hold:  # a stream is observed when it ends (stream_ended)
            stats.in_flight -= 1
            stats.observe(self.stats.clock(), True, latency)
            if route.rollback is not None:
                self._judge(route)
        return result

    def _failed(
        self,
        route: Route,
        target: Target,
        ctx: RequestContext,
        latency: float,
        error: BaseException,
    ) -> None:
        code = getattr(error, "code", None)
        if code is None:
            code = "cancelled" if isinstance(error, asyncio.CancelledError) else "internal_error"
        ctx.tries.append({"deployment": target.label, "error": code, "latency": latency})
        if isinstance(error, BackendError) and error.retryable:
            self.circuits.failure(target.label)
            self.stats.observe(target.label, False, latency)
            self._judge(route)

    def stream_ended(
        self, route: Route, target: Target, ctx: RequestContext, error: BaseException | None
    ) -> None:
        """A stream opened with ``hold=True`` ended (completed, failed or abandoned)."""
        self.stats.get(target.label).in_flight -= 1
        first_chunk = ctx.tries[-1]["latency"] if ctx.tries else 0.0
        if isinstance(error, BackendError) and error.retryable:
            self.circuits.failure(target.label)
            self.stats.observe(target.label, False, first_chunk)
        else:
            self.stats.observe(target.label, True, first_chunk)
        self._judge(route)

    def _nothing_to_try(self, route: Route, local_only: bool) -> BackendError:
        if local_only:
            return NoLocalDeployment(
                f"The request carries sensitive data and model {route.name!r} has privacy "
                "policy 'local', but no local deployment of it is available now; it was not "
                "sent anywhere. Add a local deployment (or fallback) to this model, or retry "
                "when one is healthy."
            )
        return UpstreamUnavailable(f"Every deployment of {route.name!r} is ejected right now.")

    async def open_stream(
        self,
        route: Route,
        ctx: RequestContext,
        op: Callable[[Target], AsyncIterator[Chunk]],
        *,
        body: dict[str, Any] | None = None,
        local_only: bool = False,
        hold: bool = False,
    ) -> tuple[Chunk | None, AsyncIterator[Chunk], Target]:
        """Start a stream and wait for its first chunk, falling back until one arrives.

        After the first chunk the stream is committed: later failures reach the caller."""

        async def first(target: Target) -> tuple[Chunk | None, AsyncIterator[Chunk]]:
            stream = op(target)
            try:
                head = await anext(stream)
            except StopAsyncIteration:
                return None, stream
            except BaseException:
                await _aclose(stream)
                raise
            return head, stream

        (head, stream), target = await self.call(
            route, ctx, first, body=body, local_only=local_only, hold=hold
        )
        return head, stream, target

    # -- health -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.breaker.health_interval > 0:
            self._health_task = asyncio.create_task(self._health_loop(), name="turnout-health")

    async def aclose(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.breaker.health_interval)
            await self.check_ejected()

    async def check_ejected(self) -> None:
        """Probe each ejected deployment's backend; a healthy one comes back early. Backends
        without a health check wait out their ejection."""
        for label in self.circuits.ejected():
            backend = self.backends.get(label.partition("/")[0])
            if backend is None or type(backend).check_health is Backend.check_health:
                continue
            try:
                async with asyncio.timeout(_HEALTH_TIMEOUT):
                    await backend.check_health()
            except Exception as exc:  # any failure means: still unhealthy
                log.debug("health check of %s failed: %s", label, exc)
                continue
            self.circuits.restore(label)
            self._event("deployment_restored", "", deployment=label)

    def describe(self) -> list[dict[str, Any]]:
        """Every configured model with its deployments' weights and state (admin API)."""
        return [self.describe_route(route) for route in self.routes.values()]

    def describe_route(self, route: Route) -> dict[str, Any]:
        return {
            "name": route.name,
            "strategy": route.strategy,
            "sticky": list(route.sticky),
            "fallbacks": list(route.fallbacks),
            "privacy": route.privacy,
            "deployments": [self._describe_target(t) for t in route.targets],
        }

    def _describe_target(self, target: Target) -> dict[str, Any]:
        stats = self.stats.get(target.label)
        return {
            "deployment": target.label,
            "weight": target.weight,
            "canary": target.canary,
            "local": target.backend.local,
            "ejected_for": round(self.circuits.ejected_for(target.label), 3),
            "in_flight": stats.in_flight,
            "latency": stats.latency,
        }


def _route_from_config(name: str, model: Any, backends: dict[str, Backend]) -> Route:
    targets = tuple(
        Target(backends[d.backend], d.model, d.weight, d.canary) for d in model.deployments
    )
    return Route(
        name,
        targets,
        model.description,
        strategy=model.strategy,
        sticky=tuple(model.sticky),
        fallbacks=tuple(model.fallbacks),
        privacy=model.privacy,
        rollback=model.rollback if any(t.canary for t in targets) else None,
    )


def _weights(route: Route) -> dict[str, float]:
    return {t.label: t.weight for t in route.targets}


async def _bounded(op: Callable[[Target], Awaitable[T]], target: Target, limit: float) -> T:
    """``op`` limited to ``limit`` seconds (router.retries.try_timeout)."""
    try:
        async with asyncio.timeout(limit):
            return await op(target)
    except TimeoutError:
        raise UpstreamTimeout(
            f"{target.label} did not start answering within router.retries.try_timeout "
            f"({limit:g} s)."
        ) from None


def _header(ctx: RequestContext, name: bytes) -> str | None:
    if ctx.header is None:
        return None
    value = ctx.header(name)
    return value.decode("latin-1") if value else None


def _may_fall_back(exc: BackendError) -> bool:
    return exc.retryable or isinstance(exc, ContextLengthExceeded)


async def _aclose(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
