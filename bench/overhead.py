"""Gateway overhead: added latency and throughput against a fast fake upstream.

Every target runs as one worker pinned to one core (``taskset -c 0``); ``wrk``, nginx
(the fake upstream) and this script share the other core (``taskset -c 1``). For each
target, JSON and streaming (SSE) chat completions are timed at concurrency 1 and 32
after a short warm-up, and the resident memory of the target's whole process tree is
sampled from /proc.

Targets:

* ``direct``  – wrk straight at nginx (the reference for "added" latency);
* ``bare``    – bench/bare_proxy.py, a raw ASGI proxy: the floor of what Python costs;
* ``turnout`` – ``turnout serve`` with bench/turnout-bench.yaml (auth, routing, metrics,
  request logging on); skipped with a message while it is missing or does not start;
* ``litellm`` – the LiteLLM proxy from bench/.venvs/litellm (see bench/setup.sh);
* ``portkey`` – the Portkey gateway from bench/portkey (see bench/setup.sh).

Usage: ``bench/run.sh [options]`` (or ``make bench``); ``--help`` for the options.
``--report FILE`` re-renders the tables of an earlier results file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_upstream

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LITELLM_VENV = BENCH / ".venvs" / "litellm"
PORTKEY_DIR = BENCH / "portkey"
PORTKEY_MAIN = (
    PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
)
TURNOUT_BIN = ROOT / ".venv" / "bin" / "turnout"
TURNOUT_CONFIG = BENCH / "turnout-bench.yaml"

UPSTREAM = f"http://{fake_upstream.HOST}:{fake_upstream.PORT}"
UPSTREAM_KEY = "sk-upstream"
MASTER_KEY = "sk-bench-master"
ALL_TARGETS = ("direct", "bare", "turnout", "litellm", "portkey")
MODES = ("json", "sse")
PROMPT = [{"role": "user", "content": "Say hello"}]
CLK_TCK = os.sysconf("SC_CLK_TCK")

console = Console(width=None if sys.stdout.isatty() else 160)


def rel(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class BenchError(Exception):
    """A target or the harness cannot go on; the message says why."""


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Route:
    """How one target is called for one mode."""

    path: str
    model: str
    headers: dict[str, str]


@dataclass
class Target:
    name: str
    description: str
    port: int
    routes: dict[str, Route]
    command: list[str] | None = None  # None: nothing to start (direct)
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/"
    ready_any_status: bool = False  # any answer below 500 means ready
    version: str = ""
    notes: str = ""
    skip_reason: str | None = None
    optional: bool = False  # a start failure skips the target instead of failing the run


def _venv_version(python: Path, dist: str) -> str:
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip()


def _npm_version(package_json: Path) -> str:
    try:
        return str(json.loads(package_json.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def _openai_routes(headers: dict[str, str], json_model: str, sse_model: str) -> dict[str, Route]:
    return {
        "json": Route("/v1/chat/completions", json_model, headers),
        "sse": Route("/v1/chat/completions", sse_model, headers),
    }


def target_direct() -> Target:
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}"}
    return Target(
        name="direct",
        description="wrk straight at the nginx fake upstream",
        port=fake_upstream.PORT,
        routes={m: Route(f"/{m}/v1/chat/completions", fake_upstream.MODEL, headers) for m in MODES},
        ready_path="/healthz",
        version=_nginx_version(),
    )


def target_bare() -> Target:
    port = 8403
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}"}
    return Target(
        name="bare",
        description="bench/bare_proxy.py: raw ASGI + uvicorn/uvloop/httptools + aiohttp",
        port=port,
        routes={m: Route(f"/{m}/v1/chat/completions", fake_upstream.MODEL, headers) for m in MODES},
        command=[
            sys.executable,
            str(BENCH / "bare_proxy.py"),
            "--port",
            str(port),
            "--upstream",
            UPSTREAM,
        ],
        ready_path="/healthz",
        version=(
            f"uvicorn {importlib.metadata.version('uvicorn')}, "
            f"aiohttp {importlib.metadata.version('aiohttp')}"
        ),
        notes="no auth, no parsing, no logging",
    )


def target_turnout() -> Target:
    port = 8401
    skip = None
    if not TURNOUT_BIN.exists():
        skip = f"{rel(TURNOUT_BIN)} is missing (run `make .venv/.installed`)"
    try:
        version = importlib.metadata.version("turnout")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return Target(
        name="turnout",
        description="turnout serve, bench/turnout-bench.yaml, one worker",
        port=port,
        routes=_openai_routes({"Authorization": f"Bearer {MASTER_KEY}"}, "bench-json", "bench-sse"),
        command=[
            str(TURNOUT_BIN),
            "serve",
            "--config",
            str(rel(TURNOUT_CONFIG)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={"TURNOUT_MASTER_KEY": MASTER_KEY},
        ready_path="/readyz",
        version=f"{version} ({_git_describe()})",
        notes="auth (master key), routing, metrics and request logging on",
        skip_reason=skip,
        optional=True,
    )


LITELLM_CONFIG = f"""\
# generated by bench/overhead.py
model_list:
  - model_name: bench-json
    litellm_params:
      model: openai/{fake_upstream.MODEL}
      api_base: {UPSTREAM}/json/v1
      api_key: {UPSTREAM_KEY}
  - model_name: bench-sse
    litellm_params:
      model: openai/{fake_upstream.MODEL}
      api_base: {UPSTREAM}/sse/v1
      api_key: {UPSTREAM_KEY}
