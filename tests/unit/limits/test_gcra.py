"""GCRA arithmetic, through the in-memory limiter with a clock the test moves."""

from __future__ import annotations

import pytest

from tests.unit.limits.conftest import Clock
from turnout.policies.limits import MemoryLimiter, Quota
from turnout.policies.limits.gcra import spend

#: 60 per minute: one unit back every second; 5 at once
QUOTA = Quota(limit=60, burst=5)


@pytest.fixture
def limiter(clock: Clock) -> MemoryLimiter:
    return MemoryLimiter(clock=clock)


def test_a_fresh_subject_gets_exactly_the_burst(limiter: MemoryLimiter) -> None:
    decisions = [limiter.spend_now("a", QUOTA) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert [d.limit for d in decisions] == [60] * 6
    assert decisions[4].reset_after == pytest.approx(5.0)
    assert decisions[5].retry_after == pytest.approx(1.0)
    assert decisions[5].reset_after == pytest.approx(5.0)


def test_retry_after_is_exact(limiter: MemoryLimiter, clock: Clock) -> None:
    for _ in range(5):
        assert limiter.spend_now("a", QUOTA).allowed
    refused = limiter.spend_now("a", QUOTA)
    clock.advance(refused.retry_after - 0.001)
    assert not limiter.spend_now("a", QUOTA).allowed
    clock.advance(0.001)
    allowed = limiter.spend_now("a", QUOTA)
    assert allowed.allowed and allowed.remaining == 0


def test_steady_rate_at_the_limit_is_always_allowed(limiter: MemoryLimiter, clock: Clock) -> None:
    for _ in range(5):
        limiter.spend_now("a", QUOTA)
    for _ in range(200):
        clock.advance(QUOTA.interval)
        assert limiter.spend_now("a", QUOTA).allowed


def test_a_rate_above_the_limit_is_cut_to_the_limit(limiter: MemoryLimiter, clock: Clock) -> None:
    allowed = 0
    for _ in range(600):  # two per second for five minutes
        clock.advance(0.5)
        allowed += limiter.spend_now("a", QUOTA).allowed
    assert allowed == 300 + QUOTA.burst - 1  # one per second, plus the burst, less the first


def test_subjects_are_counted_apart(limiter: MemoryLimiter) -> None:
    for _ in range(5):
        assert limiter.spend_now("a", QUOTA).allowed
    assert not limiter.spend_now("a", QUOTA).allowed
    assert limiter.spend_now("b", QUOTA).allowed


def test_the_bucket_refills_to_the_burst_and_no_further(
    limiter: MemoryLimiter, clock: Clock
) -> None:
    for _ in range(5):
        limiter.spend_now("a", QUOTA)
    clock.advance(3600)
    assert [limiter.spend_now("a", QUOTA).allowed for _ in range(6)] == [True] * 5 + [False]


def test_a_cost_larger_than_the_burst_never_fits() -> None:
    _, decision = spend(0.0, 0.0, QUOTA, QUOTA.burst + 1)
    assert not decision.allowed
    _, decision = spend(0.0, 0.0, QUOTA, QUOTA.burst)
    assert decision.allowed and decision.remaining == 0


def test_a_refusal_changes_nothing(limiter: MemoryLimiter, clock: Clock) -> None:
    for _ in range(5):
        limiter.spend_now("a", QUOTA)
    for _ in range(10):  # hammering while refused does not push the retry further out
        assert limiter.spend_now("a", QUOTA).retry_after == pytest.approx(1.0)


def test_cost_zero_asks_whether_the_subject_is_in_debt(
    limiter: MemoryLimiter, clock: Clock
) -> None:
    assert limiter.spend_now("a", QUOTA, 0).remaining == 5
    limiter.charge_now("a", QUOTA, 8)  # 3 units beyond the burst
    zero = limiter.spend_now("a", QUOTA, 0)
    assert not zero.allowed
    assert zero.retry_after == pytest.approx(3.0)
    clock.advance(3.0)
    assert limiter.spend_now("a", QUOTA, 0).allowed
    assert not limiter.spend_now("a", QUOTA, 1).allowed
    clock.advance(1.0)
    assert limiter.spend_now("a", QUOTA, 1).allowed


def test_many_small_intervals_do_not_drift() -> None:
    """Summed float intervals (1/7 s) still allow exactly the burst, then exactly the rate."""
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    quota = Quota(limit=420, burst=1000)
    assert sum(limiter.spend_now("a", quota).allowed for _ in range(1001)) == 1000
    clock.advance(quota.interval * 7000)
    assert sum(limiter.spend_now("a", quota).allowed for _ in range(1001)) == 1000


def test_quota_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Quota(limit=0, burst=1)
    with pytest.raises(ValueError):
        Quota(limit=1, burst=0)
