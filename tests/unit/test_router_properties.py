"""Property-based tests (hypothesis) of the router's arithmetic: backoff, the retry budget,
the circuit breaker and the weighted (sticky) assignment."""

from __future__ import annotations

import bisect
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.scripted import ScriptedBackend
from tests.unit.support import DEAD_URL
from turnout.backends.base import RequestContext
from turnout.config import BreakerConfig, Config, RetryConfig
from turnout.pricing import PriceTable
from turnout.router.breaker import CircuitBoard
from turnout.router.retry import Backoff, RetryBudget
from turnout.router.router import Router, Target
from turnout.router.stats import StatsBoard
from turnout.router.strategies import weighted


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ backoff


@given(
    backoff=st.floats(0, 5),
    max_backoff=st.floats(0, 60),
    max_retry_after=st.floats(0, 100),
    retry=st.integers(1, 30),
    retry_after=st.none() | st.floats(0, 200),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_backoff_bounds(
    backoff: float,
    max_backoff: float,
    max_retry_after: float,
    retry: int,
    retry_after: float | None,
    draw: float,
) -> None:
    config = RetryConfig(backoff=backoff, max_backoff=max_backoff, max_retry_after=max_retry_after)
    delay = Backoff(config, rng=lambda: draw).delay(retry, retry_after)
    if retry_after is not None and retry_after > max_retry_after:
        assert delay is None
        return
    assert delay is not None
    assert delay >= (retry_after or 0.0)  # never sooner than the upstream asked
    assert delay <= max(max_backoff, retry_after or 0.0)  # never longer than the cap
    assert delay <= max(backoff * 2 ** (retry - 1), retry_after or 0.0) + 1e-9


# ------------------------------------------------------------------------------- budget

Op = tuple[str, float]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.just(0.0)),
        st.tuples(st.just("retry"), st.just(0.0)),
        st.tuples(st.just("wait"), st.floats(0, 4)),
    ),
    max_size=300,
)


@given(ratio=st.floats(0, 2), floor=st.floats(0, 3), events=ops)
def test_retries_never_exceed_their_share_of_any_window(
    ratio: float, floor: float, events: list[Op]
) -> None:
    clock = Clock()
    window = 10
    budget = RetryBudget(ratio, floor, window=window, clock=clock)
    requests: list[int] = []
    retries: list[int] = []
    for kind, amount in events:
        if kind == "wait":
            clock.now += amount
        elif kind == "request":
            budget.record_request()
            requests.append(int(clock.now))
        elif budget.try_spend():
            retries.append(int(clock.now))
            oldest = int(clock.now) - window
            in_window = sum(1 for t in requests if t > oldest)
            spent = sum(1 for t in retries if t > oldest)
            assert spent <= ratio * in_window + floor * window + 1e-9


# ------------------------------------------------------------------------------ breaker

breaker_ops = st.lists(
    st.one_of(
        st.just(("failure", 0.0)),
        st.just(("success", 0.0)),
        st.just(("restore", 0.0)),
        st.tuples(st.just("wait"), st.floats(0, 700)),
    ),
    max_size=200,
)


@settings(max_examples=300)
@given(
    failures=st.integers(1, 6),
    ejection=st.floats(0.5, 50),
    max_ejection=st.floats(1, 600),
    events=breaker_ops,
)
def test_breaker_invariants(
    failures: int, ejection: float, max_ejection: float, events: list[tuple[str, float]]
) -> None:
    clock = Clock()
    config = BreakerConfig(failures=failures, ejection=ejection, max_ejection=max_ejection)
    board = CircuitBoard(config, clock=clock)
    streak = 0  # consecutive failures counted while in rotation
    for kind, amount in events:
        was_out = board.ejected_for("x") > 0
        probation = board.circuit("x").probation
        if kind == "wait":
            clock.now += amount
            continue
        if kind == "success":
            board.success("x")
            if not was_out:
                streak = 0
            assert board.ejected_for("x") == (0 if not was_out else board.ejected_for("x"))
        elif kind == "restore":
            board.restore("x")
            if was_out:
                streak = 0
            assert board.ejected_for("x") == 0
        else:
            ejected = board.failure("x")
            if was_out:
                assert not ejected  # a late failure of an ejected deployment changes nothing
                continue
            streak += 1
            # ejects exactly at the threshold, or at once on probation
            assert ejected == (streak >= failures or probation)
            if ejected:
                duration = board.ejected_for("x")
                assert 0 < duration <= max_ejection + 1e-9
                assert duration >= min(ejection, max_ejection) - 1e-9
                streak = 0
        assert 0 <= board.ejected_for("x") <= max_ejection + 1e-9


# -------------------------------------------------------------------- weighted assignment


@given(
    weights=st.lists(st.floats(0.001, 1000), min_size=1, max_size=8),
    point=st.floats(0, 1, exclude_max=True),
)
def test_a_sticky_point_picks_the_target_whose_interval_holds_it(
    weights: list[float], point: float
) -> None:
    backend = ScriptedBackend("a")
    targets = [Target(backend, f"m{i}", w) for i, w in enumerate(weights)]
    chosen = weighted(targets, StatsBoard(), PriceTable(), point)
    bounds = list(itertools.accumulate(weights))
    index = min(bisect.bisect_right(bounds, point * bounds[-1]), len(targets) - 1)
    assert abs(bounds[targets.index(chosen)] - bounds[index]) <= 1e-6 * bounds[-1]


def _router(weights: list[float], sticky: list[str]) -> Router:
    deployments = [{"backend": "a", "model": f"m{i}", "weight": w} for i, w in enumerate(weights)]
    config: dict[str, Any] = {
        "backends": {"a": {"base_url": DEAD_URL}},
        "models": {"chat": {"deployments": deployments, "sticky": sticky}},
    }
    return Router(Config.model_validate(config), {"a": ScriptedBackend("a")})


@given(
    weights=st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=1, max_size=6).filter(
        lambda ws: any(w > 0 for w in ws)
    ),
    users=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=10),
    ejected=st.sets(st.integers(0, 5), max_size=5),
)
def test_plans_are_complete_sticky_and_respect_ejections(
    weights: list[float], users: list[str], ejected: set[int]
) -> None:
    router = _router(weights, ["session"])
    # a still clock: on a loaded machine an ejection must not run out between two plans
    router.circuits._clock = lambda: 1000.0
    for i in ejected:
        if i < len(weights):
            for _ in range(router.breaker.failures):
                router.circuits.failure(f"a/m{i}")
    route = router.resolve("chat")
    out = {f"a/m{i}" for i in ejected if i < len(weights)}
    for user in users:
        ctx = RequestContext("r", deadline=1e18)
        plan = router.plan(route, ctx, {"session_id": user})
        labels = [t.label for t in plan]
        assert len(labels) == len(set(labels))  # each deployment at most once
        assert plan, "never an empty plan: one deployment always stays in"
        assert len(plan) >= len(weights) - len(out)
        left_out = {t.label for t in route.targets} - set(labels)
        assert left_out <= out  # only ejected deployments are left out
        live = [t for t in plan if t.weight > 0]
        if live:
            assert plan[0].weight > 0  # the first pick is never a weight-0 standby
        again = router.plan(route, RequestContext("r", 1e18), {"session_id": user})
        assert again[0] is plan[0]  # the same caller, the same deployment
