"""The engine-server supervisor with real child processes: the fake upstream run as a process
(``python -m tests.fakes``) or tiny ``python -c`` scripts. No sleeps that guess: every wait
polls the supervisor's state or the process table with a generous deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from turnout.backends.base import BackendRequest, RequestContext
from turnout.backends.openai_compat import OpenAICompatBackend
from turnout.backends.supervisor import Supervisor
from turnout.config import BackendConfig, LaunchConfig
from turnout.exceptions import UpstreamUnavailable

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # generous: a loaded 2-core machine starts Python slowly

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_engine(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.fakes", "--port", str(port), *args]


def script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def launch(command: list[str], **settings: Any) -> LaunchConfig:
    values: dict[str, Any] = {
        "command": command,
        "cwd": str(ROOT),
        "health_interval": 0.2,
        "startup_timeout": WAIT,
        "stop_timeout": 5.0,
        "max_backoff": 0.5,
        **settings,
    }
    return LaunchConfig(**values)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def reaped(pid: int) -> bool:
    """Not our zombie: waitpid finds no such child (asyncio reaped it)."""
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0) and not alive(pid)
    except ChildProcessError:
        return True


async def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)


async def ready(sup: Supervisor) -> None:
    async with asyncio.timeout(WAIT):
        await sup.wait_ready()


@asynccontextmanager
async def supervised(
    tmp_path: Path, port: int, config: LaunchConfig, **kwargs: Any
) -> AsyncIterator[Supervisor]:
    kwargs.setdefault("initial_backoff", 0.05)
    kwargs.setdefault("lock_dir", tmp_path)
    sup = Supervisor("eng", config, f"http://127.0.0.1:{port}/v1", **kwargs)
    await sup.start()
    try:
        yield sup
    finally:
        await sup.aclose()


def chat(text: str = "hi") -> BackendRequest:
    return BackendRequest({"model": "m", "messages": [{"role": "user", "content": text}]})


def ctx() -> RequestContext:
    return RequestContext.create("test", 10.0)


@pytest.fixture(autouse=True)
def _supervisor_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="turnout.supervisor")


# ------------------------------------------------------------------------------ start


async def test_backend_starts_the_engine_routes_to_it_and_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    gate = tmp_path / "go"
    config = BackendConfig(
        base_url=f"http://127.0.0.1:{port}/v1",
        timeout={"connect": 2, "read": 10, "total": 10},  # type: ignore[arg-type]
        launch=launch(fake_engine(port, "--wait-for-file", str(gate))),
    )
    backend = OpenAICompatBackend("eng", config)
    await backend.start()
    sup = backend.supervisor
    assert sup is not None
    try:
        pid = sup.pid
        assert pid is not None and alive(pid)
        assert sup.status().state == "starting"
        # not listening yet: requests fail fast with 503, health says why
        t0 = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await backend.chat(chat(), ctx())
        assert time.monotonic() - t0 < 3
        with pytest.raises(UpstreamUnavailable, match="engine server is starting"):
            await backend.check_health()

        gate.touch()
        await ready(sup)
        result = await backend.chat(chat("hello there"), ctx())
        assert result.data["choices"][0]["message"]["content"] == "echo: hello there"
        await backend.check_health()
        assert sup.status().as_dict() == {
            "state": "healthy",
            "role": "leader",
            "pid": pid,
            "restarts": 0,
            "last_exit_code": None,
            "last_error": None,
        }
    finally:
        await backend.aclose()
    assert not alive(pid) and reaped(pid)
    assert sup.status().state == "stopped"
    assert sup.last_exit_code == 0  # the fake exits cleanly on SIGTERM
    # the child's output went to the log, line by line, prefixed with the backend
    lines = [r.getMessage() for r in caplog.records if r.name == "turnout.supervisor"]
    assert f"[eng] fake engine: listening on http://127.0.0.1:{port}" in lines
    assert any("the engine server is healthy" in line for line in lines)


async def test_engine_that_answers_503_while_loading_is_waited_for(tmp_path: Path) -> None:
    port = free_port()
    config = launch(fake_engine(port, "--unhealthy-for", "1"))
    async with supervised(tmp_path, port, config) as sup:
        await ready(sup)
        assert sup.restarts == 0 and sup.restart_delays == []


# ---------------------------------------------------------------------------- restarts


async def test_killed_engine_is_restarted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    config = BackendConfig(base_url=f"http://127.0.0.1:{port}/v1", launch=launch(fake_engine(port)))
    backend = OpenAICompatBackend("eng", config)
    await backend.start()
    sup = backend.supervisor
    assert sup is not None
    try:
        await ready(sup)
        first = sup.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: sup.state == "healthy" and sup.pid not in (None, first), "restart")
        assert sup.restarts == 1
        assert sup.last_exit_code == -signal.SIGKILL
        assert reaped(first)
        result = await backend.chat(chat("again"), ctx())
        assert result.data["choices"][0]["message"]["content"] == "echo: again"
    finally:
        await backend.aclose()
    text = caplog.text
    assert "exited unexpectedly with code -9" in text
    assert "restarting the engine server in 0.5 s (restart 1)" in text


async def test_command_that_exits_at_once_backs_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    command = script("print('boom: no GPU found'); raise SystemExit(3)")
    async with supervised(tmp_path, port, launch(command, max_backoff=0.4)) as sup:
        with pytest.raises(UpstreamUnavailable) as info:
            await ready(sup)
        await eventually(lambda: len(sup.restart_delays) >= 6, "six restarts")
        assert sup.restart_delays[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
        assert sup.last_exit_code == 3
        assert sup.restarts >= 5
    message = info.value.message
    assert "exited with code 3 during start-up" in message
    assert f"({sys.executable} -c " in message and "SystemExit(3)" in message  # the command
    assert "boom: no GPU found" in message  # its last output
    assert "restarting the engine server in 0.4 s" in caplog.text


async def test_engine_that_stops_answering_health_checks_is_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = launch(fake_engine(port, "--healthy-for", "1"))
    async with supervised(tmp_path, port, config) as sup:
        await ready(sup)
        first = sup.pid
        await eventually(lambda: sup.restarts >= 1 and sup.state == "healthy", "restart")
        assert sup.pid != first and first is not None and reaped(first)
    assert "health check 1/3 of the engine server failed: status 503" in caplog.text
    assert "failed 3 health checks in a row" in caplog.text


async def failure_with(sup: Supervisor, output: str) -> str:
    """The message of a failed start-up that quotes ``output`` (on a loaded machine the first
    tries may be stopped before the command printed anything)."""
    deadline = time.monotonic() + WAIT
    while True:
        with pytest.raises(UpstreamUnavailable) as info:
            await ready(sup)
        if output in info.value.message:
            return info.value.message
        assert time.monotonic() < deadline, info.value.message
        tried = sup.restarts
        await eventually(lambda tried=tried: sup.restarts > tried, "another try")


async def test_engine_that_never_becomes_healthy_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    command = script("print('loading weights...', flush=True); import time; time.sleep(600)")
    config = launch(command, startup_timeout=1.0, max_backoff=0.2)
    async with supervised(tmp_path, port, config) as sup:
        first = sup.pid
        assert first is not None
        message = await failure_with(sup, "loading weights...")
        assert not alive(first)  # stopped before the restart
        assert sup.state in ("restarting", "starting")
    assert f"did not answer http://127.0.0.1:{port}/health with 200 within 1 s" in message
    assert "(last check: cannot connect to 127.0.0.1" in message
    assert sys.executable in message
    assert message in caplog.text  # logged as an error too
    assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_missing_executable_is_reported_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = launch([str(tmp_path / "no-such-engine"), "serve"])
    async with supervised(tmp_path, port, config) as sup:  # start() does not raise
        with pytest.raises(UpstreamUnavailable, match="cannot start the engine server"):
            await ready(sup)
        await eventually(lambda: sup.restarts >= 2, "retries")
        assert sup.pid is None
    assert "No such file or directory" in caplog.text


async def test_engine_gets_launch_env_and_cwd_but_not_the_master_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNOUT_MASTER_KEY", "sk-gateway-secret")
    monkeypatch.setenv("HF_HOME", "/models/hf")
    seen = tmp_path / "seen"
    code = (
        "import os, sys; e = os.environ; "
        "print(e.get('TURNOUT_MASTER_KEY'), e.get('HF_HOME'), e.get('ENGINE_OPT'), os.getcwd(), "
        f"file=open({str(seen)!r}, 'w')); sys.exit(0)"
    )
    config = launch(script(code), env={"ENGINE_OPT": "fast"}, cwd=str(tmp_path))
    async with supervised(tmp_path, free_port(), config) as sup:
        await eventually(lambda: sup.restarts >= 1, "it ran")
    assert seen.read_text().split() == ["None", "/models/hf", "fast", str(tmp_path)]


# ---------------------------------------------------------------------------- stopping


async def test_aclose_kills_an_engine_that_ignores_sigterm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = launch(fake_engine(port, "--ignore-sigterm"), stop_timeout=0.5)
    async with supervised(tmp_path, port, config) as sup:
        await ready(sup)
        pid = sup.pid
        assert pid is not None
        t0 = time.monotonic()
        await sup.aclose()
        assert time.monotonic() - t0 >= 0.5
        assert sup.last_exit_code == -signal.SIGKILL
        assert not alive(pid) and reaped(pid)
        await sup.aclose()  # idempotent
        assert sup.state == "stopped"
    assert "did not stop within 0.5 s of SIGTERM; sending SIGKILL" in caplog.text


async def test_aclose_stops_the_whole_process_group(tmp_path: Path) -> None:
    port = free_port()
    child_pid = tmp_path / "child.pid"
    engine = " ".join(fake_engine(port))
    command = ["sh", "-c", f"sleep 600 & echo $! > {child_pid}; exec {engine}"]
    async with supervised(tmp_path, port, launch(command)) as sup:
        await ready(sup)
        grandchild = int(child_pid.read_text())
        assert alive(grandchild)
    await eventually(lambda: not alive(grandchild), "the engine's own child is gone", 10)


async def test_crashed_engine_leaves_no_process_behind(tmp_path: Path) -> None:
    """The main process dies; what it started in its group is killed before the restart."""
    port = free_port()
    child_pid = tmp_path / "child.pid"
    engine = " ".join(fake_engine(port))
    command = ["sh", "-c", f"sleep 600 & echo $! > {child_pid}; exec {engine}"]
    async with supervised(tmp_path, port, launch(command)) as sup:
        await ready(sup)
        first, grandchild = sup.pid, int(child_pid.read_text())
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: not alive(grandchild), "the orphan is killed")
        await eventually(lambda: sup.state == "healthy" and sup.pid != first, "restart")


# ------------------------------------------------------------------- several workers


async def test_second_process_follows_and_takes_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers share one engine: the lock holder runs it; another waits on its health and
    takes over when the holder goes away."""
    port = free_port()
    config = launch(fake_engine(port))
    async with (
        supervised(tmp_path, port, config) as leader,
        supervised(tmp_path, port, config) as follower,
    ):
        assert (leader.role, follower.role) == ("leader", "follower")
        assert follower.pid is None
        await ready(leader)
        await ready(follower)
        first = leader.pid
        assert first is not None
        await leader.aclose()
        assert not alive(first)
        await eventually(lambda: follower.role == "leader", "take-over")
        await ready(follower)
        assert follower.pid not in (None, first)
    assert "another turnout process runs the engine server" in caplog.text
