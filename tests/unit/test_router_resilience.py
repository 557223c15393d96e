"""turnout.router beyond plain fallback: retries and their budget, circuit breaking and health
checks, sticky weighted routing, the other strategies, runtime weights and canary rollback,
and privacy's local-only plans — driven through scripted backends (real Backend subclasses)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import pytest

from tests.unit.scripted import ScriptedBackend
from tests.unit.support import DEAD_URL
from turnout.backends.base import BackendRequest, RequestContext, Result
from turnout.config import BreakerConfig, Config, RetryConfig
from turnout.exceptions import (
    ContextLengthExceeded,
    InvalidRequest,
    NoLocalDeployment,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from turnout.router.breaker import CircuitBoard
from turnout.router.retry import Backoff, RetryBudget
from turnout.router.router import Router, Target
from turnout.router.strategies import sticky_point


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class HealthBackend(ScriptedBackend):
    """A scripted backend with a health check that passes or fails on demand."""

    def __init__(self, name: str, local: bool = False) -> None:
        super().__init__(name)
        self.healthy = True
        self.local = local
        self.health_checks = 0

    async def check_health(self) -> None:
        self.health_checks += 1
        if not self.healthy:
            raise UpstreamUnavailable(f"{self.name} is down")


def make(
    models: dict[str, dict[str, Any]],
    *,
    local: tuple[str, ...] = (),
    router: dict[str, Any] | None = None,
    names: tuple[str, ...] = ("a", "b", "c", "d"),
) -> tuple[Router, dict[str, HealthBackend]]:
    """A router over health-checked scripted backends; ``models`` maps a public name to its
    ModelConfig (deployments as ``"backend/model:weight"`` strings or dicts)."""
    config: dict[str, Any] = {
        "backends": {n: {"base_url": DEAD_URL} for n in names},
        "models": {name: _model(spec) for name, spec in models.items()},
        "router": router or {},
    }
    backends = {n: HealthBackend(n, local=n in local) for n in names}
    return Router(Config.model_validate(config), dict(backends)), backends


def _model(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    deployments = []
    for dep in spec["deployments"]:
        if isinstance(dep, str):
            label, _, weight = dep.partition(":")
            backend, _, model = label.partition("/")
            dep = {"backend": backend, "model": model, "weight": float(weight or 1)}
        deployments.append(dep)
    out["deployments"] = deployments
    return out


def ctx(timeout: float = 30.0, headers: dict[bytes, bytes] | None = None) -> RequestContext:
    context = RequestContext.create("req-test", timeout)
    if headers is not None:
        context.header = headers.get
    return context


async def chat(router: Router, name: str, context: RequestContext, **kw: Any) -> Target:
    def op(target: Target) -> Any:
        body = {"model": target.model, "messages": [{"role": "user", "content": "hi"}]}
        return target.backend.chat(BackendRequest(body), context)

    result, target = await router.call(router.resolve(name), context, op, **kw)
    assert isinstance(result, Result)
    return target


NO_PAUSE = {"retries": {"backoff": 0, "max_backoff": 0}}


# ------------------------------------------------------------------------------ backoff


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    config = RetryConfig(backoff=0.5, max_backoff=3.0)
    assert Backoff(config, rng=lambda: 0.999).delay(1) == pytest.approx(0.4995)
    assert Backoff(config, rng=lambda: 0.999).delay(2) == pytest.approx(0.999)
    assert Backoff(config, rng=lambda: 0.999).delay(5) == pytest.approx(2.997)  # capped at 3
    assert Backoff(config, rng=lambda: 0.0).delay(3) == 0.0


def test_backoff_honours_retry_after_and_refuses_long_ones() -> None:
    config = RetryConfig(backoff=0.1, max_backoff=1.0, max_retry_after=10)
    backoff = Backoff(config, rng=lambda: 0.5)
    assert backoff.delay(1, retry_after=4.0) == 4.0
    assert backoff.delay(1, retry_after=0.01) == pytest.approx(0.05)
    assert backoff.delay(1, retry_after=11.0) is None


# ------------------------------------------------------------------------------- budget


def test_retry_budget_allows_a_share_of_the_requests() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_second=0, window=10, clock=clock)
    for _ in range(100):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(50))
    assert spent == 20


def test_retry_budget_floor_and_window() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.0, min_per_second=1.0, window=10, clock=clock)
    assert sum(budget.try_spend() for _ in range(30)) == 10  # the floor: 1/s over 10 s
    clock.now += 5
    assert not budget.try_spend()  # those 10 are still inside the window
    clock.now += 6
    assert sum(budget.try_spend() for _ in range(30)) == 10  # they have left it


# ------------------------------------------------------------------------------ breaker


def test_breaker_ejects_after_consecutive_failures_with_growing_ejections() -> None:
    clock = Clock()
    board = CircuitBoard(BreakerConfig(failures=3, ejection=10, max_ejection=25), clock=clock)
    assert not board.failure("a/m") and not board.failure("a/m")
    board.success("a/m")  # a success resets the count
    assert not board.failure("a/m") and not board.failure("a/m")
    assert board.failure("a/m")
    assert board.ejected_for("a/m") == 10
    assert board.ejected() == ["a/m"]
    clock.now += 10.5
    assert board.ejected_for("a/m") == 0  # back, on probation
    assert board.failure("a/m")  # one failure on probation ejects again, for twice as long
    assert board.ejected_for("a/m") == 20
    clock.now += 21
    assert board.failure("a/m")
    assert board.ejected_for("a/m") == 25  # capped at max_ejection
    clock.now += 26
    board.success("a/m")  # off probation ...
    assert not board.failure("a/m")  # ... so one failure is not enough any more
    clock.now += 30
    board.success("a/m")  # out of trouble for longer than max_ejection: starts over
    for _ in range(3):
        board.failure("a/m")
    assert board.ejected_for("a/m") == 10


def test_health_check_restores_early() -> None:
    clock = Clock()
    board = CircuitBoard(BreakerConfig(failures=1, ejection=60), clock=clock)
    board.failure("a/m")
    board.restore("a/m")
    assert board.ejected_for("a/m") == 0


# --------------------------------------------------------------------- retries, in the loop


async def test_a_single_deployment_is_retried_then_serves() -> None:
    router, backends = make({"chat": {"deployments": ["a/m"]}}, router=NO_PAUSE)
    backends["a"].enqueue(UpstreamUnavailable("down"), UpstreamUnavailable("still down"))
    context = ctx()
    target = await chat(router, "chat", context)
    assert target.label == "a/m"
    assert context.attempts == 3
    assert [t["error"] for t in context.tries] == [
        "upstream_unavailable",
        "upstream_unavailable",
        None,
    ]


async def test_retries_stop_at_max_retries() -> None:
    router, backends = make({"chat": {"deployments": ["a/m"]}}, router=NO_PAUSE)
    backends["a"].enqueue(*(UpstreamUnavailable(f"down {i}") for i in range(5)))
    context = ctx()
    with pytest.raises(UpstreamUnavailable, match="down 2"):
        await chat(router, "chat", context)
    assert context.attempts == 3  # the first try and max_retries (2)


async def test_the_chain_goes_first_then_retries_in_plan_order() -> None:
    router, backends = make(
        {"chat": {"deployments": ["a/m", "b/m:0", "c/m:0"]}},
        router={**NO_PAUSE, "retries": {"backoff": 0, "max_retries": 2}},
    )
    backends["a"].enqueue(UpstreamUnavailable("a"), UpstreamUnavailable("a again"))
    backends["b"].enqueue(UpstreamRateLimited("b"))
    backends["c"].enqueue(ContextLengthExceeded("c"))  # never retried: it would fail again
    context = ctx()
    target = await chat(router, "chat", context)
    assert [t["deployment"] for t in context.tries] == ["a/m", "b/m", "c/m", "a/m", "b/m"]
    assert target.label == "b/m"


async def test_a_retry_after_longer_than_the_deadline_is_not_waited_for() -> None:
    router, backends = make({"chat": {"deployments": ["a/m"]}})
    backends["a"].enqueue(UpstreamRateLimited("busy", retry_after=20))
    context = ctx(timeout=5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamRateLimited):
        await chat(router, "chat", context)
    assert context.attempts == 1
    assert asyncio.get_running_loop().time() - started < 1  # gave up, did not sleep 20 s


async def test_a_retry_after_over_the_limit_is_not_retried() -> None:
    router, backends = make(
        {"chat": {"deployments": ["a/m"]}}, router={"retries": {"max_retry_after": 2}}
    )
    backends["a"].enqueue(UpstreamRateLimited("busy", retry_after=3))
    context = ctx()
    with pytest.raises(UpstreamRateLimited):
        await chat(router, "chat", context)
    assert context.attempts == 1


async def test_the_budget_caps_retries_across_requests() -> None:
    router, backends = make(
        {"chat": {"deployments": ["a/m"]}},
        router={"retries": {"backoff": 0, "budget_ratio": 0.1, "budget_min_per_second": 0}},
    )
    backends["a"].enqueue(*(UpstreamUnavailable("down") for _ in range(1000)))
    attempts = 0
    for _ in range(100):
        context = ctx()
        with pytest.raises(UpstreamUnavailable):
            await chat(router, "chat", context)
        attempts += context.attempts
    assert 100 <= attempts <= 110  # 100 first tries, at most 10% more


async def test_try_timeout_moves_on_to_the_next_deployment() -> None:
    router, _ = make(
        {"chat": {"deployments": ["a/m", "b/m:0"]}},
        router={"retries": {"try_timeout": 0.05, "max_retries": 0}},
    )
    context = ctx()

    async def op(target: Target) -> str:
        if target.backend.name == "a":
            await asyncio.sleep(5)
        return target.label

    result, target = await router.call(router.resolve("chat"), context, op)
    assert (result, target.label) == ("b/m", "b/m")
    assert context.tries[0]["error"] == "upstream_timeout"


# --------------------------------------------------------------------- ejection and health


async def test_an_ejected_deployment_gets_no_traffic_until_it_recovers() -> None:
    router, backends = make(
        {"chat": {"deployments": ["a/m", "b/m"]}},
        router={"breaker": {"failures": 2, "ejection": 60}, **NO_PAUSE},
    )
    backends["a"].healthy = False
    backends["a"].enqueue(UpstreamUnavailable("a1"), UpstreamUnavailable("a2"))
    for _ in range(20):  # until both failures happened (a is first half of the time)
        await chat(router, "chat", ctx())
        if router.circuits.ejected_for("a/m"):
            break
    assert router.circuits.ejected_for("a/m") > 0
    backends["a"].calls.clear()
    for _ in range(50):
        assert (await chat(router, "chat", ctx())).label == "b/m"
    assert backends["a"].calls == []
    await router.check_ejected()  # health check still fails: stays out
    assert router.circuits.ejected_for("a/m") > 0
    backends["a"].healthy = True
    await router.check_ejected()
    assert router.circuits.ejected_for("a/m") == 0
    served = Counter([(await chat(router, "chat", ctx())).label for _ in range(60)])
    assert served["a/m"] > 0
    kinds = [e["event"] for e in router.events]
    assert kinds == ["deployment_ejected", "deployment_restored"]


async def test_never_all_deployments_are_ejected() -> None:
    router, _ = make(
        {"chat": {"deployments": ["a/m", "b/m"]}},
        router={"breaker": {"failures": 1, "max_ejected_share": 1.0}, **NO_PAUSE},
    )
    for name in "ab":
        router.circuits.failure(f"{name}/m")
    plan = router.plan(router.resolve("chat"), ctx(), {})
    assert len(plan) == 1  # one stays in: the one closest to coming back


async def test_max_ejected_share_keeps_deployments_in() -> None:
    router, _ = make(
        {"chat": {"deployments": ["a/m", "b/m", "c/m", "d/m"]}},
        router={"breaker": {"failures": 1, "max_ejected_share": 0.5}},
    )
    for name in "abc":
        router.circuits.failure(f"{name}/m")
    labels = {t.label for t in router.plan(router.resolve("chat"), ctx(), {})}
    assert len(labels) == 2 and "d/m" in labels


# ------------------------------------------------------------------------ weighted, sticky

DRAWS = 10_000
#: chi-square with k-1 = 2 degrees of freedom: P(X > x) = exp(-x/2); this x has P = 1e-6
CHI2_DF2_P_1E6 = -2 * math.log(1e-6)


def _chi2(counts: Counter[str], shares: dict[str, float], n: int) -> float:
    return sum((counts[k] - p * n) ** 2 / (p * n) for k, p in shares.items())


async def test_sticky_callers_keep_their_deployment_and_the_split_follows_weights() -> None:
    router, _ = make(
        {"chat": {"deployments": ["a/m:1", "b/m:2", "c/m:7"], "sticky": ["header:x-user"]}}
    )
    route = router.resolve("chat")
    first: dict[str, str] = {}
    for i in range(DRAWS):
        headers = {b"x-user": f"user-{i}".encode()}
        first[f"user-{i}"] = router.plan(route, ctx(headers=headers), {})[0].label
    counts = Counter(first.values())
    shares = {"a/m": 0.1, "b/m": 0.2, "c/m": 0.7}
    assert _chi2(counts, shares, DRAWS) < CHI2_DF2_P_1E6, counts
    for i in range(0, DRAWS, 97):  # the same caller, asked again, gets the same deployment
        headers = {b"x-user": f"user-{i}".encode()}
        assert router.plan(route, ctx(headers=headers), {})[0].label == first[f"user-{i}"]


async def test_sticky_sources_in_order_session_then_key() -> None:
    router, _ = make({"chat": {"deployments": ["a/m", "b/m"], "sticky": ["session", "key"]}})
    route = router.resolve("chat")
    by_session = {router.plan(route, ctx(), {"session_id": "s-1"})[0].label for _ in range(50)}
    assert len(by_session) == 1
    header_ctx = ctx(headers={b"x-session-id": b"s-1"})
    assert router.plan(route, header_ctx, {})[0].label in by_session
    keyed = ctx()
    keyed.principal = "key-abc"
    assert len({router.plan(route, keyed, {})[0].label for _ in range(50)}) == 1
    anonymous = {router.plan(route, ctx(), {})[0].label for _ in range(200)}
    assert anonymous == {"a/m", "b/m"}  # nothing to stick to: random


def test_sticky_point_is_stable_and_uniform() -> None:
    assert sticky_point("chat", "u1") == sticky_point("chat", "u1")
    assert sticky_point("chat", "u1") != sticky_point("other", "u1")
    points = [sticky_point("chat", str(i)) for i in range(DRAWS)]
    deciles = Counter(int(p * 10) for p in points)
    assert all(abs(deciles[d] - DRAWS / 10) < 200 for d in range(10)), deciles


async def test_runtime_weight_change_moves_traffic() -> None:
    router, _ = make({"chat": {"deployments": ["a/m:9", "b/m:1"]}})
    router.set_weights("chat", {"a/m": 0, "b/m": 5}, actor="tester")
    route = router.resolve("chat")
    assert {router.plan(route, ctx(), {})[0].label for _ in range(100)} == {"b/m"}
    assert router.events[-1]["event"] == "weights_changed"
    assert router.events[-1]["after"] == {"a/m": 0.0, "b/m": 5.0}
    with pytest.raises(InvalidRequest, match="no deployment 'x/m'"):
        router.set_weights("chat", {"x/m": 1})
    with pytest.raises(InvalidRequest, match="above 0"):
        router.set_weights("chat", {"b/m": 0})
    with pytest.raises(InvalidRequest, match=">= 0"):
        router.set_weights("chat", {"b/m": -1})


# -------------------------------------------------------------------------- strategies


async def test_latency_strategy_prefers_the_fastest_after_measuring_all() -> None:
    router, _ = make({"chat": {"deployments": ["a/m", "b/m"], "strategy": "latency"}})
    route = router.resolve("chat")
    router.stats.observe("a/m", True, 0.5)
    assert router.plan(route, ctx(), {})[0].label == "b/m"  # b not measured yet
    router.stats.observe("b/m", True, 0.1)
    assert {router.plan(route, ctx(), {})[0].label for _ in range(20)} == {"b/m"}


async def test_least_busy_strategy() -> None:
    router, _ = make({"chat": {"deployments": ["a/m", "b/m"], "strategy": "least_busy"}})
    route = router.resolve("chat")
    router.stats.get("a/m").in_flight = 3
    router.stats.get("b/m").in_flight = 1
    assert {router.plan(route, ctx(), {})[0].label for _ in range(20)} == {"b/m"}


async def test_cost_strategy_uses_prices_local_is_free_unknown_last() -> None:
    router, _ = make(
        {
            "chat": {"deployments": ["a/gpt-4o", "b/gpt-4o-mini", "c/mystery"], "strategy": "cost"},
            "priv": {"deployments": ["a/gpt-4o-mini", "d/own-model"], "strategy": "cost"},
        },
        local=("d",),
    )
    assert router.plan(router.resolve("chat"), ctx(), {})[0].label == "b/gpt-4o-mini"
    assert router.plan(router.resolve("priv"), ctx(), {})[0].label == "d/own-model"


def test_configured_prices_override_builtin_and_dated_names_match() -> None:
    config = Config.model_validate(
        {
            "backends": {n: {"base_url": DEAD_URL} for n in "ab"},
            "models": {"chat": _model({"deployments": ["a/gpt-4o", "b/gpt-4o-mini"]})},
            "prices": {"a/gpt-4o": {"input": 0.01, "output": 0.02}},
        }
    )
    router = Router(config, {n: ScriptedBackend(n) for n in "ab"})
    price = router.prices.lookup("a", "gpt-4o")
    assert price is not None and (price.input, price.output) == (0.01, 0.02)
    dated = router.prices.lookup("b", "gpt-4o-mini-2024-07-18")
    assert dated is not None and (dated.input, dated.output) == (0.15, 0.60)
    assert router.prices.lookup("b", "gpt-4o") == router.prices.lookup("x", "gpt-4o")
    assert router.prices.lookup("b", "no-such-model") is None


# ---------------------------------------------------------------------------- rollback


async def test_a_failing_canary_is_rolled_back() -> None:
    router, backends = make(
        {
            "chat": {
                "deployments": [
                    {"backend": "a", "model": "m", "weight": 5},
                    {"backend": "b", "model": "m", "weight": 5, "canary": True},
                ],
                "rollback": {"min_requests": 10, "max_error_rate_increase": 0.2},
            }
        },
        router={"retries": {"max_retries": 0}, "breaker": {"failures": 1000}},
    )
    backends["b"].enqueue(*(UpstreamUnavailable("canary broke") for _ in range(1000)))
    for _ in range(200):
        router._judged.clear()  # judge after every request instead of once a second
        await chat(router, "chat", ctx())
        if router.resolve("chat").targets[1].weight == 0:
            break
    canary = router.resolve("chat").targets[1]
    assert canary.weight == 0
    event = router.events[-1]
    assert event["event"] == "canary_rolled_back" and "error rate" in event["reason"]
    backends["b"].calls.clear()
    for _ in range(30):  # weight 0 and a canary: not even a fallback any more
        assert (await chat(router, "chat", ctx())).label == "a/m"
    assert backends["b"].calls == []


async def test_a_slow_canary_is_rolled_back() -> None:
    router, _ = make(
        {
            "chat": {
                "deployments": [
                    {"backend": "a", "model": "m"},
                    {"backend": "b", "model": "m", "canary": True},
                ],
                "rollback": {"min_requests": 5, "max_latency_ratio": 2},
            }
        }
    )
    for _ in range(10):
        router.stats.observe("a/m", True, 0.1)
        router.stats.observe("b/m", True, 0.15)
    router._judge(router.resolve("chat"))
    assert router.resolve("chat").targets[1].weight == 1  # 1.5x: within the limit
    for _ in range(10):
        router.stats.observe("b/m", True, 0.5)
    router._judged.clear()
    router._judge(router.resolve("chat"))
    assert router.resolve("chat").targets[1].weight == 0
    assert "p95 latency" in router.events[-1]["reason"]


# ----------------------------------------------------------------- privacy and fallbacks


async def test_local_only_plans_skip_hosted_deployments() -> None:
    router, backends = make(
        {"chat": {"deployments": ["a/gpt", "d/own:0"]}},
        local=("d",),
    )
    route = router.resolve("chat")
    assert [t.label for t in router.plan(route, ctx(), {}, local_only=True)] == ["d/own"]
    assert (await chat(router, "chat", ctx(), local_only=True)).label == "d/own"
    assert backends["a"].calls == []


async def test_local_only_without_a_local_deployment_refuses() -> None:
    router, backends = make({"chat": {"deployments": ["a/gpt", "b/gpt"]}})
    with pytest.raises(NoLocalDeployment, match="was not sent anywhere"):
        await chat(router, "chat", ctx(), local_only=True)
    assert backends["a"].calls == backends["b"].calls == []


async def test_local_only_does_not_fall_back_to_hosted() -> None:
    router, backends = make({"chat": {"deployments": ["d/own", "a/gpt"]}}, local=("d",))
    backends["d"].enqueue(*(UpstreamUnavailable("local down") for _ in range(10)))
    with pytest.raises(UpstreamUnavailable, match="local down"):
        await chat(router, "chat", ctx(), local_only=True)
    assert backends["a"].calls == []


async def test_fallback_models_come_after_the_own_deployments() -> None:
    router, backends = make(
        {
            "small": {"deployments": ["a/small"], "fallbacks": ["big"]},
            "big": {"deployments": ["b/big", "c/big:0"], "fallbacks": ["small"]},
        },
        router={"retries": {"max_retries": 0}},
    )
    backends["a"].enqueue(ContextLengthExceeded("too long for small"))
    context = ctx()
    assert (await chat(router, "small", context)).label == "b/big"
    route = router.resolve("small")
    assert [t.label for t in router.plan(route, ctx(), {})] == ["a/small", "b/big", "c/big"]


def test_fallbacks_must_name_other_models() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="fallbacks"):
        make({"chat": {"deployments": ["a/m"], "fallbacks": ["nope"]}})
    with pytest.raises(ValidationError, match="fallbacks"):
        make({"chat": {"deployments": ["a/m"], "fallbacks": ["chat"]}})


async def test_deadline_passing_during_backoff_ends_with_the_last_error() -> None:
    router, backends = make(
        {"chat": {"deployments": ["a/m"]}}, router={"retries": {"backoff": 10, "max_backoff": 10}}
    )
    backends["a"].enqueue(UpstreamTimeout("slow"), UpstreamTimeout("slow"))
    context = ctx(timeout=0.5)
    # the backoff draw may be shorter than the deadline; either way nothing outlives it
    with pytest.raises(UpstreamTimeout):
        await asyncio.wait_for(chat(router, "chat", context), 2)