general_settings:
  master_key: {MASTER_KEY}
"""


def target_litellm(workdir: Path) -> Target:
    port = 8402
    binary = LITELLM_VENV / "bin" / "litellm"
    skip = None if binary.exists() else f"{rel(binary)} is missing (bench/setup.sh)"
    config = workdir / "litellm.yaml"
    config.write_text(LITELLM_CONFIG)
    version = _venv_version(LITELLM_VENV / "bin" / "python", "litellm") if not skip else "?"
    return Target(
        name="litellm",
        description="LiteLLM proxy (uvicorn, one worker), master key, default settings",
        port=port,
        routes=_openai_routes({"Authorization": f"Bearer {MASTER_KEY}"}, "bench-json", "bench-sse"),
        command=[
            str(binary),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env={
            # No internet here: use the bundled model cost map instead of fetching it.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        },
        ready_path="/health/readiness",
        version=version,
        notes="master key auth; uvicorn access log on (its default); no database",
        skip_reason=skip,
    )


def target_portkey() -> Target:
    port = 8787
    node = shutil.which("node")
    skip = None
    if node is None:
        skip = "node is not installed"
    elif not PORTKEY_MAIN.exists():
        skip = f"{rel(PORTKEY_MAIN)} is missing (bench/setup.sh)"
    modules = PORTKEY_DIR / "node_modules"
    version = _npm_version(modules / "@portkey-ai" / "gateway" / "package.json")
    hono = _npm_version(modules / "@hono" / "node-server" / "package.json")
    routes = {
        m: Route(
            "/v1/chat/completions",
            fake_upstream.MODEL,
            {
                "Authorization": f"Bearer {UPSTREAM_KEY}",
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": f"{UPSTREAM}/{m}/v1",
            },
        )
        for m in MODES
    }
    return Target(
        name="portkey",
        description="Portkey gateway (node, start-server.js), default settings",
        port=port,
        routes=routes,
        command=[node or "node", str(PORTKEY_MAIN), f"--port={port}"],
        ready_path="/",
        ready_any_status=True,
        version=f"{version} (@hono/node-server {hono}, node {_node_version()})",
        notes="routing by x-portkey-* headers; no gateway auth in the open-source build",
        skip_reason=skip,
    )


# --------------------------------------------------------------------------- versions


def _command_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (out.stdout + out.stderr).strip()


def _nginx_version() -> str:
    text = _command_output(["nginx", "-v"])
    match = re.search(r"nginx/(\S+)", text)
    return f"nginx {match.group(1)}" if match else text


def _wrk_version() -> str:
    match = re.search(r"wrk (\S+)", _command_output(["wrk", "-v"]))
    return match.group(1) if match else "?"


def _node_version() -> str:
    return _command_output(["node", "--version"]) if shutil.which("node") else "?"


def _git_describe() -> str:
    commit = _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{4,40}", commit):
        return "no commit"
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return f"git {commit}{'+dirty' if dirty else ''}"


def machine_description() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem_gb = round(mem_kb / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "nginx": _nginx_version(),
        "wrk": _wrk_version(),
        "node": _node_version(),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


# --------------------------------------------------------------------------- processes


class Processes:
    """Starts commands in their own process groups and always takes them down again."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(
        self, cmd: list[str], *, cpu: int, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["taskset", "-c", str(cpu), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=ROOT,
                start_new_session=True,  # own process group: killpg reaches every child
            )
        self._running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        # Whatever is left of the group (children that outlived the leader, a hung leader).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc in self._running:
            self._running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._running)):
            self.stop(proc, grace=5.0)


def _raise_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _cpu_times() -> dict[int, tuple[int, int]]:
    """Per cpu: (busy, total) jiffies from /proc/stat."""
    times: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            idle = values[3] + values[4]  # idle + iowait
            times[int(name[3:])] = (sum(values) - idle, sum(values))
    return times


