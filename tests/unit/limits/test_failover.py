"""When Redis fails: refuse (closed) or count in memory (local), quickly, logged once."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.unit.limits.conftest import Clock
from turnout.exceptions import LimiterUnavailable
from turnout.policies.limits import FailoverLimiter, MemoryLimiter, Quota
from turnout.policies.limits.redis_store import RedisLimiter

QUOTA = Quota(limit=60, burst=4)
#: generous: the timeouts are 0.25 s, but timing tests must never be flaky
QUICK = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def failover(port: int, mode: str, clock: Clock, errors: Counter, **kw: float) -> FailoverLimiter:
    store = RedisLimiter(f"redis://127.0.0.1:{port}/0", timeout=0.25)
    return FailoverLimiter(
        store,
        mode=mode,  # type: ignore[arg-type]
        fallback=MemoryLimiter(clock=clock),
        clock=clock,
        on_error=errors,
        where=store.where,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def hung_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP server that accepts and reads but never answers (a hung Redis)."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, received
    server.close()


async def test_closed_refuses_quickly_when_nothing_listens(clock: Clock) -> None:
    errors = Counter()
    limiter = failover(free_port(), "closed", clock, errors, retry_interval=2.0)
    started = time.perf_counter()
    with pytest.raises(LimiterUnavailable) as caught:
        await limiter.spend("k", QUOTA)
    assert time.perf_counter() - started < QUICK
    assert caught.value.status == 503
    assert caught.value.retry_after == 2.0
    assert "on_redis_error: local" in caught.value.message
    assert "127.0.0.1" not in caught.value.message  # the client learns nothing internal
    assert errors.count == 1
    await limiter.aclose()


async def test_local_counts_in_memory_at_its_share(clock: Clock) -> None:
    errors = Counter()
    limiter = failover(free_port(), "local", clock, errors, share=0.5)
    decisions = [await limiter.spend("k", QUOTA) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]  # half of the burst of 4
    assert decisions[0].limit == 30
    assert errors.count == 3
    await limiter.aclose()


async def test_a_hung_redis_is_bounded_by_the_timeout_and_then_left_alone(
    hung_server: tuple[int, list[bytes]], clock: Clock
) -> None:
    port, received = hung_server
    errors = Counter()
    limiter = failover(port, "local", clock, errors, retry_interval=5.0)
    started = time.perf_counter()
    assert (await limiter.spend("k", QUOTA)).allowed  # answered from memory
    assert time.perf_counter() - started < QUICK
    assert received, "the first call tried Redis"
    sent = sum(map(len, received))
    for _ in range(20):  # within the retry interval: Redis is not asked again
        await limiter.spend("k", QUOTA)
    assert sum(map(len, received)) == sent
    assert errors.count == 21
    clock.advance(5.0)
    started = time.perf_counter()
    await limiter.spend("k", QUOTA)
    assert time.perf_counter() - started < QUICK
    assert sum(map(len, received)) > sent, "after the interval one call tries again"
    await limiter.aclose()


async def test_the_outage_is_logged_once(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    errors = Counter()
    limiter = failover(free_port(), "closed", clock, errors, retry_interval=0.5)
    with caplog.at_level(logging.WARNING, logger="turnout.limits"):
        for _ in range(5):
            clock.advance(1.0)  # every call tries Redis again, and fails again
            with pytest.raises(LimiterUnavailable):
                await limiter.spend("k", QUOTA)
    records = [r for r in caplog.records if r.name == "turnout.limits"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "refusing requests (on_redis_error: closed)" in records[0].getMessage()
    assert errors.count == 5
    await limiter.aclose()


@pytest.fixture
def spare_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A port where a redis-server can be started by the test (stopped afterwards)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; it is needed to test recovery")
    processes: list[subprocess.Popen[bytes]] = []
    yield free_port(), processes
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


async def test_recovery_is_logged_once_and_limits_are_shared_again(
    spare_redis: tuple[int, list[subprocess.Popen[bytes]]],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, processes = spare_redis
    errors = Counter()
    limiter = failover(port, "local", clock, errors, retry_interval=1.0)
    with caplog.at_level(logging.WARNING, logger="turnout.limits"):
        await limiter.spend("k", QUOTA)
        assert limiter.down
        processes.append(
            subprocess.Popen(
                ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )
        await _wait_for_redis(port)
        clock.advance(1.0)
        decision = await limiter.spend("k", QUOTA)
        assert not limiter.down
        assert decision.remaining == QUOTA.burst - 1  # counted in Redis, from scratch
    messages = [r.getMessage() for r in caplog.records if r.name == "turnout.limits"]
    assert len(messages) == 2, messages
    assert "answers again" in messages[1]
    await limiter.aclose()


async def _wait_for_redis(port: int) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    try:
        for _ in range(100):
            try:
                await client.ping()
                return
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)
        pytest.fail(f"redis-server on port {port} did not start")
    finally:
        await client.aclose()
