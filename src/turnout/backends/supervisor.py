"""Supervised engine servers: turnout starts an OpenAI-compatible engine (``vllm serve``,
``llama-server``, ``ollama serve``, TGI) from a configured command, waits until it answers its
health endpoint, restarts it with backoff when it dies or stops answering, and stops it when
the gateway shuts down. The backend (:class:`~turnout.backends.openai_compat.OpenAICompatBackend`)
routes to it like to any OpenAI-compatible server.

Life of one engine server::

    start() ─► spawn ─► starting ──(health 200)──► healthy ◄──(health 200)──► unhealthy
                  ▲         │                         │                           │
                  │   exited / startup_timeout    exited                   3 failures in a row
                  │         ▼                         ▼                           ▼
                  └──── restarting (wait 1, 2, 4, ... s, at most max_backoff) ◄───┘

- The command runs in its own session (process group), so SIGTERM and SIGKILL reach the
  whole tree (vLLM's engine processes included); on Linux it also gets SIGTERM if the gateway
  dies without cleaning up (``PR_SET_PDEATHSIG``). Its stdout and stderr go, line by line, to
  the ``turnout.supervisor`` logger, prefixed ``[BACKEND]``; the last lines are kept for the
  error messages.
- :meth:`Supervisor.start` spawns and returns: the gateway starts at once, even when the engine
  takes minutes to load or never comes up. Until it is healthy, requests to the backend fail
  fast with 503 ``upstream_unavailable`` (nothing listens yet: connection refused; or the engine
  itself answers 503 while loading). :meth:`Supervisor.wait_ready` waits for the outcome of the
  current start-up and raises :class:`~turnout.exceptions.UpstreamUnavailable` naming the
  command and its last output lines when it exits or times out.
- The backoff doubles from 1 s after every failed start or crash, up to ``max_backoff``, and
  goes back to 1 s once a server has stayed healthy for ``stable_after`` seconds.
- Several worker processes (``server.workers``) share one engine: the first to take a lock
  file for the engine's host and port supervises it, the others only watch its health and take
  over if that worker goes away.
- :meth:`Supervisor.aclose` sends SIGTERM to the process group, SIGKILL after ``stop_timeout``,
  and reaps the process; calling it again does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from turnout.config import LaunchConfig
from turnout.exceptions import UpstreamUnavailable
from turnout.http.client import Endpoint, HTTPClientError, Pool

__all__ = ["EngineState", "Supervisor", "SupervisorStatus"]

log = logging.getLogger("turnout.supervisor")

EngineState = Literal["starting", "healthy", "unhealthy", "restarting", "stopped"]

#: health checks that fail in a row before a running server is restarted
FAILURES_BEFORE_RESTART = 3
#: output lines kept for error messages
_TAIL_LINES = 20
_MAX_LINE = 4000
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_KEEP_DELAYS = 100
_PR_SET_PDEATHSIG = 1
#: the gateway's own secrets, not passed on to engine servers (unless set in launch.env)
_PRIVATE_ENV = frozenset({"TURNOUT_MASTER_KEY"})


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    """What :meth:`Supervisor.status` reports (e.g. for /readyz or the admin API)."""

    state: EngineState
    #: ``leader``: this process runs the engine; ``follower``: another worker does
    role: Literal["leader", "follower"]
    pid: int | None
    restarts: int
    last_exit_code: int | None
    #: why the last start-up or run failed, with the last output lines
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Supervisor:
    """Runs one engine server for backend ``name``; see the module docstring."""

    def __init__(
        self,
        name: str,
        launch: LaunchConfig,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        initial_backoff: float = 1.0,
        stable_after: float = 30.0,
        lock_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.launch = launch
        self.command = shlex.join(launch.command)
        self.initial_backoff = initial_backoff
        self.stable_after = stable_after
        api = Endpoint.parse(base_url.rstrip("/") + "/")
        path = "/" + launch.health_path.lstrip("/")
        self.health_url = f"{api.scheme}://{api.host_header.decode()}{path}"
        health = Endpoint.parse(self.health_url)
        self._health_endpoint = health
        self._health_head = (
            b"GET " + health.target + b" HTTP/1.1\r\nHost: " + health.host_header + b"\r\n"
            b"User-Agent: turnout/0.1\r\nAccept: */*\r\n\r\n"
        )
        self._ssl_context = ssl_context
        self._check_timeout = max(2.0, min(10.0, 2 * launch.health_interval))
        safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", api.host)
        folder = Path(lock_dir) if lock_dir else Path(tempfile.gettempdir()) / _user_dir()
        self._lock = _EngineLock(folder / f"engine-{safe_host}-{api.port}.lock")

        self.state: EngineState = "stopped"
        self.role: Literal["leader", "follower"] = "leader"
        self.pid: int | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_error: str | None = None
        #: the delay before each restart so far (the last 100), in seconds
        self.restart_delays: list[float] = []
        self._output: deque[str] = deque(maxlen=_TAIL_LINES)
        self._last_check = "none yet"
        self._proc: asyncio.subprocess.Process | None = None
        self._exited: asyncio.Future[int] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: Pool | None = None
        self._settled = asyncio.Event()  # the current start-up has an outcome
        self._closed = False

    # -- public -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the engine server (or find the worker that runs it) and watch it; returns
        without waiting for it to become healthy (see :meth:`wait_ready`)."""
        if self._task is not None or self._closed:
            return
        self._pool = Pool(
            self._health_endpoint,
            max_connections=2,
            connect_timeout=self._check_timeout,
            ssl_context=self._ssl_context,
        )
        self.state = "starting"
        first: asyncio.subprocess.Process | None = None
        if self._lock.acquire():
            if await self._probe():
                log.warning(
                    "backend %s: something already answers %s before the engine server was "
                    "started; is an old one still running?",
                    self.name,
                    self.health_url,
                )
            first = await self._spawn()
        else:
            self.role = "follower"
            log.info(
                "backend %s: another turnout process runs the engine server behind %s; "
                "watching its health",
                self.name,
                self.health_url,
            )
        self._task = asyncio.create_task(self._watch(first), name=f"supervisor-{self.name}")

    async def wait_ready(self) -> None:
        """Wait until the server is healthy; raise UpstreamUnavailable (naming the command,
        with its last output lines) when the current start-up fails. The start-up itself ends
        after ``startup_timeout``; wrap the call in ``asyncio.timeout()`` to wait less."""
        while True:
            if self.state == "healthy":
                return
            if self._closed:
                raise UpstreamUnavailable(
                    f"Backend {self.name!r}: the engine server is stopped.", backend=self.name
                )
            if self._settled.is_set():
                raise UpstreamUnavailable(
                    self.last_error or f"Backend {self.name!r}: the engine server failed.",
                    backend=self.name,
                )
            await self._settled.wait()

    def status(self) -> SupervisorStatus:
        return SupervisorStatus(
            state=self.state,
            role=self.role,
            pid=self.pid,
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            last_error=self.last_error,
        )

    async def aclose(self) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after stop_timeout."""
        if self._closed:
            return
        self._closed = True
        self._settled.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        proc = self._proc
        if proc is not None:
            await self._terminate(proc)
            log.info(
                "backend %s: stopped the engine server (pid %d, exit code %s)",
                self.name,
                proc.pid,
                proc.returncode,
            )
        self._lock.release()
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        self.state = "stopped"

    # -- the watcher --------------------------------------------------------------------------

    async def _watch(self, proc: asyncio.subprocess.Process | None) -> None:
        try:
            await self._run(proc)
        except Exception:  # a bug here must not pass unnoticed: the engine is unwatched now
            log.exception("backend %s: the engine server's supervisor failed", self.name)
            self.last_error = f"Backend {self.name!r}: the engine server's supervisor failed."
            self.state = "unhealthy"
            self._settled.set()

    async def _run(self, proc: asyncio.subprocess.Process | None) -> None:
        if self.role == "follower":
            await self._follow()
            proc = await self._spawn()
        backoff = self.initial_backoff
        while True:
            if proc is not None and await self._until_healthy(proc):
                since = asyncio.get_running_loop().time()
                await self._monitor(proc)
                if asyncio.get_running_loop().time() - since >= self.stable_after:
                    backoff = self.initial_backoff
            self._settled.set()
            delay = min(backoff, self.launch.max_backoff)
            backoff = min(backoff * 2, self.launch.max_backoff)
            self.restart_delays.append(delay)
            del self.restart_delays[:-_KEEP_DELAYS]
            self.state = "restarting"
            log.warning(
                "backend %s: restarting the engine server in %g s (restart %d)",
                self.name,
                delay,
                self.restarts + 1,
            )
            await asyncio.sleep(delay)
            self.restarts += 1
            proc = await self._spawn()

    async def _follow(self) -> None:
        """Watch the engine another process runs until its lock is free; then take over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.launch.startup_timeout
        while not self._lock.acquire():
            if await self._probe():
                self._set_healthy()
            elif self.state == "healthy":
                self.state = "unhealthy"
                self._settled.clear()
            elif self.state == "starting" and loop.time() > deadline:
                self.last_error = (
                    f"Backend {self.name!r}: the engine server run by another turnout process "
                    f"did not answer {self.health_url} within {self.launch.startup_timeout:g} s."
                )
                self._settled.set()
            healthy = self.state == "healthy"
            await asyncio.sleep(self.launch.health_interval if healthy else 0.5)
        self.role = "leader"
        self.state = "starting"
        self._settled.clear()
        log.info("backend %s: taking over the engine server", self.name)

    async def _until_healthy(self, proc: asyncio.subprocess.Process) -> bool:
        """Poll the health endpoint until 200 (True) or exit / startup_timeout (False)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.launch.startup_timeout
        pause = 0.05
        while True:
            if await self._probe() and proc.returncode is None:
                log.info(
                    "backend %s: the engine server is healthy (pid %d, after %.1f s)",
                    self.name,
                    proc.pid,
                    loop.time() - started,
                )
                self._set_healthy()
                return True
            if await self._wait_exit(0):
                await self._reap_group(proc)
                self._fail(f"exited with code {proc.returncode} during start-up")
                return False
            left = deadline - loop.time()
            if left <= 0:
                what = (
                    f"did not answer {self.health_url} with 200 within "
                    f"{self.launch.startup_timeout:g} s (last check: {self._last_check}) "
                    "and was stopped"
                )
                await self._terminate(proc)  # first: then its output is complete
                self._fail(what)
                return False
            await self._wait_exit(min(pause, left))
            pause = min(pause * 1.5, 1.0, self.launch.health_interval)

    async def _monitor(self, proc: asyncio.subprocess.Process) -> None:
        """Check health every health_interval; return once the server exited, or after it
        failed FAILURES_BEFORE_RESTART checks in a row and was stopped."""
        failures = 0
        while True:
            if await self._wait_exit(self.launch.health_interval):
                await self._reap_group(proc)
                self.state = "unhealthy"
                self._settled.clear()
                self._fail(f"exited unexpectedly with code {proc.returncode}")
                return
            if await self._probe():
                if failures:
                    log.info("backend %s: the engine server is healthy again", self.name)
                failures = 0
                self._set_healthy()
                continue
            if await self._wait_exit(0):
                continue  # it died during the check: reported as an exit, above
            failures += 1
            self.state = "unhealthy"
            self._settled.clear()
            log.warning(
                "backend %s: health check %d/%d of the engine server failed: %s",
                self.name,
                failures,
                FAILURES_BEFORE_RESTART,
                self._last_check,
            )
            if failures >= FAILURES_BEFORE_RESTART:
                self._fail(
                    f"failed {failures} health checks in a row (last: {self._last_check})",
                    tail=False,
                )
                await self._terminate(proc)
                return

    def _set_healthy(self) -> None:
        self.state = "healthy"
        self._settled.set()

    def _fail(self, what: str, *, tail: bool = True) -> None:
        self.last_error = f"Backend {self.name!r}: the engine server ({self.command}) {what}." + (
            self._tail() if tail else ""
        )
        log.error("%s", self.last_error)

    def _tail(self) -> str:
        if not self._output:
            return " It wrote no output."
        return " Its last output:\n" + "\n".join(f"  {line}" for line in self._output)

    # -- health -------------------------------------------------------------------------------

    async def _probe(self) -> bool:
        """One GET of the health URL; True on 200."""
        pool = self._pool
        if pool is None:
            return False
        loop = asyncio.get_running_loop()
        try:
            resp = await pool.request(
                self._health_head,
                b"",
                deadline=loop.time() + self._check_timeout,
                read_timeout=self._check_timeout,
            )
            await resp.read()
        except (HTTPClientError, OSError) as exc:
            self._last_check = str(exc) or type(exc).__name__
            return False
        self._last_check = f"status {resp.status}"
        return resp.status == 200

    # -- the process --------------------------------------------------------------------------

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        """Start the command; None (logged, recorded) when it cannot be started."""
        launch = self.launch
        self.state = "starting"
        self._settled.clear()
        self._output.clear()
        self._last_check = "none yet"
        self.pid = None
        creating = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *launch.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=launch.cwd,
                env=_child_env(launch.env),
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        )
        try:
            proc = await asyncio.shield(creating)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # closing meanwhile: do not leave it running
                orphan = await creating
                _signal_group(orphan.pid, signal.SIGKILL)
                await orphan.wait()
            raise
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.last_error = (
                f"Backend {self.name!r}: cannot start the engine server ({self.command}): {reason}."
            )
            log.error("%s", self.last_error)
            return None
        self._proc = proc
        self.pid = proc.pid
        self._exited = asyncio.ensure_future(proc.wait())
        assert proc.stdout is not None
        self._reader = asyncio.create_task(self._pump(proc.stdout))
        log.info(
            "backend %s: started the engine server (pid %d): %s", self.name, proc.pid, self.command
        )
        return proc

    async def _wait_exit(self, seconds: float) -> bool:
        """Whether the current process has exited, waiting at most ``seconds``."""
        exited = self._exited
        if exited is None:
            return True
        if not exited.done() and seconds > 0:
            await asyncio.wait((exited,), timeout=seconds)
        return exited.done()

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the group, SIGKILL after stop_timeout; reap; stop reading its output."""
        exited = self._exited
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            if exited is not None:
                await asyncio.wait((exited,), timeout=self.launch.stop_timeout)
            if proc.returncode is None:
                log.warning(
                    "backend %s: the engine server (pid %d) did not stop within %g s of "
                    "SIGTERM; sending SIGKILL",
                    self.name,
                    proc.pid,
                    self.launch.stop_timeout,
                )
                _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        await self._reap_group(proc)

    async def _reap_group(self, proc: asyncio.subprocess.Process) -> None:
        """After the main process exited: kill what is left of its group, finish the output."""
        self.last_exit_code = proc.returncode
        self.pid = None
        _signal_group(proc.pid, signal.SIGKILL)
        reader = self._reader
        if reader is not None:
            # the pipe closes once every process that holds it is gone; do not wait forever
            done, _ = await asyncio.wait((reader,), timeout=2.0)
            if not done:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            self._reader = None
        self._exited = None
        if self._proc is proc:
            self._proc = None

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Log the output line by line (split at \\n and \\r: progress bars); never block."""
        pending = b""
        while True:
            data = await stream.read(65536)
            if not data:
                break
            *lines, pending = _LINE_BREAK.split(pending + data)
            if len(pending) > _MAX_LINE:
                lines.append(pending)
                pending = b""
            for line in lines:
                self._line(line)
        if pending:
            self._line(pending)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip()
        if not text:
            return
        if len(text) > _MAX_LINE:
            text = text[:_MAX_LINE] + " [...]"
        self._output.append(text)
        log.info("[%s] %s", self.name, text)


# -- helpers ------------------------------------------------------------------------------------


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """The gateway's environment without its own admin credential, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    env.update(extra)
    return env


def _user_dir() -> str:
    return f"turnout-{os.getuid()}" if hasattr(os, "getuid") else "turnout"


@functools.cache
def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when the gateway dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return set_pdeathsig


class _EngineLock:
    """An exclusive, non-blocking ``flock`` on a file: one supervisor per engine address on
    this machine (the lock goes away with the process that holds it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            import fcntl
        except ImportError:  # not POSIX: no sharing between workers
            return True
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("cannot open the lock file %s (%s); supervising anyway", self.path, exc)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock
