"""Local engine benchmark, measured the way ``vllm bench serve`` measures: TTFT, TPOT,
end-to-end latency percentiles and output tokens/s, at several concurrency levels.

Two comparisons, each inside one run:

(a) the transformers engine served through the gateway (``turnout serve``, streaming to an
    aiohttp client like vllm bench serve's) against the same engine called directly
    in-process — goal: under 5 % lost output throughput;
(b) continuous batching against sequential generation (the engine's one-at-a-time decode
    loop, the path seeded requests take) at concurrency 16 — goal: at least 5x the aggregate
    output tokens/s.

The model is the demo model in its benchmark shape (Llama architecture, ~56M parameters,
random weights: the values do not matter for speed; saved in bfloat16 like released
checkpoints), generated locally, served in ``--dtype`` (default ``auto``: bfloat16 where the
CPU computes it natively, else float32; ``float32`` for the engine's old default).

    python bench/local_engine.py                  # everything, results in bench/results/
    python bench/local_engine.py --requests 32 --max-tokens 64 --concurrency 1,4,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MASTER = "sk-bench-local"
console = Console()

WORDS = [
    "the",
    "gateway",
    "routes",
    "requests",
    "between",
    "hosted",
    "APIs",
    "and",
    "local",
    "models",
    "with",
    "low",
    "latency",
    "and",
    "governs",
    "them",
    "with",
    "keys",
    "limits",
    "caches",
    "logs",
    "metrics",
    "and",
    "cost",
    "accounting",
    "for",
    "every",
    "team",
]


@dataclass
class Sample:
    ttft: float
    e2e: float
    tokens: int


@dataclass
class Run:
    target: str
    concurrency: int
    duration: float
    samples: list[Sample] = field(default_factory=list)
    #: CPU seconds of the serving process (the bench process in-process, the gateway's
    #: process through HTTP), which unlike wall time does not count waiting for a core
    cpu: float = 0.0

    def summary(self) -> dict[str, Any]:
        ttft = sorted(s.ttft for s in self.samples)
        e2e = sorted(s.e2e for s in self.samples)
        tpot = sorted((s.e2e - s.ttft) / (s.tokens - 1) for s in self.samples if s.tokens > 1)
        tokens = sum(s.tokens for s in self.samples)
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "requests": len(self.samples),
            "output_tokens": tokens,
            "duration_s": round(self.duration, 3),
            "output_tok_s": round(tokens / self.duration, 1),
            "cpu_ms_per_token": round(self.cpu / tokens * 1000, 3) if tokens else None,
            "ttft_ms": _pcts(ttft),
            "tpot_ms": _pcts(tpot),
            "e2e_ms": _pcts(e2e),
        }


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000

    return {
        "mean": round(statistics.fmean(values) * 1000, 2),
        "p50": round(pct(50), 2),
        "p90": round(pct(90), 2),
        "p99": round(pct(99), 2),
    }


def prompts(n: int, words: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


# -------------------------------------------------------------------- the two targets


async def run_direct(
    engine: Any, texts: list[str], concurrency: int, max_tokens: int, *, sequential: bool
) -> Run:
    from turnout.backends.base import BackendRequest, RequestContext

    run = Run("sequential" if sequential else "direct", concurrency, 0.0)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, text: str) -> None:
        body: dict[str, Any] = {
            "model": "bench",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
        }
        if sequential:
            body["seed"] = i  # seeded requests take the sequential decode loop
        async with gate:
            ctx = RequestContext.create(f"bench-{i}", 600)
            start = time.perf_counter()
            first = 0.0
            tokens = 0
            async for chunk in engine.stream_chat(BackendRequest(body), ctx):
                data = chunk.data
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                elif data["choices"] and data["choices"][0]["delta"].get("content") and not first:
                    first = time.perf_counter() - start
            run.samples.append(Sample(first, time.perf_counter() - start, tokens))

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))
    run.duration = time.perf_counter() - started
    run.cpu = time.process_time() - cpu
    return run


def _cpu_of(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


async def run_gateway(
    url: str, pid: int, texts: list[str], concurrency: int, max_tokens: int
) -> Run:
    """Stream through the gateway with a client like ``vllm bench serve``'s: aiohttp, each
    ``data:`` event parsed as JSON (orjson) — not the openai SDK, whose per-event cost would
    be charged to the gateway: both run on the same two cores."""
    import aiohttp
    import orjson

    run = Run("gateway", concurrency, 0.0)
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {MASTER}"}
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def one(session: aiohttp.ClientSession, text: str) -> None:
        body = {
            "model": "bench",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with gate:
            start = time.perf_counter()
            first = 0.0
            tokens = 0
            async with session.post("/v1/chat/completions", json=body) as resp:
                resp.raise_for_status()
                async for line in resp.content:
                    if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                        continue
                    chunk = orjson.loads(line[6:])
                    if chunk.get("usage"):
                        tokens = chunk["usage"]["completion_tokens"]
                    elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        first = first or time.perf_counter() - start
            run.samples.append(Sample(first, time.perf_counter() - start, tokens))

    started, cpu = time.perf_counter(), _cpu_of(pid)
    async with aiohttp.ClientSession(
        url, headers=headers, timeout=timeout, connector=connector
    ) as session:
        await asyncio.gather(*(one(session, t) for t in texts))
    run.duration = time.perf_counter() - started
    run.cpu = _cpu_of(pid) - cpu
    return run


def start_gateway(
    model_dir: Path, workdir: Path, dtype: str
) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "server": {"log_requests": True},
        "local": {
            "model_dirs": [str(model_dir.parent)],
            "keep_alive": -1,
            "models": {"bench": {"path": model_dir.name, "options": {"dtype": dtype}}},
        },
    }
    path = workdir / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TURNOUT_MASTER_KEY": MASTER, "TURNOUT_HOME": str(workdir / "home")}
    cmd = [sys.executable, "-m", "turnout", "serve", "--config", str(path), "--port", str(port)]
    log = (workdir / "gateway.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    tail = (workdir / "gateway.log").read_text(errors="replace")[-3000:]
    raise SystemExit(f"the gateway did not become ready within 120 s; its log ends:\n{tail}")


# ---------------------------------------------------------------------------- main


async def bench(args: argparse.Namespace, model_dir: Path, workdir: Path) -> list[Run]:
    from turnout.backends.local.transformers_engine import TransformersEngine

    levels = [int(c) for c in args.concurrency.split(",")]
    texts = prompts(args.requests, args.prompt_words)
    warm = prompts(4, args.prompt_words, seed=1)
    runs: list[Run] = []
    engine = TransformersEngine("bench", model_dir, {"num_blocks": 128, "dtype": args.dtype})
    await engine.load()
    console.print(f"engine dtype: {engine.stats().extra['dtype']}")
    proc, url = start_gateway(model_dir, workdir, args.dtype)
    steps = (len(levels) * 2 + 1) * args.rounds
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("benchmark", total=steps)
            await run_direct(engine, warm, 4, 8, sequential=False)
            await run_gateway(url, proc.pid, warm, 4, 8)
            for _ in range(args.rounds):  # rounds interleave the targets: load drifts
                for c in levels:
                    progress.update(task, description=f"direct c={c}")
                    runs.append(
                        await run_direct(engine, texts, c, args.max_tokens, sequential=False)
                    )
                    progress.advance(task)
                    progress.update(task, description=f"gateway c={c}")
                    runs.append(await run_gateway(url, proc.pid, texts, c, args.max_tokens))
                    progress.advance(task)
                progress.update(task, description=f"sequential c={max(levels)}")
                runs.append(
                    await run_direct(engine, texts, max(levels), args.max_tokens, sequential=True)
                )
                progress.advance(task)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await engine.unload()
    return runs


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| target | c | requests | output tok/s | CPU ms / token | TTFT p50 / p99 (ms) "
        "| TPOT p50 / p99 (ms) | E2E p50 / p99 (ms) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lines.append(
            f"| {r['target']} | {r['concurrency']} | {r['requests']} | {r['output_tok_s']} "
            f"| {r['cpu_ms_per_token']} | {r['ttft_ms']['p50']} / {r['ttft_ms']['p99']} "
            f"| {r['tpot_ms'].get('p50', '-')} / {r['tpot_ms'].get('p99', '-')} "
            f"| {r['e2e_ms']['p50']} / {r['e2e_ms']['p99']} |"
        )
    tok = _medians(results, "output_tok_s")
    cpu = _medians(results, "cpu_ms_per_token")
    lines += ["", "Medians over the rounds:", "", "| goal | value | pass |", "|---|--:|:-:|"]
    for c in sorted({c for t, c in tok if t == "gateway"}):
        lost = 1 - tok[("gateway", c)] / tok[("direct", c)]
        lines.append(
            f"| (a) lost throughput through the gateway, c={c} | {lost:.1%} "
            f"| {'✅' if lost < 0.05 else '❌'} |"
        )
    top = max(c for t, c in tok if t == "sequential")
    gain = tok[("direct", top)] / tok[("sequential", top)]
    lines.append(
        f"| (b) continuous batching / sequential, c={top} | {gain:.2f}x "
        f"| {'✅' if gain >= 5 else '❌'} |"
    )
    lines += ["", "| CPU per output token (medians) | value |", "|---|--:|"]
    for c in sorted({c for t, c in cpu if t == "gateway"}):
        extra = cpu[("gateway", c)] / cpu[("direct", c)] - 1
        lines.append(f"| gateway process / in-process, c={c} | {extra:+.1%} |")
    lines.append(
        f"| sequential / continuous batching, c={top} "
        f"| {cpu[('sequential', top)] / cpu[('direct', top)]:.2f}x |"
    )
    return "\n".join(lines)


def _medians(results: list[dict[str, Any]], key: str) -> dict[tuple[str, int], float]:
    groups: dict[tuple[str, int], list[float]] = {}
    for r in results:
        groups.setdefault((r["target"], r["concurrency"]), []).append(r[key])
    return {k: statistics.median(v) for k, v in groups.items()}


def _served_dtype(option: str) -> str:
    from turnout.backends.local.quantization import model_dtype

    return model_dtype(option, "cpu", "none", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-words", type=int, default=48)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all targets; medians")
    parser.add_argument("--dtype", default="auto", help="options.dtype of the engine")
    parser.add_argument("--out", type=Path, default=RESULTS / "local_engine.json")
    args = parser.parse_args()
    from turnout.backends.local.demo_model import DemoShape, generate_demo_model

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="turnout-bench-local-") as tmp:
        workdir = Path(tmp)
        with console.status("generating the benchmark model"):
            model_dir = generate_demo_model(workdir / "models" / "bench", DemoShape.bench())
        runs = asyncio.run(bench(args, model_dir, workdir))
    results = [r.summary() for r in runs]
    table = Table(*results[0].keys())
    for r in results:
        table.add_row(*(json.dumps(v) if isinstance(v, dict) else str(v) for v in r.values()))
    console.print(table)
    markdown = f"Served in {_served_dtype(args.dtype)}.\n\n" + report(results)
    console.print(markdown)
    console.print(f"load average before {load_before}, after {os.getloadavg()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "args": vars(args) | {"out": str(args.out)},
        "cpu_count": os.cpu_count(),
        "dtype": _served_dtype(args.dtype),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown + "\n")
    console.print(f"results: {args.out}")


if __name__ == "__main__":
    main()