def background_load(cpus: list[int], seconds: float = 1.0) -> dict[int, float]:
    """Share of each cpu that is busy while nothing of ours runs (other users' load)."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    load = {}
    for cpu in cpus:
        busy = after[cpu][0] - before[cpu][0]
        total = after[cpu][1] - before[cpu][1]
        load[cpu] = round(busy / total, 3) if total else 0.0
    return load


FOREIGN_MAX = 0.15  # share of a core used by processes not in the benchmark: redo the run
QUIET_MAX = 0.10  # a core busier than this while the benchmark idles: wait


class CpuMeter:
    """Splits the busy time of our two cores into ours (target; wrk, nginx, this script)
    and foreign (anything else on the machine), over one timed run."""

    def __init__(self, target: list[int], load: list[int], cpus: tuple[int, int]) -> None:
        self.target, self.load, self.cpus = target, load, cpus
        self.start = time.monotonic()
        self.cores = _cpu_times()
        self.target_cpu = tree_cpu_seconds(target)
        self.load_cpu = tree_cpu_seconds(load) + _own_cpu_seconds()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.start
        cores = _cpu_times()
        target_cpu = tree_cpu_seconds(self.target) - self.target_cpu
        load_cpu = tree_cpu_seconds(self.load) + _own_cpu_seconds() - self.load_cpu

        def busy(cpu: int) -> float:
            total = cores[cpu][1] - self.cores[cpu][1]
            return (cores[cpu][0] - self.cores[cpu][0]) / total if total else 0.0

        target_busy, load_busy = busy(self.cpus[0]), busy(self.cpus[1])
        return {
            "target_cpu_util": round(target_cpu / wall, 2),
            "target_core_busy": round(target_busy, 2),
            "load_core_busy": round(load_busy, 2),
            "foreign_target_cpu": round(max(0.0, target_busy - target_cpu / wall), 2),
            "foreign_load_cpu": round(max(0.0, load_busy - load_cpu / wall), 2),
        }


def _own_cpu_seconds() -> float:
    """This script and its reaped children (the wrk runs) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace")
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours, console.clear()
        return "\n".join(text.splitlines()[-lines:])
    return ""


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def wait_ready(
    target: Target, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float
) -> float:
    """Wait until the readiness probe answers; returns the seconds it took."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise BenchError(
                f"{target.name} exited with status {proc.returncode} before it was ready; "
                f"log tail ({log}):\n{log_tail(log)}"
            )
        try:
            status, _, _ = http_request(target.port, "GET", target.ready_path, timeout=2.0)
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 or (target.ready_any_status and status < 500):
                return time.monotonic() - start
            last = f"GET {target.ready_path} -> {status}"
        time.sleep(0.2)
    raise BenchError(
        f"{target.name} was not ready after {timeout:.0f}s ({last}); log tail ({log}):\n"
        f"{log_tail(log)}"
    )


# --------------------------------------------------------------------------- requests


def request_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": PROMPT, "max_tokens": 16}
    if stream:
        body["stream"] = True
    return body


def request_headers(route: Route) -> dict[str, str]:
    return {"Content-Type": "application/json", **route.headers}


def verify(target: Target, mode: str) -> dict[str, Any]:
    """One request before timing: the answer must be a real completion / stream."""
    route = target.routes[mode]
    body = json.dumps(request_body(route.model, mode == "sse")).encode()
    try:
        status, headers, data = http_request(
            target.port, "POST", route.path, body, request_headers(route)
        )
    except OSError as exc:
        raise BenchError(f"{target.name} {mode}: request failed: {exc}") from exc
    snippet = data[:300].decode(errors="replace")
    if status != 200:
        raise BenchError(f"{target.name} {mode}: HTTP {status}: {snippet}")
    ctype = headers.get("content-type", "")
    if mode == "json":
        try:
            obj = json.loads(data)
            content = obj["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BenchError(f"{target.name} json: not a chat.completion: {snippet}") from exc
        if not content:
            raise BenchError(f"{target.name} json: empty content: {snippet}")
        return {
            "content": content,
            "content_ok": content == fake_upstream.CONTENT,
            "usage": obj.get("usage"),
            "content_type": ctype,
        }
    if not ctype.startswith("text/event-stream"):
        raise BenchError(f"{target.name} sse: content-type {ctype!r}: {snippet}")
    events = [
        line[5:].strip()
        for line in data.decode(errors="replace").splitlines()
        if line.startswith("data:")
    ]
    if not events or events[-1] != "[DONE]":
        raise BenchError(f"{target.name} sse: stream does not end with [DONE]: {snippet}")
    text: list[str] = []
    usage = None
    for raw in events[:-1]:
        try:
            chunk = json.loads(raw)
        except ValueError as exc:
            raise BenchError(f"{target.name} sse: bad event {raw[:200]!r}") from exc
        if chunk.get("object") != "chat.completion.chunk":
            raise BenchError(f"{target.name} sse: not a chat.completion.chunk: {raw[:200]}")
        for choice in chunk.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
        usage = chunk.get("usage") or usage
    content = "".join(text)
    if not content:
        raise BenchError(f"{target.name} sse: no content in the stream: {snippet}")
    return {
        "content": content,
        "content_ok": content == fake_upstream.CONTENT,
        "events": len(events),
        "usage": usage,
        "content_type": ctype,
    }


# --------------------------------------------------------------------------- memory


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of ``pid``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        stat = _read_stat(pid)
        if stat is not None:
            ticks += stat[1]
    return ticks / CLK_TCK


class MemorySampler(threading.Thread):
    """Samples the summed VmRSS of a process tree; keeps the overall and a window peak."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kb = 0
        self.window_peak_kb = 0
        self.processes = 0
        self.pids: list[int] = [root]
        self._stop = threading.Event()

    def sample(self) -> None:
        pids = process_tree(self.root)
        rss = sum(_status_kb(pid, "VmRSS") for pid in pids)
        self.pids = pids
        self.processes = max(self.processes, len(pids))
        self.peak_kb = max(self.peak_kb, rss)
        self.window_peak_kb = max(self.window_peak_kb, rss)

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, ValueError):
                self.sample()

    def hwm_kb(self) -> int:
        return sum(_status_kb(pid, "VmHWM") for pid in process_tree(self.root))

    def stop(self) -> None:
        self._stop.set()


