"""Request log writer cost: what logging one request costs the gateway process, and how many
rows per second the writer sustains, on SQLite and PostgreSQL.

Measured, per database, over ``--records`` records (default 50,000) submitted in bursts of
1,000 with the writer running (its defaults: 0.5 s interval, batches of 500):

- ``submit``: wall time of one ``RequestLogWriter.submit()`` call (the request path's share);
- ``loop CPU/record``: CPU time of the event-loop thread (submits and the writer task:
  building rows, SQLAlchemy, the driver's loop side), per record;
- ``process CPU/record``: CPU time of the whole process (adds aiosqlite's thread);
- ``rows/s``: records over the wall time from the first submit to ``aclose()`` returning.

The database server's own CPU (PostgreSQL) is not counted. Records look like a chat request
routed once (two JSON columns filled). Results go to bench/results/request_log.{json,md}.

    python bench/request_log.py
    python bench/request_log.py --records 20000 --pg postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from turnout.storage.db import Database, parse_url
from turnout.storage.writer import RequestLogWriter
from turnout.telemetry.records import RequestRecord

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BURST = 1000
console = Console()


def record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"req_{i:012x}",
        started=time.time(),
        endpoint="chat",
        model="chat",
        principal="master",
        backend="openai",
        upstream_model="gpt-4o-mini",
        attempts=1,
        latency=0.412,
        ttft=0.088,
        prompt_tokens=412,
        completion_tokens=96,
        privacy="local",
        privacy_categories=["email"],
        tries=[{"deployment": "openai/gpt-4o-mini", "error": None, "latency": 0.41}],
    )


def submit_ns(writer: RequestLogWriter, n: int = 200_000) -> float:
    records = [record(i) for i in range(n)]
    start = time.perf_counter_ns()
    for r in records:
        writer.submit(r)
    return (time.perf_counter_ns() - start) / n


async def run(url: str, records: int) -> dict[str, Any]:
    database = Database(parse_url(url))
    await database.migrate()
    idle = RequestLogWriter(database, max_pending=10**7)  # never started: submit only
    per_submit = submit_ns(idle)
    idle._pending.clear()
    batch = [record(i) for i in range(records)]
    writer = RequestLogWriter(database)
    await writer.start()
    wall, loop_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
    for i in range(0, records, BURST):
        for r in batch[i : i + BURST]:
            writer.submit(r)
        await asyncio.sleep(0.005)  # requests keep arriving while the writer works
    await writer.aclose()
    wall = time.perf_counter() - wall
    loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
    await database.aclose()
    return {
        "submit_ns": round(per_submit, 1),
        "loop_cpu_us_per_record": round(loop_cpu / records * 1e6, 2),
        "process_cpu_us_per_record": round(cpu / records * 1e6, 2),
        "rows_per_second": round(records / wall),
    }


async def fresh_pg(admin_url: str) -> tuple[str, str]:
    name = f"turnout_bench_{time.time_ns() % 10**9}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


async def drop_pg(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await run(f"sqlite:///{tmp}/bench.db", args.records)
    if args.pg:
        url, name = await fresh_pg(args.pg)
        try:
            results["postgresql"] = await run(url, args.records)
        finally:
            await drop_pg(args.pg, name)
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    table = Table(title=f"request log writer, {args.records} records")
    lines = [
        "| database | submit | loop CPU/record | process CPU/record | rows/s |",
        "| --- | --: | --: | --: | --: |",
    ]
    for column in ("database", "submit", "loop CPU/record", "process CPU/record", "rows/s"):
        table.add_column(column, justify="right")
    for db, r in results.items():
        cells = [
            db,
            f"{r['submit_ns']:.0f} ns",
            f"{r['loop_cpu_us_per_record']:.1f} µs",
            f"{r['process_cpu_us_per_record']:.1f} µs",
            f"{r['rows_per_second']:,}",
        ]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL of a PostgreSQL server (a database is created and dropped); '' skips",
    )
    args = parser.parse_args()
    results = asyncio.run(main(args))
    markdown = report(results, args)
    RESULTS.mkdir(exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine()}
    (RESULTS / "request_log.json").write_text(json.dumps({**meta, "results": results}, indent=2))
    (RESULTS / "request_log.md").write_text(markdown)
