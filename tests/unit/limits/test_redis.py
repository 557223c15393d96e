"""The Redis limiter against the real Redis on 127.0.0.1:6379 (skipped when it is absent):
exact limits shared by two replicas, the same arithmetic as in memory, TTLs, reloading the
script after SCRIPT FLUSH."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.unit.limits.conftest import REDIS_URL
from turnout.policies.limits import Quota
from turnout.policies.limits.redis_store import RedisLimiter, redacted_url

#: refills so slowly (one unit a day) that time passing during a test changes nothing
SLOW = Quota(limit=1, burst=50, period=86400)


@pytest.fixture
async def replicas(prefix: str, redis_client: aioredis.Redis) -> AsyncIterator[list[RedisLimiter]]:
    """Two limiters with their own connections: two gateway replicas sharing one Redis."""
    limiters = [RedisLimiter(REDIS_URL, prefix=prefix, timeout=2.0) for _ in range(2)]
    for limiter in limiters:
        await limiter.start()
    yield limiters
    for limiter in limiters:
        await limiter.aclose()


async def test_two_replicas_share_one_limit_exactly(replicas: list[RedisLimiter]) -> None:
    calls = [replicas[i % 2].spend("ip:1", SLOW) for i in range(100)]
    decisions = await asyncio.gather(*calls)
    assert sum(d.allowed for d in decisions) == SLOW.burst
    remaining = sorted(d.remaining for d in decisions if d.allowed)
    assert remaining == list(range(SLOW.burst))  # every unit handed out once
    refused = [d for d in decisions if not d.allowed]
    assert all(d.retry_after == pytest.approx(86400, abs=1) for d in refused)


async def test_the_arithmetic_matches_memory(replicas: list[RedisLimiter]) -> None:
    quota = Quota(limit=60, burst=3)
    a, b = replicas
    decisions = [await (a if i % 2 else b).spend("k", quota) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after == pytest.approx(1.0, abs=0.05)
    assert decisions[2].reset_after == pytest.approx(3.0, abs=0.05)
    await asyncio.sleep(decisions[3].retry_after + 0.01)
    assert (await a.spend("k", quota)).allowed


async def test_reserve_and_settle(replicas: list[RedisLimiter]) -> None:
    tokens = Quota(limit=1000, burst=1000, period=86400)
    a, b = replicas
    reservation, decision = await a.reserve("t", tokens, 800)
    assert decision.allowed and decision.remaining == 200
    assert not (await b.reserve("t", tokens, 300))[1].allowed
    await a.settle(reservation, 100)  # 700 come back
    assert (await b.spend("t", tokens, 0)).remaining == 900
    over, _ = await b.reserve("t", tokens, 100)
    await b.settle(over, 2000)  # used far more than reserved: in debt
    assert not (await a.spend("t", tokens, 0)).allowed


async def test_keys_expire_when_the_bucket_is_full_again(
    replicas: list[RedisLimiter], redis_client: aioredis.Redis, prefix: str
) -> None:
    quota = Quota(limit=600, burst=10)  # 0.1 s per unit
    limiter = replicas[0]
    for _ in range(3):
        await limiter.spend("ttl", quota)
    ttl = await redis_client.pttl(prefix + "ttl")
    assert 0 < ttl <= 300
    reservation, _ = await limiter.reserve("gone", quota, 5)
    assert await redis_client.exists(prefix + "gone")
    await limiter.settle(reservation, 0)
    assert not await redis_client.exists(prefix + "gone")
    await asyncio.sleep(0.35)
    assert not await redis_client.exists(prefix + "ttl")


async def test_the_script_is_loaded_again_after_script_flush(
    replicas: list[RedisLimiter], redis_client: aioredis.Redis
) -> None:
    limiter = replicas[0]
    assert (await limiter.spend("f", SLOW)).remaining == SLOW.burst - 1
    await redis_client.script_flush()
    assert (await limiter.spend("f", SLOW)).remaining == SLOW.burst - 2  # state kept too
    assert (await replicas[1].spend("f", SLOW)).remaining == SLOW.burst - 3


def test_urls_are_logged_without_credentials() -> None:
    assert redacted_url("redis://user:secret@cache.internal:6380/2") == (
        "redis://cache.internal:6380/2"
    )
    assert redacted_url("rediss://:pw@host") == "rediss://host"
    assert redacted_url("unix:///run/redis.sock?db=1") == "unix:///run/redis.sock"