# --------------------------------------------------------------------------- wrk


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%.1f,"p75_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,' ..
    '"mean_us":%.1f,"max_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def _lua_string(text: str) -> str:
    level = "=" * 3
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def wrk_script(route: Route, mode: str) -> str:
    body = json.dumps(request_body(route.model, mode == "sse"), separators=(",", ":"))
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    for key, value in request_headers(route).items():
        lines.append(f"wrk.headers[ {_lua_string(key)} ] = {_lua_string(value)}")
    return "\n".join(lines) + "\n" + WRK_DONE


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    text_rps: float | None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse_wrk(output: str) -> WrkResult:
    """Parse wrk's ``--latency`` output plus the JSON line of our ``done()`` hook."""
    match = re.search(r"^WRK_JSON (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise BenchError(f"wrk printed no summary:\n{output[-2000:]}")
    raw = json.loads(match.group(1))
    text_rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    # Cross-check against the human-readable part (socket errors, non-2xx).
    errors = {k: int(raw[k]) for k in ("connect", "read", "write", "timeout")}
    errors["non2xx"] = int(raw["status"])
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        for key, value in zip(("connect", "read", "write", "timeout"), sock.groups(), strict=True):
            errors[key] = max(errors[key], int(value))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors["non2xx"] = max(errors["non2xx"], int(non2xx.group(1)))
    duration = raw["duration_us"] / 1e6
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=round(duration, 3),
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p75_ms=raw["p75_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 4),
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        text_rps=float(text_rps.group(1)) if text_rps else None,
    )


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    duration: float,
    cpu: int,
    on_tick: Callable[[float], None] | None = None,
) -> tuple[WrkResult, str]:
    cmd = [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    start = time.monotonic()
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > duration + 30:
                raise BenchError(f"wrk did not finish: {shlex.join(cmd)}")
            if on_tick is not None:
                on_tick(min(elapsed, duration))
            time.sleep(0.25)
        output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{output[-2000:]}")
    return parse_wrk(output), output


# --------------------------------------------------------------------------- the run


@dataclass
class Options:
    targets: list[str]
    modes: list[str]
    concurrency: list[int]
    duration: float
    warmup: float
    threads: int
    target_cpu: int
    load_cpu: int
    ready_timeout: float
    retries: int
    out: Path
    markdown: Path | None
    keep_tmp: bool


class Runner:
    def __init__(self, opts: Options, procs: Processes, workdir: Path, rawdir: Path) -> None:
        self.opts = opts
        self.procs = procs
        self.workdir = workdir
        self.rawdir = rawdir
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.results: dict[str, Any] = {}
        self.upstream_pid = -1

    def say(self, message: str, style: str | None = None) -> None:
        """Print above the progress bars; ``message`` is plain text, never markup."""
        self.progress.console.print(message, style=style, markup=False, highlight=False)

    def start_upstream(self) -> None:
        if port_open(fake_upstream.PORT):
            raise BenchError(
                f"port {fake_upstream.PORT} is already in use; stop whatever listens there first"
            )
        prefix = self.workdir / "nginx"
        conf = fake_upstream.write_config(prefix)
        proc = self.procs.start(
            ["nginx", "-p", str(prefix), "-c", str(conf)],
            cpu=self.opts.load_cpu,
            log=self.rawdir / "nginx.log",
        )
        wait_ready(target_direct(), proc, self.rawdir / "nginx.log", 15)
        self.upstream_pid = proc.pid

    def build_targets(self) -> list[Target]:
        builders: dict[str, Callable[[], Target]] = {
            "direct": target_direct,
            "bare": target_bare,
            "turnout": target_turnout,
            "litellm": lambda: target_litellm(self.workdir),
            "portkey": target_portkey,
        }
        return [builders[name]() for name in self.opts.targets]

    def run(self) -> dict[str, Any]:
        targets = self.build_targets()
        runs = [
            (t, m, c)
            for t in targets
            if not t.skip_reason
            for m in self.opts.modes
            for c in self.opts.concurrency
        ]
        per_run = self.opts.warmup + self.opts.duration
        with self.progress:
            overall = self.progress.add_task("all runs", total=len(runs))
            self.start_upstream()
            self.say(f"fake upstream (nginx) on {UPSTREAM}, pinned to cpu {self.opts.load_cpu}")
            for target in targets:
                self.results[target.name] = self.run_target(target, overall, per_run)
        return self.results

    def run_target(self, target: Target, overall: TaskID, per_run: float) -> dict[str, Any]:
        record: dict[str, Any] = {
            "description": target.description,
            "version": target.version,
            "notes": target.notes,
            "command": shlex.join(["taskset", "-c", str(self.opts.target_cpu), *target.command])
            if target.command
            else None,
            "env": target.env,
            "runs": {},
        }
        n_runs = len(self.opts.modes) * len(self.opts.concurrency)
        if target.skip_reason:
            self.say(f"skip {target.name}: {target.skip_reason}", "yellow")
            record.update(status="skipped", reason=target.skip_reason)
            return record
        log = self.rawdir / f"{target.name}.log"
        proc: subprocess.Popen[bytes] | None = None
        sampler: MemorySampler | None = None
        started = False  # an optional target that does not come up is skipped, not failed
        try:
            if target.command is not None:
                if port_open(target.port):
                    raise BenchError(
                        f"port {target.port} is already in use; stop whatever listens there first"
                    )
                self.say(f"starting {target.name}: {record['command']}")
                proc = self.procs.start(
                    target.command, cpu=self.opts.target_cpu, log=log, env=target.env
                )
            record["ready_s"] = round(wait_ready(target, proc, log, self.opts.ready_timeout), 2)
            started = True
            record["verify"] = {m: verify(target, m) for m in self.opts.modes}
            if proc is not None:
                sampler = MemorySampler(proc.pid)
                sampler.sample()
                record["rss_idle_mb"] = round(sampler.peak_kb / 1024, 1)
                sampler.start()
            for mode in self.opts.modes:
                script = self.workdir / f"{target.name}-{mode}.lua"
                script.write_text(wrk_script(target.routes[mode], mode))
                url = f"http://127.0.0.1:{target.port}{target.routes[mode].path}"
                for conns in self.opts.concurrency:
                    label = f"{target.name} {mode} c={conns}"
                    record["runs"].setdefault(mode, {})[str(conns)] = self.one_run(
                        label, url, script, conns, sampler, per_run, proc
                    )
                    self.progress.advance(overall)
            if sampler is not None:
                sampler.sample()
                record["rss_peak_mb"] = round(sampler.peak_kb / 1024, 1)
                record["hwm_mb"] = round(sampler.hwm_kb() / 1024, 1)
                record["processes"] = sampler.processes
            record["status"] = "ok"
            self.say(f"{target.name} done", "green")
        except BenchError as exc:
            skip = target.optional and not started
            status, colour = ("skipped", "yellow") if skip else ("failed", "red")
            self.say(f"{status} {target.name}: {exc}", colour)
            record.update(status=status, reason=str(exc))
            done = sum(len(v) for v in record["runs"].values())
            self.progress.advance(overall, n_runs - done)
        finally:
            if sampler is not None:
                sampler.stop()
            if proc is not None:
                self.procs.stop(proc)
        return record

    def one_run(
        self,
        label: str,
        url: str,
        script: Path,
        conns: int,
        sampler: MemorySampler | None,
        per_run: float,
        proc: subprocess.Popen[bytes] | None,
    ) -> dict[str, Any]:
        """Warm up, then time one wrk run; redo it when other load shared our cores."""
        opts = self.opts
        threads = 1 if conns == 1 else min(opts.threads, conns)
        for attempt in range(1 + opts.retries):
            self.wait_quiet(label)
            task = self.progress.add_task(label, total=per_run)

            def tick(seconds: float, task: TaskID = task) -> None:
                self.progress.update(task, completed=seconds)

            def tick_timed(seconds: float, task: TaskID = task) -> None:
                self.progress.update(task, completed=opts.warmup + seconds)

            try:
                if opts.warmup > 0:
                    run_wrk(
                        url,
                        script,
                        connections=conns,
                        threads=threads,
                        duration=opts.warmup,
                        cpu=opts.load_cpu,
                        on_tick=tick,
                    )
                if sampler is not None:
                    sampler.window_peak_kb = 0
                meter = CpuMeter(
                    target=sampler.pids if sampler else [],
                    load=process_tree(self.upstream_pid),
                    cpus=(opts.target_cpu, opts.load_cpu),
                )
                result, output = run_wrk(
                    url,
                    script,
                    connections=conns,
                    threads=threads,
                    duration=opts.duration,
                    cpu=opts.load_cpu,
                    on_tick=tick_timed,
                )
                usage = meter.stop()
            finally:
                self.progress.remove_task(task)
            contended = max(usage["foreign_target_cpu"], usage["foreign_load_cpu"]) > FOREIGN_MAX
            if not contended or attempt == opts.retries:
                break
            self.say(
                f"  {label}: other processes used our cores "
                f"({usage['foreign_target_cpu']:.0%} of cpu {opts.target_cpu}, "
                f"{usage['foreign_load_cpu']:.0%} of cpu {opts.load_cpu}); running it again",
                "yellow",
            )
        safe = label.replace(" ", "_").replace("=", "")
        (self.rawdir / f"{safe}.txt").write_text(output)
        entry: dict[str, Any] = {
            "connections": conns,
            "threads": threads,
            "requests": result.requests,
            "duration_s": result.duration_s,
            "rps": result.rps,
            "p50_ms": result.p50_ms,
            "p75_ms": result.p75_ms,
            "p90_ms": result.p90_ms,
            "p99_ms": result.p99_ms,
            "mean_ms": result.mean_ms,
            "max_ms": result.max_ms,
            "errors": result.errors,
            "error_count": result.error_count,
            "attempts": attempt + 1,
            "contended": contended,
            **usage,
        }
        if sampler is not None:
            entry["rss_peak_mb"] = round(sampler.window_peak_kb / 1024, 1)
        flag = f"  ERRORS {result.errors}" if result.error_count else ""
        if contended:
            flag += "  CONTENDED (other load on our cores)"
        self.say(
            f"  {label:<22} {result.rps:>9.0f} req/s  p50 {result.p50_ms:.3f} ms  "
            f"p99 {result.p99_ms:.3f} ms  cpu {usage['target_cpu_util']:.2f}{flag}",
            "red" if result.error_count else "yellow" if contended else None,
        )
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"exited with status {proc.returncode} during {label}")
        return entry

    def wait_quiet(self, label: str, limit: float = 120.0) -> None:
        """Wait (up to ``limit`` seconds) until nothing else keeps our two cores busy."""
        cpus = [self.opts.target_cpu, self.opts.load_cpu]
        start = time.monotonic()
        warned = False
        while True:
            load = background_load(cpus, 0.5)
            if max(load.values()) <= QUIET_MAX:
                return
            if time.monotonic() - start > limit:
                self.say(f"  {label}: cores still busy ({load}); going ahead", "yellow")
                return
            if not warned:
                self.say(f"  {label}: waiting for other load to go ({load})", "yellow")
                warned = True


