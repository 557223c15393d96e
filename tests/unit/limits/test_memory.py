"""The in-memory limiter: token reservations and their settlement, bounded state."""

from __future__ import annotations

import pytest

from tests.unit.limits.conftest import Clock
from turnout.policies.limits import MemoryLimiter, Quota

#: 1000 tokens per minute, all of them at once
TOKENS = Quota(limit=1000, burst=1000)


@pytest.fixture
def limiter(clock: Clock) -> MemoryLimiter:
    return MemoryLimiter(clock=clock)


async def test_reserve_takes_the_amount_up_front(limiter: MemoryLimiter) -> None:
    reservation, decision = await limiter.reserve("t", TOKENS, 800)
    assert decision.allowed and decision.remaining == 200
    assert not reservation.settled
    refused, decision = await limiter.reserve("t", TOKENS, 300)
    assert not decision.allowed and refused.settled  # nothing to settle
    assert decision.retry_after == pytest.approx(100 * TOKENS.interval)


async def test_settle_refunds_what_was_not_used(limiter: MemoryLimiter) -> None:
    reservation, _ = await limiter.reserve("t", TOKENS, 800)
    await limiter.settle(reservation, 100)
    assert (await limiter.spend("t", TOKENS, 0)).remaining == 900
    await limiter.settle(reservation, 0)  # settled once only
    assert (await limiter.spend("t", TOKENS, 0)).remaining == 900


async def test_settle_charges_use_beyond_the_reservation(
    limiter: MemoryLimiter, clock: Clock
) -> None:
    reservation, _ = await limiter.reserve("t", TOKENS, 100)
    await limiter.settle(reservation, 1500)  # a longer prompt than estimated: 500 in debt
    debt = await limiter.spend("t", TOKENS, 0)
    assert not debt.allowed
    assert debt.retry_after == pytest.approx(500 * TOKENS.interval)
    clock.advance(debt.retry_after)
    assert (await limiter.spend("t", TOKENS, 0)).allowed


async def test_a_cancelled_stream_pays_its_partial_use(limiter: MemoryLimiter) -> None:
    reservation, _ = await limiter.reserve("t", TOKENS, 1000)
    limiter.settle_soon(reservation, 37)  # from synchronous accounting: applied at once
    assert reservation.settled
    assert (await limiter.spend("t", TOKENS, 0)).remaining == 963


async def test_a_full_refund_forgets_the_key(limiter: MemoryLimiter) -> None:
    reservation, _ = await limiter.reserve("t", TOKENS, 10)
    assert len(limiter) == 1
    await limiter.settle(reservation, 0)
    assert len(limiter) == 0


def test_idle_keys_are_dropped(clock: Clock) -> None:
    limiter = MemoryLimiter(clock=clock, max_keys=1000)
    quota = Quota(limit=60, burst=10)
    for i in range(100):
        limiter.spend_now(f"k{i}", quota)
    assert len(limiter) == 100
    clock.advance(1.0)  # every bucket is full again: the keys are idle
    for i in range(30):
        limiter.spend_now(f"fresh{i}", quota)
    assert len(limiter) == 100 - 2 * 30 + 30  # each operation drops up to two idle keys
    for i in range(60):
        limiter.spend_now(f"again{i}", quota)
    assert len(limiter) == 30 + 60  # the idle ones are gone; busy keys are kept
    assert limiter.evicted == 0


def test_the_size_cap_evicts_the_least_recently_used(clock: Clock) -> None:
    limiter = MemoryLimiter(clock=clock, max_keys=3)
    quota = Quota(limit=1, burst=1)
    for key in ("a", "b", "c"):
        assert limiter.spend_now(key, quota).allowed
    assert not limiter.spend_now("a", quota).allowed  # a refusal does not refresh the order
    limiter.charge_now("a", quota, 0)  # ... a charge does: b is now the oldest
    assert limiter.spend_now("d", quota).allowed
    assert len(limiter) == 3 and limiter.evicted == 1
    assert limiter.spend_now("b", quota).allowed  # b was forgotten ...
    assert limiter.evicted == 2  # ... and its return pushed out c
    assert not limiter.spend_now("a", quota).allowed
    assert limiter.spend_now("c", quota).allowed


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryLimiter(max_keys=0)
