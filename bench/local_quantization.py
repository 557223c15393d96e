"""Precision and quantization benchmark: the transformers engine on the CPU in float32,
in bfloat16 (``options.dtype: auto`` on a bfloat16 checkpoint, where the CPU computes it
natively) and with ``quantization: int8`` (float32 layers quantized), on the demo model in its
benchmark shape (56M parameters, random weights, saved in bfloat16).

For each setting, in one process after the other: the weight memory the engine reports
(``stats().memory_bytes``), the growth of the process's resident memory while loading, the
load time, and output tokens/s through continuous batching at concurrency 1 and 8 (greedy,
tokens counted from the usage of each response). Resident memory includes the engine's KV
cache (``num_blocks: 128``, in the model's dtype); for int8 the float32 weights are built
first and then quantized.

    python bench/local_quantization.py        # bench/results/local_quantization.{json,md}
    python bench/local_quantization.py --requests 16 --max-tokens 32
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


#: the settings measured: (quantization, options.dtype)
SETTINGS = (("none", "float32"), ("none", "auto"), ("int8", "auto"))


async def measure(model_dir: Path, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch  # noqa: F401  (imported before the baseline: its own memory is not the model's)
    import transformers  # noqa: F401

    from turnout.backends.base import BackendRequest, RequestContext
    from turnout.backends.local.transformers_engine import TransformersEngine

    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    quantization, dtype = setting.split("/")
    options = {"num_blocks": 128, "dtype": dtype}
    engine = TransformersEngine("bench", model_dir, options, quantization=quantization)
    started = time.perf_counter()
    await engine.load()
    load_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "quantization": quantization,
        "dtype": engine.stats().extra["dtype"],
        "weights_mb": round(engine.stats().memory_bytes / 1e6, 1),
        "rss_growth_mb": round((process.memory_info().rss - before) / 1e6, 1),
        "load_s": round(load_s, 2),
    }

    async def one(i: int) -> int:
        body = {
            "model": "bench",
            "messages": [{"role": "user", "content": f"request {i}: tell me about turnouts"}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
        }
        ctx = RequestContext.create(f"q{i}", 600.0)
        tokens = 0
        async for chunk in engine.stream_chat(BackendRequest(body=body), ctx):
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return tokens

    try:
        await asyncio.gather(*(one(i) for i in range(2)))  # warm
        for concurrency in (1, 8):
            started = time.perf_counter()
            counts: list[int] = []
            for first in range(0, args.requests, concurrency):
                batch = range(first, min(first + concurrency, args.requests))
                counts += await asyncio.gather(*(one(i) for i in batch))
            elapsed = time.perf_counter() - started
            result[f"tok_s_c{concurrency}"] = round(sum(counts) / elapsed, 1)
    finally:
        await engine.unload()
    return result


def run_one(setting: str, model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Each setting in a fresh process, so that resident memory is not shared."""
    cmd = [sys.executable, __file__, "--child", setting, "--model", str(model_dir)]
    cmd += ["--requests", str(args.requests), "--max-tokens", str(args.max_tokens)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(Path(args.model), args.child, args))))
        return

    from turnout.backends.local.demo_model import DemoShape, generate_demo_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = generate_demo_model(Path(tmp) / "bench-model", DemoShape.bench())
        results = [run_one(f"{q}/{d}", model_dir, args) for q, d in SETTINGS]
    table = [
        "| quantization | dtype | weights (MB) | process RSS growth, load + warm-up (MB) "
        "| load (s) | output tok/s c=1 | output tok/s c=8 |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        table.append(
            f"| {r['quantization']} | {r['dtype']} | {r['weights_mb']} | {r['rss_growth_mb']} "
            f"| {r['load_s']} "
            f"| {r['tok_s_c1']} | {r['tok_s_c8']} |"
        )
    print("\n".join(table))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "requests": args.requests,
        "max_tokens": args.max_tokens,
    }
    (RESULTS / "local_quantization.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    (RESULTS / "local_quantization.md").write_text("\n".join(table) + "\n")
    print("\nwritten to bench/results/local_quantization.{json,md}")


if __name__ == "__main__":
    main()
