"""A backend with ``launch:``: the real gateway starts the engine server (the fake upstream run
as a process, ``python -m tests.fakes``), routes to it once it is healthy, restarts it when it is
killed, and stops it on shutdown. Every wait polls (the engine's pid file, the gateway's
answers or its log) with a generous deadline; nothing sleeps a guessed time."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import (
    UPSTREAM_KEY,
    Gateway,
    assert_error,
    backend,
    deployment,
    free_port,
    run_gateway,
)
from tests.fakes import FakeUpstream
from tests.rawhttp import RawResponse

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)
    return result


def pids(pid_file: Path) -> list[int]:
    """Every pid the engine wrote, one per start."""
    try:
        return [int(line) for line in pid_file.read_text().split()]
    except FileNotFoundError:
        return []


def engine_backend(port: int, command: list[str], **launch: Any) -> dict[str, Any]:
    return {
        "base_url": f"http://127.0.0.1:{port}/v1",
        "timeout": {"connect": 2, "read": 10, "total": 10},
        "launch": {
            "command": command,
            "cwd": str(ROOT),
            "health_path": "/health",
            "health_interval": 0.5,
            "max_backoff": 2,
            "stop_timeout": 5,
            **launch,
        },
    }


def fake_engine(port: int, pid_file: Path, *args: str) -> list[str]:
    base = [sys.executable, "-m", "tests.fakes", "--port", str(port), "--pid-file", str(pid_file)]
    return [*base, *args]


def ask(gateway: Gateway, model: str, text: str = "hello engine") -> RawResponse:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return gateway.post("/v1/chat/completions", body)


def answers(gateway: Gateway, model: str, text: str = "hello engine") -> bool:
    resp = ask(gateway, model, text)
    if resp.status == 200:
        assert resp.json()["choices"][0]["message"]["content"] == f"echo: {text}"
        return True
    assert_error(resp, 503, code="upstream_unavailable")  # fails fast while (re)starting
    return False


# ------------------------------------------------------------------------------ tests


def test_gateway_starts_routes_to_restarts_and_stops_the_engine(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    port, pid_file, gate = free_port(), tmp_path / "engine.pid", tmp_path / "go"
    config = {
        "backends": {
            "engine": engine_backend(
                port, fake_engine(port, pid_file, "--wait-for-file", str(gate))
            )
        },
        "models": {"on-engine": deployment("engine", "gpt-4o-mini")},
    }
    with run_gateway(tmp_path / "gw", config=config) as gateway:
        # the gateway is ready before its engine: requests fail fast with 503 meanwhile
        first = wait_for(lambda: pids(pid_file), "the engine started")[-1]
        t0 = time.monotonic()
        assert not answers(gateway, "on-engine")
        assert time.monotonic() - t0 < 5

        gate.touch()  # the engine starts listening
        wait_for(lambda: answers(gateway, "on-engine"), "the engine answers")

        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: [p for p in pids(pid_file) if p != first], "a restart")[-1]
        assert not alive(first)
        wait_for(lambda: answers(gateway, "on-engine", "after the restart"), "answers again")
        log = gateway.log()
        # "exited unexpectedly", or "during start-up" if it died before its first health check
        assert "exited unexpectedly with code -9" in log or "code -9 during start-up" in log
        assert "restarting the engine server in 1 s (restart 1)" in log
        assert "[engine] fake engine: listening on" in log  # its output, in the gateway's log
        assert alive(second)
    # the gateway's shutdown stopped the engine (SIGTERM; the fake exits cleanly on it)
    assert not alive(second)
    assert pids(pid_file) == [first, second]
    assert f"stopped the engine server (pid {second}, exit code 0)" in gateway.log()


def test_engine_that_never_becomes_healthy_does_not_stop_the_gateway(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    port, pid_file = free_port(), tmp_path / "engine.pid"
    code = (
        "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); "
        "print('loading weights...', flush=True); time.sleep(600)"
    )
    stuck = [sys.executable, "-c", code, str(pid_file)]
    config = {
        "backends": {
            "stuck": engine_backend(port, stuck, startup_timeout=1.5, max_backoff=1),
            "fake": backend(upstream.base_url, "env:FAKE_UPSTREAM_KEY"),
        },
        "models": {
            "on-stuck": deployment("stuck", "gpt-4o-mini"),
            "chat": deployment("fake", "gpt-4o-mini"),
        },
    }
    env = {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}
    with run_gateway(tmp_path / "gw", config=config, env=env) as gateway:
        assert answers(gateway, "chat", "the other models work")
        assert not answers(gateway, "on-stuck")
        # logged with the command and its last output (on a loaded machine the first tries
        # may be stopped before the command printed anything)
        expected = re.compile(
            rf"ERROR turnout.supervisor: Backend 'stuck': the engine server \(.+\) did not "
            rf"answer http://127.0.0.1:{port}/health with 200 within 1.5 s .*\n"
            r"  loading weights\.\.\.\n"
        )
        wait_for(lambda: expected.search(gateway.log()), "the start-up timeout is logged")
        assert "restarting the engine server" in gateway.log()
        wait_for(lambda: len(pids(pid_file)) >= 2, "a second try")
        assert not alive(pids(pid_file)[0])  # the first try was stopped
        assert answers(gateway, "chat", "still serving")
    assert not any(alive(pid) for pid in pids(pid_file))


def test_engine_dies_with_a_killed_gateway(tmp_path: Path) -> None:
    """No clean shutdown at all (SIGKILL): the engine still goes (PR_SET_PDEATHSIG)."""
    port, pid_file = free_port(), tmp_path / "engine.pid"
    config = {
        "backends": {"engine": engine_backend(port, fake_engine(port, pid_file))},
        "models": {"on-engine": deployment("engine", "gpt-4o-mini")},
    }
    with run_gateway(tmp_path / "gw", config=config) as gateway:
        wait_for(lambda: answers(gateway, "on-engine"), "the engine answers")
        (pid,) = pids(pid_file)
        gateway.process.kill()
        gateway.process.wait(timeout=10)
        wait_for(lambda: not alive(pid), "the engine is gone", 10)


def test_workers_share_one_engine(tmp_path: Path) -> None:
    """With two worker processes, one runs the engine and both route to it."""
    port, pid_file = free_port(), tmp_path / "engine.pid"
    config = {
        "backends": {"engine": engine_backend(port, fake_engine(port, pid_file))},
        "models": {"on-engine": deployment("engine", "gpt-4o-mini")},
    }
    with run_gateway(tmp_path / "gw", config=config, args=("--workers", "2")) as gateway:
        wait_for(lambda: answers(gateway, "on-engine"), "the engine answers")
        for i in range(20):  # new connections: both workers answer some of them
            assert answers(gateway, "on-engine", f"request {i}")
        assert len(pids(pid_file)) == 1, "one engine, not one per worker"
        (pid,) = pids(pid_file)
    assert not alive(pid)
