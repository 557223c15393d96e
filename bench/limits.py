"""What a rate-limit check costs per request: in memory and in Redis.

    .venv/bin/python bench/limits.py                        # memory, and Redis on 127.0.0.1
    .venv/bin/python bench/limits.py --redis redis://HOST:6379/0 --seconds 3

Four measurements, each for the in-memory limiter and the Redis limiter:

* ``spend``: one limiter call (GCRA update), one subject at a time, in a loop;
* ``spend x64``: the same with 64 calls in flight at once (Redis: 64 connections);
* ``policy``: what the server and the service do per request with ``per_ip`` set: the client
  IP from the scope, admission (requests), token reservation, settlement, the headers;
* ``gateway``: a whole ``GET /v1/models`` through the ASGI app in process (routing, the
  limit, auth, JSON), with limits off, in memory and in Redis: the difference is the cost.

Latencies are per call (p50, p99 of single calls; for ``spend x64`` the mean per call;
"CPU" is this process's CPU time per call, which a busy machine inflates far less), on
uvloop; each number is the median over ``--repeat`` rounds (default 3). Results are printed
as a markdown table, and with ``--json PATH`` written as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from turnout.backends.base import RequestContext, Usage
from turnout.config import Config, LimitsConfig, RateLimitRule, ServerConfig
from turnout.gateway import Gateway
from turnout.policies.limits import Admission, MemoryLimiter, Quota, RateLimitPolicy, Rule
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.redis_store import RedisLimiter
from turnout.server.app import TurnoutApp

QUOTA = Quota(limit=1_000_000_000, burst=1_000_000_000)  # never refuses: the cost of a check
RULE = Rule(requests_per_minute=10**9, burst=10**9, tokens_per_minute=10**9)
BODY = {"model": "m", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
CLIENTS = 1000
MASTER = "sk-bench"


def scope_for(i: int) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/v1/models",
        "headers": [(b"authorization", f"Bearer {MASTER}".encode())],
        "client": (f"10.0.{i // 250}.{i % 250}", 40000),
    }


async def timed(op: Callable[[int], Awaitable[Any]], seconds: float) -> tuple[list[float], float]:
    """Run ``op(i)`` one after another for ``seconds``: the duration of each, in µs, and the
    process's CPU time per call in µs (what a busy machine's other processes do not inflate)."""
    samples: list[float] = []
    for i in range(200):  # warm-up
        await op(i)
    deadline = time.perf_counter() + seconds
    cpu = time.process_time()
    i = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        await op(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
        i += 1
    return samples, (time.process_time() - cpu) * 1e6 / max(i, 1)


async def concurrent(op: Callable[[int], Awaitable[Any]], seconds: float, width: int) -> float:
    """Mean µs per call with ``width`` calls in flight."""
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < deadline:
            await op(i)
            i += width
            done += 1

    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(width)))
    return (time.perf_counter() - started) * 1e6 / max(done, 1)


def row(name: str, store: str, measured: tuple[list[float], float]) -> dict[str, Any]:
    samples, cpu = measured
    cuts = statistics.quantiles(samples, n=100)
    return {
        "measure": name,
        "store": store,
        "p50_us": round(cuts[49], 2),
        "p99_us": round(cuts[98], 2),
        "cpu_us": round(cpu, 2),
        "calls": len(samples),
    }


async def bench_limiter(limiter: Limiter, store: str, seconds: float) -> list[dict[str, Any]]:
    async def spend(i: int) -> None:
        await limiter.spend(f"ip:{i % CLIENTS}:r", QUOTA)

    out = [row("spend", store, await timed(spend, seconds))]
    mean = await concurrent(spend, seconds, 64)
    out.append({"measure": "spend x64", "store": store, "mean_us": round(mean, 2)})
    return out


async def bench_policy(policy: RateLimitPolicy, store: str, seconds: float) -> dict[str, Any]:
    async def one(i: int) -> None:
        ctx = RequestContext("req", deadline=0.0)
        subject = policy.ip_subject(scope_for(i % CLIENTS))
        assert subject is not None
        ctx.admission = Admission()
        await policy.admit(ctx.admission, subject)
        await policy.reserve(ctx, BODY)
        policy.settle(ctx, Usage(3, 5))
        ctx.admission.headers()

    result = row("policy", store, await timed(one, seconds))
    await policy.limiter.aclose()  # waits for the settlements sent off the path
    return result


def gateway_config(limits: LimitsConfig | None) -> Config:
    return Config(
        server=ServerConfig(master_key=MASTER, log_requests=False),
        local={"demo": False},
        limits=limits or LimitsConfig(),
        source="bench",
    )


async def bench_gateway(limits: LimitsConfig | None, store: str, seconds: float) -> dict[str, Any]:
    gateway = Gateway(gateway_config(limits))
    await gateway.start()
    app = TurnoutApp(gateway, manage_gateway=False)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    async def one(i: int) -> None:
        await app(scope_for(i % CLIENTS), receive, send)

    try:
        return row("gateway GET /v1/models", store, await timed(one, seconds))
    finally:
        await gateway.aclose()


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    results += await bench_limiter(MemoryLimiter(), "memory", args.seconds)
    results.append(
        await bench_policy(RateLimitPolicy(MemoryLimiter(), per_ip=RULE), "memory", args.seconds)
    )
    prefix = f"turnout-bench:{uuid.uuid4().hex}:"
    store = RedisLimiter(args.redis, prefix=prefix, timeout=1.0)
    await store.start()
    results += await bench_limiter(store, "redis", args.seconds)
    results.append(
        await bench_policy(
            RateLimitPolicy(RedisLimiter(args.redis, prefix=prefix, timeout=1.0), per_ip=RULE),
            "redis",
            args.seconds,
        )
    )
    await store.aclose()
    rule = RateLimitRule(requests_per_minute=10**9, burst=10**9)
    for name, limits in (
        ("off", None),
        ("memory", LimitsConfig(per_ip=rule)),
        ("redis", LimitsConfig(per_ip=rule, redis_url=args.redis, key_prefix=prefix)),
    ):
        results.append(await bench_gateway(limits, name, args.seconds))
    _clean(args.redis, prefix)
    return results


def _clean(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def _median(rows: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """One row: the median of each number over the rounds."""
    out = dict(rows[0])
    for field in ("p50_us", "p99_us", "cpu_us", "mean_us"):
        if field in out:
            out[field] = round(statistics.median(r[field] for r in rows), 2)
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| measure | store | p50 µs | p99 µs | CPU µs/call | mean µs (64 in flight) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for r in results:
        cells = [r.get(k, "") for k in ("p50_us", "p99_us", "cpu_us", "mean_us")]
        lines.append(f"| {r['measure']} | {r['store']} | " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    load_before = os.getloadavg()[0]
    rounds = [runner(main(args)) for _ in range(args.repeat)]
    results = [_median(rows) for rows in zip(*rounds, strict=True)]
    print(table(results))
    meta = {
        "python": sys.version.split()[0],
        "redis_py": redis.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": os.getloadavg()[0],
    }
    print(f"\n{meta}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=2)


if __name__ == "__main__":
    run()