# --------------------------------------------------------------------------- report


def _run(results: dict[str, Any], target: str, mode: str, conns: int) -> dict[str, Any] | None:
    record = results["targets"].get(target)
    if not record or record.get("status") != "ok":
        return None
    run: dict[str, Any] | None = record["runs"].get(mode, {}).get(str(conns))
    return run


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Derived numbers: added p50 at c=1, req/s at c=32 and ratios, memory, goals."""
    low, high = min(results["concurrency"]), max(results["concurrency"])
    summary: dict[str, Any] = {"low": low, "high": high, "targets": {}}
    for name, record in results["targets"].items():
        if record.get("status") != "ok":
            continue
        row: dict[str, Any] = {"rss_peak_mb": record.get("rss_peak_mb")}
        for mode in results["modes"]:
            run_low, base = _run(results, name, mode, low), _run(results, "direct", mode, low)
            if run_low:
                row[f"{mode}_p50_ms"] = run_low["p50_ms"]
                row[f"{mode}_p99_ms"] = run_low["p99_ms"]
                if base:
                    row[f"{mode}_added_p50_ms"] = round(run_low["p50_ms"] - base["p50_ms"], 3)
            run_high = _run(results, name, mode, high)
            if run_high:
                row[f"{mode}_rps"] = run_high["rps"]
                row[f"{mode}_p99_high_ms"] = run_high["p99_ms"]
                for other in ("portkey", "litellm"):
                    if name in ("direct", other):
                        continue
                    ref = _run(results, other, mode, high)
                    if ref and ref["rps"]:
                        row[f"{mode}_x_{other}"] = round(run_high["rps"] / ref["rps"], 2)
        row["errors"] = sum(
            run["error_count"] for by_c in record["runs"].values() for run in by_c.values()
        )
        row["contended"] = sum(
            bool(run.get("contended")) for by_c in record["runs"].values() for run in by_c.values()
        )
        summary["targets"][name] = row
    summary["goals"] = goals(summary, results["modes"])
    return summary


def goals(summary: dict[str, Any], modes: list[str]) -> list[dict[str, Any]]:
    """The issue's goals, checked for turnout when it ran."""
    row = summary["targets"].get("turnout")
    if row is None:
        return []
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, limit: float, below: bool) -> None:
        passed = None if value is None else (value < limit if below else value >= limit)
        checks.append({"goal": name, "value": value, "limit": limit, "pass": passed})

    low, high = summary["low"], summary["high"]
    for mode in modes:
        check(f"{mode}: added p50 at c={low} < 0.5 ms", row.get(f"{mode}_added_p50_ms"), 0.5, True)
        check(f"{mode}: req/s at c={high} >= 2x Portkey", row.get(f"{mode}_x_portkey"), 2.0, False)
        check(f"{mode}: req/s at c={high} >= 20x LiteLLM", row.get(f"{mode}_x_litellm"), 20, False)
    check("peak RSS < 100 MB (one worker)", row.get("rss_peak_mb"), 100.0, True)
    check("no errors in any run", float(row.get("errors", 0)), 1.0, True)
    return checks


