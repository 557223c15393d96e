"""What the request-body limits cost: the JSON depth check and the body read deadline.

    .venv/bin/python bench/json_depth.py              # prints a markdown table
    .venv/bin/python bench/json_depth.py --json PATH  # also writes the numbers as JSON

For bodies of several shapes, in µs per body (median of ``--repeat`` rounds, process CPU
time, which a busy machine inflates far less than wall time):

* ``orjson.loads``: the parse the gateway does anyway (the reference);
* ``depth check``: :func:`turnout.server.http.nested_deeper` on the raw body (two
  ``bytes.count`` calls settle bodies with fewer brackets than the limit; others are read
  with bytes operations, no Python loop over them);
* ``walk``: for comparison, a walk over the parsed containers (breadth first, no recursion),
  what the check would cost done the obvious way;
* ``json()``: the whole ``HttpRequest.json`` (body read with its deadline, parse, depth check)
  minus the same without the deadline and the depth check: what the limits add per request.

And the deadline mechanisms alone, per request: one ``asyncio.timeout`` (a timer per request)
against ``Deadlines.watch``/``release`` (one timer per process); and what the trusted-hosts
middleware (on by default while listening on loopback) adds to a request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from turnout.server.deadlines import Deadlines
from turnout.server.http import BodyLimits, HttpRequest, nested_deeper
from turnout.server.middleware.hosts import LOOPBACK_NAMES, TrustedHosts

DEPTH = 64


def shapes() -> dict[str, bytes]:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "units": {"enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    }
    turn = [{"role": "user", "content": "What is the weather in Paris? " * 4}] * 2
    return {
        "chat, 1 message (90 B)": orjson.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "Say hello"}]}
        ),
        "chat, 100 messages (13 kB)": orjson.dumps({"model": "m", "messages": turn * 50}),
        "chat, 20 tools (5 kB)": orjson.dumps(
            {"model": "m", "messages": turn, "tools": [tool] * 20}
        ),
        "chat, 2000 messages (1 MB)": orjson.dumps(
            {"model": "m", "messages": turn * 1000 + [{"role": "user", "content": "x" * 500_000}]}
        ),
    }


def walk_deeper(value: Any, limit: int) -> bool:
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        nxt: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            nxt += [c for c in children if isinstance(c, dict | list)]
        level = nxt
    return False


def cpu_us(fn: Callable[[], Any], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def runs(raw: bytes) -> int:
    return max(20, min(200_000, 20_000_000 // max(len(raw), 1)))


def measure_shape(raw: bytes) -> dict[str, float]:
    n = runs(raw)
    value = orjson.loads(raw)
    return {
        "orjson.loads": cpu_us(lambda: orjson.loads(raw), n),
        "depth check": cpu_us(lambda: nested_deeper(raw, DEPTH), n),
        "walk": cpu_us(lambda: walk_deeper(value, DEPTH), n),
        "counted only": float(raw.count(b"{") + raw.count(b"[") <= DEPTH),
        "json()": asyncio.run(added_by_limits(raw, n)),
    }


async def added_by_limits(raw: bytes, n: int) -> float:
    message = {"type": "http.request", "body": raw, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    scope = {"method": "POST", "path": "/v1/chat/completions", "headers": []}
    limits = BodyLimits(len(raw) + 1, DEPTH, Deadlines(60.0))

    async def with_limits() -> None:
        await HttpRequest(scope, receive).json(limits)

    async def without() -> None:
        req = HttpRequest(scope, receive)
        orjson.loads(await req._read_body(len(raw) + 1))

    return await _cpu_async(with_limits, n) - await _cpu_async(without, n)


async def _cpu_async(fn: Callable[[], Any], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await fn()
    return (time.process_time() - start) / n * 1e6


async def deadline_mechanisms(n: int = 200_000) -> dict[str, float]:
    loop = asyncio.get_running_loop()

    async def timer_per_request() -> None:
        async with asyncio.timeout_at(loop.time() + 60):
            pass

    deadlines = Deadlines(60.0)

    async def one_timer() -> None:
        deadlines.release(deadlines.watch())

    async def nothing() -> None:
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    hosts = TrustedHosts(app, hosts=list(LOOPBACK_NAMES))
    scope = {"type": "http", "headers": [(b"host", b"127.0.0.1:8400"), (b"accept", b"*/*")]}

    async def bare() -> None:
        await app(scope, None, None)

    async def checked() -> None:
        await hosts(scope, None, None)

    base = await _cpu_async(nothing, n)
    return {
        "asyncio.timeout per request": await _cpu_async(timer_per_request, n) - base,
        "Deadlines watch + release": await _cpu_async(one_timer, n) - base,
        "trusted-hosts check": await _cpu_async(checked, n) - await _cpu_async(bare, n),
    }


def median_of(repeat: int, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    rounds = [fn() for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    import uvloop

    results: dict[str, Any] = {"shapes": {}, "deadlines": {}}
    print("| body | orjson.loads | depth check | settled by the count | (a walk) | json() adds |")
    print("| --- | --: | --: | :-: | --: | --: |")
    for name, raw in shapes().items():
        r = median_of(args.repeat, lambda raw=raw: measure_shape(raw))
        results["shapes"][name] = r
        print(
            f"| {name} | {r['orjson.loads']:.2f} | {r['depth check']:.2f} "
            f"| {'yes' if r['counted only'] else 'no'} | {r['walk']:.2f} | {r['json()']:.2f} |"
        )
    d = median_of(args.repeat, lambda: uvloop.run(deadline_mechanisms()))
    results["deadlines"] = d
    print("\n| per request | µs |\n| --- | --: |")
    for name, value in d.items():
        print(f"| {name} | {value:.2f} |")
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
