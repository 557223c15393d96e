"""Privacy detector speed: microseconds per kB of prompt, on 10 kB prompts.

The issue's goal: detection well under a millisecond per kB. Each prompt is built to
10,240 bytes of UTF-8 (so a Chinese prompt has about a third as many characters), and each
measurement is one call on the whole prompt, repeated many times:

- ``clean_en``, ``clean_zh``: ordinary prose with numbers, dates and prices, nothing to find;
- ``findings``: English and Chinese prose with a dozen findings of every category;
- ``numbers``: a log and order table (timestamps, order numbers, amounts, versions):
  the most digit runs a prompt has, none of them sensitive;
- ``code``: Python source (identifiers with ``_`` and ``-``, hex, ``::``, ``@`` decorators).

Timed: ``Detector.scan_text`` on the text, ``Detector.scan_request`` on a chat body whose
user message is the text, and ``Detector.redact_request`` on the same body. The detector is
built once from the default configuration plus, with ``--custom``, three operator patterns
and ten keywords.

    python bench/privacy.py                     # 2000 runs per prompt and call
    python bench/privacy.py --runs 500 --custom
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from turnout.config import PrivacyConfig
from turnout.policies.privacy import Detector

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SIZE = 10 * 1024
console = Console(width=max(Console().width, 110))

EN = [
    "Summarise the attached report on quarterly revenue in three bullet points.",
    "Our Q3 revenue was $4.2M, up 18% from Q2; churn fell to 2.1% and NPS rose to 47.",
    "The train leaves at 08:45 from platform 9 and arrives at 12:10 on 2024-03-15.",
    "Compare PostgreSQL 16 and MySQL 8.0 for an analytics workload of 3 TB.",
    "Kubernetes pod keeps restarting with exit code 137 after 2 minutes; why?",
    "The invoice total is 1,299.00 EUR including 19% VAT, due within 30 days.",
    "Rewrite this paragraph so that it sounds more formal and less hurried.",
    "Plan a 3-day trip to Kyoto with a budget of 1500 dollars for two people.",
]
ZH = [
    "请帮我总结这份季度报告的要点，分三条列出。",
    "我们第三季度营收 4.2 亿元，同比增长 18%，请写一段新闻稿。",
    "北京到上海的高铁大约需要 4 小时 28 分钟，票价 553 元。",
    "2024年3月15日的会议纪要请整理成表格，并标出负责人。",
    "用 Python 写一个快速排序，并分析时间复杂度 O(n log n)。",
    "今天气温 26 摄氏度，湿度 65%，适合跑步吗？请给出建议。",
]
FINDINGS = [
    "Please email the contract to maria.gonzalez@acme-corp.com today.",
    "我的手机号是13800138000，身份证号11010519491231002X。",
    "Charge card 4111 1111 1111 1111, or wire to DE89 3704 0044 0532 0130 00.",
    "The database at 10.0.12.7 is down; key AKIAZ7QK2M4P6R8T3V5X leaked.",
    "Call (415) 555-0132 or +44 20 7946 0958, SSN 536-22-8726.",
    "OPENAI_API_KEY=sk-proj-Xq3vT9bLm2Rk7Wd4Fh8Jn1Pc6Ys0Ga5UeXq3vT9bLm2Rk7Wd4",
]
CODE = """\
@app.route("/api/v1/orders/<int:order_id>", methods=["GET"])
def get_order(order_id: int) -> dict[str, Any]:
    row = db.execute("SELECT id, total, created_at FROM orders WHERE id = ?", (order_id,))
    cache_key = f"order-{order_id}-v2"  # sha 9fceb02d0ae598e95dc970b74767f19372d61af8
    items = [x for x in row.items if x.qty > 0][1::2]
    return {"id": row.id, "total": round(row.total * 1.19, 2), "ts": row.created_at}
"""


def numbers_line(rng: random.Random) -> str:
    return (
        f"2024-03-{rng.randint(10, 28)} {rng.randint(10, 23)}:{rng.randint(10, 59)}:"
        f"{rng.randint(10, 59)}.{rng.randint(100, 999)} INFO order "
        f"ORD-2024{rng.randint(1000, 9999)}-{rng.randint(10000, 99999)} "
        f"amount {rng.randint(1, 9999)}.{rng.randint(10, 99)} "
        f"qty {rng.randint(1, 50)} took {rng.randint(1, 900)} ms v{rng.randint(1, 9)}."
        f"{rng.randint(0, 20)}.{rng.randint(0, 99)}"
    )


def fill(pieces: Callable[[int], str]) -> str:
    """Pieces joined by newlines up to exactly SIZE bytes of UTF-8 (cut at a character)."""
    out: list[str] = []
    size, i = 0, 0
    while size < SIZE:
        piece = pieces(i)
        out.append(piece)
        size += len(piece.encode()) + 1
        i += 1
    return "\n".join(out).encode()[:SIZE].decode("utf-8", errors="ignore")


def prompts() -> dict[str, str]:
    rng = random.Random(7)
    mixed = EN + ZH

    def with_findings(i: int) -> str:
        return FINDINGS[(i // 6) % len(FINDINGS)] if i % 6 == 5 else mixed[i % len(mixed)]

    return {
        "clean_en": fill(lambda i: EN[i % len(EN)]),
        "clean_zh": fill(lambda i: ZH[i % len(ZH)]),
        "findings": fill(with_findings),
        "numbers": fill(lambda i: numbers_line(rng)),
        "code": fill(lambda i: CODE),
    }


def custom_config() -> PrivacyConfig:
    return PrivacyConfig(
        patterns={
            "employee_id": r"EMP-\d{6}\b",
            "project": r"(?i)project[ -](?:falcon|osprey|heron)\b",
            "contract": r"CT-\d{4}-\d{4}",
        },
        keywords=["Falcon", "机密", "internal only", "do not distribute", "绝密", "Osprey",
                  "confidential", "Heron", "内部资料", "acquisition"],
    )  # fmt: skip


def measure(
    fn: Callable[[], Any], runs: int, tick: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Microseconds per call, wall clock and this thread's CPU time, sorted: ``runs`` calls
    after a warm-up, the garbage collector paused. On a busy machine the wall clock also
    counts the time the thread waited for a core; the CPU time does not."""
    for _ in range(min(50, runs)):
        fn()
    wall, cpu = [], []
    gc.disable()
    try:
        for _ in range(runs):
            start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
            fn()
            cpu.append((time.thread_time_ns() - start_cpu) / 1000)
            wall.append((time.perf_counter_ns() - start) / 1000)
            tick()
    finally:
        gc.enable()
    return sorted(wall), sorted(cpu)


