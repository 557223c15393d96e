"""One process, hundreds of limit checks at once: they queue for the bounded connection pool
instead of failing (redis-py's default pool refused the 101st with "Too many connections")."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from tests.unit.limits.conftest import REDIS_URL
from turnout.policies.limits import Quota
from turnout.policies.limits.redis_store import MAX_CONNECTIONS, RedisLimiter

QUOTA = Quota(limit=1, burst=100, period=86400)


async def test_many_concurrent_checks_share_the_pool(
    prefix: str, redis_client: aioredis.Redis
) -> None:
    limiter = RedisLimiter(REDIS_URL, prefix=prefix, timeout=5.0)
    await limiter.start()
    try:
        decisions = await asyncio.gather(*(limiter.spend("ip", QUOTA) for _ in range(500)))
    finally:
        await limiter.aclose()
    assert sum(d.allowed for d in decisions) == QUOTA.burst  # every one answered, exactly
    assert limiter.client.connection_pool.max_connections == MAX_CONNECTIONS
