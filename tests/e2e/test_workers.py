"""``turnout serve --workers 2``: both workers take traffic, and /metrics (whichever worker
answers it) and the request log count every request exactly once."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import UPSTREAM_KEY, Gateway, backend, deployment, run_gateway
from tests.fakes import FakeUpstream
from tests.storage.support import sqlite_url, stored_requests

BATCH = 40
MAX_REQUESTS = 2000


def requests_total(text: str) -> float:
    """The sum of ``turnout_requests_total`` over all label sets in a /metrics page."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "turnout_requests_total"
    )


def per_worker(metrics_dir: Path) -> dict[int, float]:
    """``turnout_requests_total`` of each worker, from its own file in the shared folder."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        try:
            metrics = MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
        except (struct.error, ValueError, OSError):
            continue  # a worker is creating the file right now
        counts[pid] = sum(
            sample.value
            for metric in metrics
            for sample in metric.samples
            if sample.name == "turnout_requests_total"
        )
    return counts


def wait_for(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_share_metrics_and_the_request_log(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    config = {
        "backends": {"fake": backend(upstream.base_url, UPSTREAM_KEY)},
        "models": {"chat": deployment("fake", "gpt-4o-mini")},
    }
    workdir = tmp_path / "gateway"
    with run_gateway(workdir, config=config, args=("--workers", "2")) as gw:
        home = workdir / "turnout-home"
        metrics_dir = home / "metrics" / str(gw.process.pid)

        def chat(i: int) -> None:
            body = {"model": "chat", "messages": [{"role": "user", "content": f"request {i}"}]}
            resp = gw.post("/v1/chat/completions", body)  # a new connection every time
            assert resp.status == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"] == f"echo: request {i}"

        def served() -> dict[int, float]:
            return {pid: n for pid, n in per_worker(metrics_dir).items() if n}

        # /readyz answered from one worker; each writes its metric files as its app is built
        wait_for(lambda: len(per_worker(metrics_dir)) >= 2)
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            # the kernel picks the worker for each new connection: send until both served
            while sent == 0 or (len(served()) < 2 and sent < MAX_REQUESTS):
                list(pool.map(chat, range(sent, sent + BATCH)))
                sent += BATCH
        assert len(served()) == 2, f"one worker served all {sent} requests: {served()}"
        wait_for(lambda: sum(served().values()) == sent)

        # /metrics, whichever worker answers, sums over both
        for _ in range(6):
            page = gw.get("/metrics", auth=False)
            assert page.status == 200
            assert requests_total(page.text) == sent, page.text

        # one request-log row per request, from both workers (one SQLite file, WAL)
        url = sqlite_url(home / "turnout.db")
        wait_for(lambda: len(stored_requests(url)) >= sent)
        records = stored_requests(url)
        assert len(records) == sent
        assert {r["status"] for r in records} == {200}
        assert len({r["request_id"] for r in records}) == sent
        assert len(upstream.requests_to("/v1/chat/completions")) == sent
        check_worker_pids(gw)


def check_worker_pids(gw: Gateway) -> None:
    """The server really runs two worker processes under the one that was started."""
    children = Path(f"/proc/{gw.process.pid}/task/{gw.process.pid}/children")
    if children.exists():
        pids = children.read_text().split()
        assert len(pids) >= 2, pids