def pct(times: list[float], q: float) -> float:
    return times[min(len(times) - 1, int(q * len(times)))]


def run(runs: int, custom: bool) -> list[dict[str, Any]]:
    detector = Detector(custom_config() if custom else None)
    cases = prompts()
    results = []
    with Progress(console=console) as progress:
        task = progress.add_task("privacy detector", total=runs * 3 * len(cases))
        for name, text in cases.items():
            body = {"model": "m", "messages": [{"role": "user", "content": text}]}
            calls: dict[str, Callable[[], Any]] = {
                "scan_text": lambda t=text: detector.scan_text(t),  # type: ignore[misc]
                "scan_request": lambda b=body: detector.scan_request(b),  # type: ignore[misc]
                "redact_request": lambda b=body: detector.redact_request(b),  # type: ignore[misc]
            }
            kb = len(text.encode()) / 1024
            for call, fn in calls.items():
                progress.update(task, description=f"{name}: {call}")
                wall, cpu = measure(fn, runs, lambda: progress.advance(task))
                row: dict[str, Any] = {
                    "prompt": name,
                    "call": call,
                    "chars": len(text),
                    "bytes": len(text.encode()),
                    "findings": len(detector.scan_text(text)),
                }
                for clock, times in (("wall", wall), ("cpu", cpu)):
                    for q in (50, 99):
                        row[f"{clock}_p{q}_us"] = round(pct(times, q / 100), 1)
                        row[f"{clock}_p{q}_us_per_kb"] = round(pct(times, q / 100) / kb, 2)
                results.append(row)
    return results


COLUMNS = ["wall_p50_us", "wall_p99_us", "cpu_p50_us", "cpu_p99_us"]
COLUMNS += ["wall_p50_us_per_kb", "wall_p99_us_per_kb", "cpu_p50_us_per_kb", "cpu_p99_us_per_kb"]
#: the goal is "well under 1000 µs per kB"; a quarter of that is what this calls well under
GOAL_US_PER_KB = 250.0


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as the markdown table recorded in docs/benchmarks.md."""
    lines = [
        "| prompt | call | chars | findings | wall p50 / p99 (µs) | CPU p50 / p99 (µs) "
        "| wall p50 / p99 per kB | CPU p50 / p99 per kB |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lines.append(
            f"| {r['prompt']} | `{r['call']}` | {r['chars']} | {r['findings']} "
            f"| {r['wall_p50_us']} / {r['wall_p99_us']} | {r['cpu_p50_us']} / {r['cpu_p99_us']} "
            f"| {r['wall_p50_us_per_kb']} / {r['wall_p99_us_per_kb']} "
            f"| {r['cpu_p50_us_per_kb']} / {r['cpu_p99_us_per_kb']} |"
        )
    return "\n".join(lines)


SHOWN = ["prompt", "call", "findings", "wall_p50_us", "wall_p99_us", "cpu_p50_us", "cpu_p99_us"]
SHOWN += ["cpu_p99_us_per_kb"]


def show(results: list[dict[str, Any]]) -> None:
    table = Table(title="privacy detector, 10 kB prompts (µs)")
    for column in SHOWN:
        label = column.replace("_us_per_kb", " /kB").replace("_us", "").replace("_", " ")
        table.add_column(label, justify="left" if column in ("prompt", "call") else "right")
    for r in results:
        table.add_row(*(str(r[c]) for c in SHOWN))
    console.print(table)
    worst = max(r["cpu_p99_us_per_kb"] for r in results)
    verdict = "met" if worst < GOAL_US_PER_KB else "NOT met"
    console.print(
        f"worst CPU p99: {worst:.1f} µs per kB; goal (under {GOAL_US_PER_KB:.0f} µs per kB, "
        f"well under 1 ms): {verdict}"
    )


def git_revision() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="calls per prompt and call kind")
    parser.add_argument("--custom", action="store_true", help="add 3 patterns and 10 keywords")
    parser.add_argument("--out", type=Path, default=RESULTS / "privacy.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = run(args.runs, args.custom)
    show(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "git": git_revision(),
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "runs": args.runs,
        "custom": args.custom,
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results) + "\n")
    console.print(f"results in {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
