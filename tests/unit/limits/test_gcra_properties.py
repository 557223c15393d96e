"""GCRA, property-based: whatever the arrival times and costs, the limit holds.

The properties, for ``limit`` units per ``period`` (one back every ``interval``), ``burst``
at once, starting from a full bucket:

* conformance: in any time window of length T, the units allowed are at most
  ``burst + T / interval`` (the definition of the limit);
* a refusal changes nothing, and its ``retry_after`` is exact: the same spend is refused just
  before it and allowed at it;
* ``remaining`` is exactly the number of unit spends that would be allowed right now;
* a subject spending at most the rate, after a full bucket, is never refused;
* a charge and the refund of it cancel out.

They run on the pure arithmetic (``gcra.spend`` / ``gcra.charge``) that the in-memory
limiter uses, with a clock the test moves; a last property checks that the Redis script
(the real Redis on 127.0.0.1:6379) decides exactly like it.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.unit.limits.conftest import REDIS_URL
from turnout.policies.limits.gcra import EPSILON, charge, spend
from turnout.policies.limits.redis_store import RedisLimiter
from turnout.policies.limits.rules import Quota

quotas = st.builds(
    Quota,
    limit=st.integers(min_value=1, max_value=100_000),
    burst=st.integers(min_value=1, max_value=500),
    period=st.sampled_from([1.0, 60.0, 3600.0]),
)
#: (seconds since the previous request, cost)
arrivals = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=30, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=20),
    ),
    min_size=1,
    max_size=200,
)
START = 1_000_000.0  # a monotonic clock is far from 0; keep the floats realistic


def run(quota: Quota, plan: list[tuple[float, int]]) -> list[tuple[float, int, bool]]:
    """(time, cost, allowed) for each arrival, from a full bucket."""
    tat, now, out = START, START, []
    for gap, cost in plan:
        now += gap
        tat, decision = spend(tat, now, quota, cost)
        out.append((now, cost, decision.allowed))
    return out


@settings(max_examples=300)
@given(quotas, arrivals)
def test_any_window_allows_at_most_burst_plus_its_length_worth(
    quota: Quota, plan: list[tuple[float, int]]
) -> None:
    events = run(quota, plan)
    allowed = [(t, cost) for t, cost, ok in events if ok]
    for i, (start, _) in enumerate(allowed):
        units = 0
        for t, cost in allowed[i:]:
            units += cost
            window = t - start
            # EPSILON: the comparisons' float slack, a millionth of a second per spend
            slack = (len(allowed) * EPSILON) / quota.interval
            assert units <= quota.burst + window / quota.interval + slack + 1e-9, (
                units,
                window,
                quota,
            )


@given(quotas, arrivals)
def test_a_refusal_changes_nothing_and_its_retry_after_is_exact(
    quota: Quota, plan: list[tuple[float, int]]
) -> None:
    tat, now = START, START
    for gap, cost in plan:
        now += gap
        new, decision = spend(tat, now, quota, cost)
        if decision.allowed:
            tat = new
            continue
        assert new == tat  # refused: the state is untouched
        wait = decision.retry_after
        if cost > quota.burst:
            continue  # never fits; retry_after says when the bucket is full, which is not enough
        assume(wait > 10 * EPSILON)
        assert not spend(tat, now + wait - 5 * EPSILON, quota, cost)[1].allowed
        assert spend(tat, now + wait, quota, cost)[1].allowed


@given(quotas, arrivals)
def test_remaining_is_exactly_what_can_be_spent_now(
    quota: Quota, plan: list[tuple[float, int]]
) -> None:
    assume(quota.burst <= 200)
    tat, now = START, START
    for gap, cost in plan:
        now += gap
        new, decision = spend(tat, now, quota, cost)
        if not decision.allowed:
            continue
        tat = new
        probe, spent = tat, 0
        while True:
            probe, more = spend(probe, now, quota, 1)
            if not more.allowed:
                break
            spent += 1
        assert spent == decision.remaining


@given(quotas, st.lists(st.floats(min_value=1.0, max_value=5.0), min_size=1, max_size=300))
def test_a_subject_within_the_rate_is_never_refused(quota: Quota, stretches: list[float]) -> None:
    """Spends of one unit, each at least one interval after the previous: all allowed."""
    tat, now = START, START
    for stretch in stretches:
        now += stretch * quota.interval
        tat, decision = spend(tat, now, quota, 1)
        assert decision.allowed


@given(
    quotas,
    st.floats(min_value=0, max_value=1e4),
    st.floats(min_value=-1e4, max_value=1e4),
    st.integers(min_value=1, max_value=10_000),
)
def test_a_charge_and_its_refund_cancel_out(
    quota: Quota, ahead: float, offset: float, units: int
) -> None:
    """From any state still in the future, +units then -units is where it started."""
    now = START + offset
    tat = now + ahead * quota.interval
    back = charge(charge(tat, now, quota, units), now, quota, -units)
    assert abs(back - tat) <= 1e-6 * max(1.0, abs(tat))


@given(quotas, st.integers(min_value=0, max_value=1000))
def test_a_fresh_subject_gets_exactly_the_burst(quota: Quota, extra: int) -> None:
    assume(quota.burst <= 500)
    tat, allowed = START, 0
    for _ in range(quota.burst + 1 + extra % 5):
        tat, decision = spend(tat, START, quota, 1)
        allowed += decision.allowed
    assert allowed == quota.burst


# ------------------------------------------------------------ the Redis script agrees

#: one unit back an hour at least: the microseconds a sequence takes in Redis change nothing
slow_quotas = st.builds(
    Quota,
    limit=st.integers(min_value=1, max_value=24),
    burst=st.integers(min_value=1, max_value=50),
    period=st.just(86400.0),
)
#: ("spend", cost) or ("charge", delta)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("spend"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("charge"), st.integers(min_value=-30, max_value=30)),
    ),
    min_size=1,
    max_size=40,
)


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_up(), reason="Redis is not running on 127.0.0.1:6379")
@settings(max_examples=60, deadline=None)
@given(slow_quotas, operations)
def test_the_redis_script_decides_like_the_arithmetic(
    quota: Quota, ops: list[tuple[str, int]]
) -> None:
    """The Lua script and gcra.py: the same decisions, the same remaining units."""
    asyncio.run(_compare(quota, ops))


async def _compare(quota: Quota, ops: list[tuple[str, int]]) -> None:
    prefix = f"turnout-test:{uuid.uuid4().hex}:"
    limiter = RedisLimiter(REDIS_URL, prefix=prefix, timeout=2.0)
    await limiter.start()
    tat = now = START  # the arithmetic at a frozen instant
    try:
        for kind, amount in ops:
            if kind == "charge":
                await limiter.charge("k", quota, amount)
                tat = charge(tat, now, quota, amount)
                continue
            got = await limiter.spend("k", quota, amount)
            tat, want = spend(tat, now, quota, amount)
            assert (got.allowed, got.remaining) == (want.allowed, want.remaining), (kind, amount)
            # Redis time moves on (milliseconds) while the arithmetic stands still
            assert got.retry_after == pytest.approx(want.retry_after, abs=1.0)
    finally:
        await limiter.client.delete(prefix + "k")
        await limiter.aclose()
