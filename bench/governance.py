"""What API keys, per-key limits, budgets and request logging cost on the hot path.

    .venv/bin/python bench/governance.py                       # 2 s per measurement, 3 rounds
    .venv/bin/python bench/governance.py --seconds 5 --json bench/results/governance.json

Whole ``POST /v1/chat/completions`` requests through the ASGI app in process (routing,
authentication, the permission check, limits, the inference service, accounting, the JSON
answer), against an in-process backend that answers at once, so that only the gateway's own
work is timed. Each configuration is a fresh gateway on a SQLite file in a temporary folder:

* ``master key``: the gateway core as ``make bench`` runs it, request log off;
* ``API key``: a developer key (SHA-256 + dict lookup, role check, allow-list, budget check,
  cost from the price table charged to the key), request log off;
* ``+ per-key limit``: the key has its own requests and tokens per minute (in memory);
* ``+ request log``: and every request is queued for the batch writer (SQLite);
* ``+ per-IP limit``: and the client IP is limited too (``limits.per_ip``).

Plus ``authenticate``: the key check alone, with 10 000 keys in the ring. Latencies are per
request (p50, p99); "CPU" is this process's CPU time per request, which a busy machine
inflates far less. Each number is the median over ``--repeat`` rounds. Printed as markdown;
``--json PATH`` writes JSON too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from turnout.backends.base import Backend, BackendRequest, Chunk, RequestContext, Result, Usage
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.policies.keys import KeyRing, hash_token, new_key
from turnout.router.router import Route, Target
from turnout.server.app import TurnoutApp

MASTER = "sk-bench-master"
BODY = orjson.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
)
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}
HUGE = 10**9


class InstantBackend(Backend):
    """Answers every chat at once with a fixed completion and its usage."""

    async def stream_chat(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def chat(self, request: BackendRequest, ctx: RequestContext) -> Result:
        return Result(dict(ANSWER), Usage(9, 2))


def config(data_dir: str, *, log: bool, per_ip: bool) -> Config:
    limits: dict[str, Any] = {}
    if per_ip:
        limits["per_ip"] = {"requests_per_minute": HUGE, "burst": HUGE, "tokens_per_minute": HUGE}
    return Config.model_validate(
        {
            "server": {"data_dir": data_dir, "master_key": MASTER, "log_requests": log},
            "local": {"demo": False},
            "limits": limits,
            "source": "bench",
        }
    )


async def gateway_for(data_dir: str, *, log: bool, per_ip: bool) -> tuple[Gateway, TurnoutApp]:
    gateway = Gateway(config(data_dir, log=log, per_ip=per_ip))
    backend = InstantBackend("up")
    gateway.backends["up"] = backend
    gateway.router.routes["bench"] = Route("bench", (Target(backend, "gpt-4o-mini"),))
    await gateway.start()
    return gateway, TurnoutApp(gateway, manage_gateway=False)


async def api_key(gateway: Gateway, limited: bool) -> str:
    body: dict[str, Any] = {"owner": "bench", "allowed_models": ["bench"], "budget": 1e9}
    if limited:
        body["limits"] = {"requests_per_minute": HUGE, "burst": HUGE, "tokens_per_minute": HUGE}
    from turnout.policies.keys import MASTER as MASTER_CALLER

    secret, _ = await gateway.key_service.create(MASTER_CALLER, body)
    return secret


def request(app: TurnoutApp, token: str) -> Callable[[int], Awaitable[None]]:
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    async def one(i: int) -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": headers,
            "query_string": b"",
            "client": (f"10.0.{i % 250}.{i % 7}", 40000),
        }
        await app(scope, receive, send)

    return one


async def timed(op: Callable[[int], Awaitable[Any]], seconds: float) -> tuple[list[float], float]:
    """Run ``op(i)`` one after another: each duration in µs, and CPU µs per call."""
    for i in range(300):  # warm-up
        await op(i)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    cpu = time.process_time()
    i = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        await op(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
        i += 1
    return samples, (time.process_time() - cpu) * 1e6 / max(i, 1)


def row(name: str, measured: tuple[list[float], float]) -> dict[str, Any]:
    samples, cpu = measured
    cuts = statistics.quantiles(samples, n=100)
    return {
        "measure": name,
        "p50_us": round(cuts[49], 2),
        "p99_us": round(cuts[98], 2),
        "cpu_us": round(cpu, 2),
        "calls": len(samples),
    }


VARIANTS = (
    # name, API key, per-key limit, request log, per-IP limit
    ("master key", False, False, False, False),
    ("API key", True, False, False, False),
    ("API key + per-key limit", True, True, False, False),
    ("API key + per-key limit + request log", True, True, True, False),
    ("API key + per-key limit + request log + per-IP limit", True, True, True, True),
)


async def bench_variant(
    name: str, keyed: bool, limited: bool, log: bool, per_ip: bool, seconds: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        gateway, app = await gateway_for(data_dir, log=log, per_ip=per_ip)
        try:
            token = await api_key(gateway, limited) if keyed else MASTER
            return row(name, await timed(request(app, token), seconds))
        finally:
            await gateway.aclose()


async def bench_authenticate(seconds: float) -> dict[str, Any]:
    from datetime import UTC, datetime

    from turnout.policies.keys import ApiKeyState

    ring = KeyRing()
    now = datetime.now(UTC)
    tokens = []
    for i in range(10_000):
        token, digest = new_key(f"tk_{i:012x}")
        ring.put(ApiKeyState(i, f"tk_{i:012x}", digest, "developer", "b", now, now))
        tokens.append(token.encode())
    assert hash_token(tokens[0]) == ring.get(0).hash  # type: ignore[union-attr]

    async def one(i: int) -> None:
        ring.authenticate(tokens[i % len(tokens)])

    return row("authenticate (10 000 keys)", await timed(one, seconds))


async def main(args: argparse.Namespace, round_: int) -> list[dict[str, Any]]:
    """One round; the variants run in a rotated order each round (no position is favoured),
    the results come back in the order of VARIANTS."""
    results = [await bench_authenticate(args.seconds)]
    order = [(i + round_) % len(VARIANTS) for i in range(len(VARIANTS))]
    measured: dict[int, dict[str, Any]] = {}
    for i in order:
        measured[i] = await bench_variant(*VARIANTS[i], seconds=args.seconds)
    return results + [measured[i] for i in range(len(VARIANTS))]


def _median(rows: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    out = dict(rows[0])
    for field in ("p50_us", "p99_us", "cpu_us"):
        out[field] = round(statistics.median(r[field] for r in rows), 2)
    return out


def table(results: list[dict[str, Any]]) -> str:
    base = next(r for r in results if r["measure"] == "master key")
    lines = [
        "| measure | p50 µs | p99 µs | CPU µs/request | CPU added vs master key |",
        "|---|--:|--:|--:|--:|",
    ]
    for r in results:
        added = (
            ""
            if r is base or "authenticate" in r["measure"]
            else (f"{r['cpu_us'] - base['cpu_us']:+.1f} µs")
        )
        cells = [r["p50_us"], r["p99_us"], r["cpu_us"], added]
        lines.append(f"| {r['measure']} | " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def run() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
    rounds = [runner(main(args, r)) for r in range(args.repeat)]
    results = [_median(rows) for rows in zip(*rounds, strict=True)]
    print(table(results))
    meta = {
        "python": sys.version.split()[0],
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