def _fmt(value: Any, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _flag(results: dict[str, Any], name: str, mode: str, conns: int) -> str:
    run = _run(results, name, mode, conns)
    if not run:
        return ""
    return (" ⚠" if run["error_count"] else "") + (" ~" if run.get("contended") else "")


def markdown(results: dict[str, Any]) -> str:
    summary = results["summary"]
    low, high, modes = summary["low"], summary["high"], results["modes"]
    lines: list[str] = []
    head = ["target", "version"]
    for mode in modes:
        head += [f"{mode.upper()} p50 c={low} (ms)", f"{mode.upper()} added p50 (ms)"]
    for mode in modes:
        head += [f"{mode.upper()} req/s c={high}", "× Portkey", "× LiteLLM", f"p99 c={high} (ms)"]
    head += ["peak RSS (MB)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["--:"] * (len(head) - 2)) + "|")
    notes: list[str] = []
    for name, record in results["targets"].items():
        row = summary["targets"].get(name)
        cells = [name, str(record.get("version", ""))]
        if row is None:
            status = record.get("status", "?")
            reason = str(record.get("reason", "")).splitlines()[0] if record.get("reason") else ""
            cells += [status] + [""] * (len(head) - 3)
            notes.append(f"{name}: {status}: {reason}")
        else:
            for mode in modes:
                cells += [
                    _fmt(row.get(f"{mode}_p50_ms")) + _flag(results, name, mode, low),
                    _fmt(row.get(f"{mode}_added_p50_ms")),
                ]
            for mode in modes:
                cells += [
                    _fmt(row.get(f"{mode}_rps"), 0) + _flag(results, name, mode, high),
                    _fmt(row.get(f"{mode}_x_portkey"), 2, "×"),
                    _fmt(row.get(f"{mode}_x_litellm"), 2, "×"),
                    _fmt(row.get(f"{mode}_p99_high_ms"), 2),
                ]
            cells.append(_fmt(row.get("rss_peak_mb"), 1))
            if row["errors"]:
                notes.append(f"{name}: ⚠ {row['errors']} errors (non-2xx or socket errors)")
            if row["contended"]:
                notes.append(
                    f"{name}: ~ {row['contended']} run(s) shared a core with other processes "
                    "(noisy)"
                )
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    if summary["goals"]:
        lines += ["", "| goal (turnout) | value | pass |", "|---|--:|:-:|"]
        for g in summary["goals"]:
            mark = {True: "✅", False: "❌", None: "–"}[g["pass"]]
            lines.append(f"| {g['goal']} | {_fmt(g['value'], 3)} | {mark} |")
    return "\n".join(lines) + "\n"


def print_table(results: dict[str, Any]) -> None:
    summary = results["summary"]
    low, high, modes = summary["low"], summary["high"], results["modes"]
    table = Table(title=f"gateway overhead ({results['meta']['duration_s']:g}s per run)")
    table.add_column("target")
    for mode in modes:
        table.add_column(f"{mode} p50 c={low}", justify="right")
        table.add_column("added", justify="right")
    for mode in modes:
        table.add_column(f"{mode} req/s c={high}", justify="right")
        table.add_column("×PK / ×LL", justify="right")
    table.add_column("RSS MB", justify="right")
    for name, record in results["targets"].items():
        row = summary["targets"].get(name)
        if row is None:
            table.add_row(name, f"[yellow]{record.get('status')}")
            continue
        cells = [name]
        for mode in modes:
            cells += [
                _fmt(row.get(f"{mode}_p50_ms")) + _flag(results, name, mode, low),
                _fmt(row.get(f"{mode}_added_p50_ms")),
            ]
        for mode in modes:
            cells += [
                _fmt(row.get(f"{mode}_rps"), 0) + _flag(results, name, mode, high),
                _fmt(row.get(f"{mode}_x_portkey"), 2)
                + " / "
                + _fmt(row.get(f"{mode}_x_litellm"), 1),
            ]
        cells.append(_fmt(row.get("rss_peak_mb"), 1))
        table.add_row(*cells)
    console.print(table)
    for g in summary["goals"]:
        mark = {True: "[green]pass", False: "[red]FAIL", None: "[yellow]n/a"}[g["pass"]]
        console.print(f"  {mark}[/] {g['goal']}: {_fmt(g['value'])}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(
        description="Gateway overhead benchmark (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma-separated")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--only-json", action="store_true", help="skip the streaming runs")
    mode.add_argument("--only-sse", action="store_true", help="skip the JSON runs")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated wrk -c values")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads above c=1")
    parser.add_argument("--target-cpu", type=int, default=0, help="core for the gateway")
    parser.add_argument("--load-cpu", type=int, default=1, help="core for wrk and nginx")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="times to redo a run during which other processes used our cores",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--markdown", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the generated configs")
    parser.add_argument("--report", type=Path, help="only re-render the tables of a results file")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(ALL_TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {', '.join(ALL_TARGETS)}")
    targets = [t for t in ALL_TARGETS if t in targets]  # direct first: it is the reference
    modes = ["json"] if args.only_json else ["sse"] if args.only_sse else list(MODES)
    try:
        concurrency = sorted({int(c) for c in args.concurrency.split(",")})
    except ValueError:
        parser.error("--concurrency takes integers, e.g. 1,32")
    if args.target_cpu == args.load_cpu:
        parser.error("--target-cpu and --load-cpu must differ")
    opts = Options(
        targets=targets,
        modes=modes,
        concurrency=concurrency,
        duration=args.duration,
        warmup=args.warmup,
        threads=args.threads,
        target_cpu=args.target_cpu,
        load_cpu=args.load_cpu,
        ready_timeout=args.ready_timeout,
        retries=args.retries,
        out=args.out,
        markdown=args.markdown,
        keep_tmp=args.keep_tmp,
    )
    return opts, args.report


def check_tools(opts: Options) -> None:
    missing = [tool for tool in ("nginx", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)} (run bench/setup.sh)")
    allowed = os.sched_getaffinity(0)
    for cpu in (opts.target_cpu, opts.load_cpu):
        if cpu not in allowed:
            raise BenchError(f"cpu {cpu} is not available (have {sorted(allowed)})")


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {sig: signal.signal(sig, _raise_on_signal) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    opts, report = parse_args(argv)
    if report is not None:
        loaded = json.loads(report.read_text())
        print_table(loaded)
        print(markdown(loaded))
        return 0
    try:
        check_tools(opts)
    except BenchError as exc:
        console.print(str(exc), style="red", markup=False)
        return 2
    # The harness itself stays off the gateway's core.
    os.sched_setaffinity(0, {opts.load_cpu})
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    rawdir = RESULTS / "raw" / stamp
    rawdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
    os.chmod(workdir, 0o755)  # nginx workers run as nobody
    procs = Processes()
    started = dt.datetime.now(dt.UTC)
    meta: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": shlex.join(["bench/run.sh", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_description(),
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "wrk_threads_high": opts.threads,
        "target_cpu": opts.target_cpu,
        "load_cpu": opts.load_cpu,
        "raw": rel(rawdir),
    }
    runner = Runner(opts, procs, workdir, rawdir)
    interrupted = False
    try:
        with signals_raise():
            runner.run()
    except KeyboardInterrupt:
        interrupted = True
        console.print("[red]interrupted; stopping everything")
    except BenchError as exc:
        console.print(str(exc), style="red", markup=False)
        return 2
    finally:
        procs.stop_all()
        if opts.keep_tmp:
            console.print(f"generated configs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    results: dict[str, Any] = {
        "meta": meta,
        "modes": opts.modes,
        "concurrency": opts.concurrency,
        "targets": runner.results,
    }
    results["summary"] = summarize(results)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=2) + "\n")
    (rawdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    if opts.markdown is not None:
        opts.markdown.write_text(table)
    console.print()
    print_table(results)
    console.print()
    print(table, flush=True)
    console.print(f"results: {rel(opts.out)}, {rel(opts.markdown) if opts.markdown else ''}")
    failed = [n for n, r in runner.results.items() if r.get("status") == "failed"]
    errors = [n for n, row in results["summary"]["targets"].items() if row["errors"]]
    if failed or errors:
        console.print(f"failed: {failed}  runs with errors: {errors}", style="red", markup=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
