"""Library mode: ``turnout.apredict`` and ``turnout.predict`` against the fake upstream.

``turnout.library`` keeps process-wide state: one gateway per event loop for ``apredict``
(closed here after each test) and one gateway on a private thread for ``predict``, created on
first use and closed at exit. The sync tests therefore run in a fresh Python process each,
which is the only honest way to test a process-global.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import turnout
from tests.e2e.support import gateway_env
from tests.fakes import ErrorStatus, FakeUpstream
from tests.storage.support import sqlite_url, stored_requests
from tests.unit.support import write_config
from turnout import library

LIB_KEY = "sk-library-upstream-key"


def lib_config(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "default_model": "chat",
        "backends": {
            "fake": {
                "base_url": upstream.base_url,
                "api_key": LIB_KEY,
                "timeout": {"connect": 2, "read": 5, "total": 10},
            }
        },
        "models": {
            "chat": {"deployments": [{"backend": "fake", "model": "gpt-4o-mini"}]},
            "other": {"deployments": [{"backend": "fake", "model": "gpt-4o"}]},
        },
    }


@pytest.fixture
def config_file(isolated: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_config(isolated / "lib.yaml", lib_config(upstream))
    monkeypatch.setenv("TURNOUT_CONFIG", str(path))
    return path


@pytest.fixture
async def loop_gateway() -> AsyncIterator[None]:
    """Close the gateway apredict created for this test's event loop."""
    yield
    gateway = library._per_loop.pop(asyncio.get_running_loop(), None)
    if gateway is not None:
        await gateway.aclose()


# ------------------------------------------------------------------------------ async


@pytest.mark.usefixtures("config_file", "loop_gateway")
async def test_apredict_default_and_named_model(upstream: FakeUpstream) -> None:
    assert await turnout.apredict("hello") == "echo: hello"
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.json["model"] == "gpt-4o-mini"
    assert rec.json["messages"] == [{"role": "user", "content": "hello"}]
    assert rec.authorization == f"Bearer {LIB_KEY}"
    gateway = library._per_loop[asyncio.get_running_loop()]

    reply = await turnout.apredict("one two three", model="other", max_tokens=2, system="Be brief")
    assert reply == "echo: one"
    rec = upstream.last_request("/v1/chat/completions")
    assert rec.json["model"] == "gpt-4o"
    assert rec.json["max_tokens"] == 2
    assert rec.json["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "one two three"},
    ]
    assert library._per_loop[asyncio.get_running_loop()] is gateway  # one gateway per loop
    assert len(upstream.requests_to("/v1/chat/completions")) == 2


@pytest.mark.usefixtures("config_file", "loop_gateway")
async def test_apredict_passthrough_name(upstream: FakeUpstream) -> None:
    assert await turnout.apredict("via passthrough", model="fake/gpt-4o") == (
        "echo: via passthrough"
    )
    assert upstream.last_request("/v1/chat/completions").json["model"] == "gpt-4o"


@pytest.mark.usefixtures("config_file", "loop_gateway")
async def test_apredict_errors_are_turnout_errors(upstream: FakeUpstream) -> None:
    with pytest.raises(turnout.ModelNotFound, match="'nope' does not exist"):
        await turnout.apredict("x", model="nope")
    with pytest.raises(turnout.InvalidRequest) as info:
        await turnout.apredict("")
    assert info.value.param == "input"
    with pytest.raises(turnout.InvalidRequest) as info:
        await turnout.apredict("x", max_tokens="5")
    assert info.value.param == "max_tokens"
    upstream.enqueue(*[ErrorStatus(500)] * 3)  # the first try and two retries
    with pytest.raises(turnout.BackendError) as backend_error:
        await turnout.apredict("x")
    assert backend_error.value.code == "upstream_error"
    assert upstream.pending_faults() == 0
    assert await turnout.apredict("still fine") == "echo: still fine"


async def test_apredict_with_a_bad_configuration(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(isolated / "bad.yaml", {"servr": {}})
    monkeypatch.setenv("TURNOUT_CONFIG", str(path))
    with pytest.raises(turnout.ConfigError, match="did you mean 'server'"):
        await turnout.apredict("x")
    assert asyncio.get_running_loop() not in library._per_loop


# ------------------------------------------------------------------- sync, subprocess


def run_python(code: str, cwd: Path, config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = gateway_env(home, {"TURNOUT_CONFIG": str(config)})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def request_log(home: Path) -> list[dict[str, Any]]:
    path = home / "turnout.db"
    return stored_requests(sqlite_url(path)) if path.exists() else []


SYNC_PREDICT = """
    import json, turnout
    out = [turnout.predict("hello"), turnout.predict("a b c", model="other", max_tokens=2)]
    try:
        turnout.predict("x", model="nope")
    except turnout.ModelNotFound as exc:
        out.append(type(exc).__name__)
    print(json.dumps(out))
"""


def test_predict_sync(isolated: Path, config_file: Path, upstream: FakeUpstream) -> None:
    home = isolated / "home"
    proc = run_python(SYNC_PREDICT, isolated, config_file, home)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["echo: hello", "echo: a", "ModelNotFound"]
    sent = upstream.requests_to("/v1/chat/completions")
    assert [r.json["model"] for r in sent] == ["gpt-4o-mini", "gpt-4o"]
    assert all(r.authorization == f"Bearer {LIB_KEY}" for r in sent)


def test_predict_inside_a_running_event_loop(isolated: Path, config_file: Path) -> None:
    code = """
        import asyncio, turnout
        async def main():
            return turnout.predict("from a coroutine")
        print(asyncio.run(main()))
    """
    proc = run_python(code, isolated, config_file, isolated / "home")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "echo: from a coroutine"


def test_predict_exits_cleanly_and_logs_its_requests(isolated: Path, config_file: Path) -> None:
    home = isolated / "home"
    code = """
        import turnout
        print(turnout.predict("hello"), turnout.predict("again", model="other"), sep="|")
    """
    proc = run_python(code, isolated, config_file, home)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "echo: hello|echo: again"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert [r["model"] for r in request_log(home)] == ["chat", "other"]


def test_apredict_logs_its_requests_when_the_loop_ends(isolated: Path, config_file: Path) -> None:
    home = isolated / "home"
    code = """
        import asyncio, turnout
        async def main():
            return await turnout.apredict("hello")
        print(asyncio.run(main()))
    """
    proc = run_python(code, isolated, config_file, home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "echo: hello"
    assert [r["model"] for r in request_log(home)] == ["chat"]


def test_predict_with_a_bad_configuration_raises_config_error(isolated: Path) -> None:
    bad = write_config(isolated / "bad.yaml", {"backends": {"b": {"base_url": "nope"}}})
    code = """
        import turnout
        try:
            turnout.predict("x")
        except turnout.ConfigError as exc:
            print("ConfigError:", exc.message.splitlines()[-1].strip())
    """
    proc = run_python(code, isolated, bad, isolated / "home")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "ConfigError: backends.b.base_url: 'nope' is not an http(s) URL; "
        "write e.g. https://host/v1 (got 'nope')"
    )


def test_failed_predict_leaves_no_thread_behind(isolated: Path) -> None:
    bad = write_config(isolated / "bad.yaml", {"servr": {}})
    code = """
        import threading, turnout
        for _ in range(3):
            try:
                turnout.predict("x")
            except turnout.ConfigError:
                pass
        print(threading.active_count())
    """
    proc = run_python(code, isolated, bad, isolated / "home")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
