"""The Redis limiter: GCRA state shared by every replica, updated by one Lua script.

The script runs atomically inside Redis and reads Redis' own clock (``TIME``), so replicas
with skewed clocks still count against one timeline and a limit holds exactly across them.
It is loaded once (``SCRIPT LOAD``) and called by its SHA1 (``EVALSHA``); after a
``SCRIPT FLUSH`` or a fail-over to a fresh server it is loaded again on the first
``NOSCRIPT`` answer. Each key gets a TTL equal to the time until its bucket is full again,
so idle subjects vanish by themselves. Needs Redis 5 or later (effects replication).

Latency is bounded: connect and read timeouts are short, redis-py's own retries are off, and
every call also runs under an overall timeout. At most :data:`MAX_CONNECTIONS` connections
per process; a call beyond them waits for a free one (within the same timeouts). Any failure
becomes :class:`~turnout.exceptions.LimiterUnavailable`; the failover limiter decides what
follows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from turnout.exceptions import LimiterUnavailable
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.rules import Decision, Quota

__all__ = ["DEFAULT_PREFIX", "GCRA_SCRIPT", "MAX_CONNECTIONS", "RedisLimiter", "redacted_url"]

log = logging.getLogger("turnout.limits")

DEFAULT_PREFIX = "turnout:rl:"

#: KEYS[1]: the subject; ARGV: interval (µs), burst, cost, "1" to charge without asking.
#: Times are µs since 2023-11-14 (a nearer epoch keeps doubles exact to well under 1 µs).
#: Returns {allowed, remaining, reset_after µs, retry_after µs}, integers.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + cost * interval
local allow_at = new - burst * interval
if ARGV[4] ~= '1' and allow_at - now > 1 then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
if new > now then
  redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000))
else
  redis.call('DEL', KEYS[1])
end
local remaining = math.floor((now - allow_at + 1) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, math.ceil(new - now), 0}
"""
_SHA = hashlib.sha1(GCRA_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_US = 1_000_000


#: connections to Redis per process. A request beyond them waits for one (at most the
#: timeout) instead of failing: redis-py's default pool refuses the 101st concurrent call
#: ("Too many connections"), which turned a burst of requests into limiter failures.
MAX_CONNECTIONS = 64


def _client(url: str, timeout: float) -> aioredis.Redis:
    """Short timeouts, no retries inside redis-py, a bounded pool that waits when busy."""
    no_retry = Retry(NoBackoff(), 0)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=no_retry,
        health_check_interval=0,
    )
    return aioredis.Redis(connection_pool=pool, retry=no_retry)


def redacted_url(url: str) -> str:
    """``scheme://host:port/db`` without user name or password, for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "?"
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if parts.hostname else ""
    return f"{parts.scheme}://{host}{port}{path}"


class RedisLimiter(Limiter):
    """GCRA in Redis; see the module docstring. ``client`` is for tests and benchmarks."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.25,
        client: aioredis.Redis | None = None,
    ) -> None:
        super().__init__()
        self.where = redacted_url(url)
        self.prefix = prefix
        self.timeout = timeout
        self.client = client or _client(url, timeout)

    async def start(self) -> None:
        """Load the script; LimiterUnavailable if Redis does not answer (the failover
        limiter logs it and goes on: requests try again later)."""
        await self._load()

    async def aclose(self) -> None:
        await super().aclose()
        await self.client.aclose(close_connection_pool=True)

    async def spend(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        allowed, remaining, reset_us, retry_us = await self._run(key, quota, cost, force=False)
        return Decision(bool(allowed), quota.limit, remaining, reset_us / _US, retry_us / _US)

    async def charge(self, key: str, quota: Quota, delta: int) -> None:
        await self._run(key, quota, delta, force=True)

    async def _run(self, key: str, quota: Quota, cost: int, *, force: bool) -> list[int]:
        args = (self.prefix + key, repr(quota.interval * _US), quota.burst, cost, int(force))
        try:
            async with asyncio.timeout(self.timeout * 2):
                try:
                    result: Any = await self.client.evalsha(_SHA, 1, *args)
                except NoScriptError:
                    log.info("rate-limit script not in Redis %s (flushed?); loading", self.where)
                    await self.client.script_load(GCRA_SCRIPT)
                    result = await self.client.evalsha(_SHA, 1, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return [int(v) for v in result]

    async def _load(self) -> None:
        try:
            async with asyncio.timeout(self.timeout * 2):
                await self.client.script_load(GCRA_SCRIPT)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> LimiterUnavailable:
        reason = str(exc) or type(exc).__name__
        return LimiterUnavailable(f"The rate-limit store (Redis at {self.where}) failed: {reason}")
