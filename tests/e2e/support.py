"""Running the real gateway as a subprocess, and small assertion helpers for e2e tests."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests import rawhttp
from tests.fakes import FakeUpstream

MASTER_KEY = "sk-test-master"
UPSTREAM_KEY = "sk-fake-upstream-key"  # what backend "fake" reads from env:FAKE_UPSTREAM_KEY
LITERAL_KEY = "sk-literal-upstream-key"  # backend "fake_literal" has it literally in the config
READY_TIMEOUT = 20.0

CHAT_BODY: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "Say hi"}]}
UNCHECKED: Any = object()  # assert_error: "do not check this field"
_NO_JSON: Any = object()

_SECRET_ENV_PREFIXES = ("TURNOUT_", "OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_")
_PROXY_ENV = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without provider keys, proxies or TURNOUT_* settings,
    plus the master key, a private TURNOUT_HOME and ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SECRET_ENV_PREFIXES)
        and not name.endswith("_API_KEY")
        and name.lower() not in _PROXY_ENV
    }
    env.update({"TURNOUT_MASTER_KEY": MASTER_KEY, "TURNOUT_HOME": str(home)})
    env.update(extra or {})
    return env


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        """Everything the gateway wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """Sync SDK client: master key, no retries (one call = one request)."""
        kwargs.setdefault("api_key", MASTER_KEY)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30.0)
        return openai.OpenAI(base_url=self.base_url, **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("api_key", MASTER_KEY)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30.0)
        return openai.AsyncOpenAI(base_url=self.base_url, **kwargs)

    def auth_headers(self, headers: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {MASTER_KEY}", **(headers or {})}

    def request(
        self, method: str, path: str, *, auth: bool = True, headers: Mapping[str, str] | None = None
    ) -> rawhttp.RawResponse:
        hdrs = self.auth_headers(headers) if auth else dict(headers or {})
        return rawhttp.request(method, self.url + path, headers=hdrs)

    def request_json(
        self, method: str, path: str, json: Any, *, auth: bool = True
    ) -> rawhttp.RawResponse:
        """Any method with a JSON body (PATCH, PUT, DELETE with a body)."""
        hdrs = self.auth_headers() if auth else {}
        return rawhttp.request(method, self.url + path, json=json, headers=hdrs)

    def get(
        self, path: str, *, auth: bool = True, headers: Mapping[str, str] | None = None
    ) -> rawhttp.RawResponse:
        hdrs = self.auth_headers(headers) if auth else dict(headers or {})
        return rawhttp.request("GET", self.url + path, headers=hdrs)

    def post(
        self,
        path: str,
        json: Any = _NO_JSON,
        *,
        data: bytes | str | None = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> rawhttp.RawResponse:
        """POST ``json`` (encoded) or ``data`` (raw bytes, sent as application/json)."""
        hdrs = self.auth_headers(headers) if auth else dict(headers or {})
        if json is _NO_JSON:
            hdrs.setdefault("Content-Type", "application/json")
            return rawhttp.request("POST", self.url + path, data, headers=hdrs, timeout=timeout)
        return rawhttp.request("POST", self.url + path, json=json, headers=hdrs, timeout=timeout)


def answers_ready(gateway: Gateway) -> bool:
    """GET /readyz answers 200 (plain HTTP)."""
    return rawhttp.request("GET", f"{gateway.url}/readyz", timeout=1.0).status == 200


def _wait_ready(gateway: Gateway, timeout: float, ready: Callable[[Gateway], bool]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = gateway.process.poll()
        if code is not None:
            pytest.fail(f"the gateway exited with status {code} before /readyz:\n{gateway.log()}")
        try:
            if ready(gateway):
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"GET /readyz did not answer 200 within {timeout} s:\n{gateway.log()}")
        time.sleep(0.05)


@contextmanager
def run_gateway(
    workdir: Path,
    *,
    config: Mapping[str, Any] | None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    scheme: str = "http",
    ready: Callable[[Gateway], bool] = answers_ready,
) -> Iterator[Gateway]:
    """Start ``python -m turnout serve`` in ``workdir`` on a free loopback port, wait for
    /readyz, yield it, terminate it. ``config=None`` starts it without ``--config``;
    ``args`` are more command-line arguments (``("--workers", "2")``); ``scheme`` and
    ``ready`` (says whether it answers yet) for a gateway that serves HTTPS."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "turnout-home"
    home.mkdir(exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "turnout", "serve"]
    if config is not None:
        config_path = workdir / "gateway-config.yaml"
        config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        cmd += ["--config", str(config_path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), *args]
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, cwd=workdir, env=gateway_env(home, env), stdout=log, stderr=subprocess.STDOUT
        )
    gateway = Gateway(f"{scheme}://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(gateway, READY_TIMEOUT, ready)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def backend(base_url: str, api_key: str, **timeout: float) -> dict[str, Any]:
    return {
        "type": "openai_compat",
        "base_url": base_url,
        "api_key": api_key,
        "timeout": {"connect": 2, "read": 5, "total": 10, **timeout},
    }


def deployment(backend_name: str, model: str) -> dict[str, Any]:
    return {"deployments": [{"backend": backend_name, "model": model}]}


def main_config(upstream: FakeUpstream) -> dict[str, Any]:
    """The config of the session's gateway (see tests/e2e/conftest.py)."""
    return {
        "default_model": "chat",
        # the fault tests fail "chat" often enough to trip its breaker; its health checks
        # (GET /v1/models) would then reach the shared fake while later tests assert that
        # nothing did. Health checks have their own tests (test_routing.py).
        "router": {"breaker": {"health_interval": 0}},
        "backends": {
            "fake": backend(upstream.base_url, "env:FAKE_UPSTREAM_KEY"),
            "fake_literal": backend(upstream.base_url, LITERAL_KEY),
            # read > total, so a hang runs into the overall deadline, not the read timeout
            "fake_deadline": backend(upstream.base_url, "env:FAKE_UPSTREAM_KEY", total=1.5),
            # nothing listens there: connection refused
            "dead": backend(
                f"http://127.0.0.1:{free_port()}/v1", "env:FAKE_UPSTREAM_KEY", connect=1, total=3
            ),
        },
        "models": {
            "chat": deployment("fake", "gpt-4o-mini"),
            "embed": deployment("fake", "text-embedding-3-small"),
            "chat-literal-key": deployment("fake_literal", "gpt-4o"),
            "chat-deadline": deployment("fake_deadline", "gpt-4o-mini"),
            "chat-dead": deployment("dead", "gpt-4o-mini"),
        },
    }


MAIN_MODELS = {"chat", "embed", "chat-literal-key", "chat-deadline", "chat-dead"}


# --------------------------------------------------------------------- assertions


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text
    assert 'File "' not in text, text


def assert_error(
    resp: rawhttp.RawResponse,
    status: int,
    *,
    type: str = UNCHECKED,
    code: str | None = UNCHECKED,
    param: str | None = UNCHECKED,
) -> dict[str, Any]:
    """``resp`` is ``status`` with an OpenAI error object; returns ``body["error"]``."""
    assert resp.status == status, f"expected {status}, got {resp.status}: {resp.text[:2000]}"
    assert resp.headers.get("x-request-id"), "error responses carry x-request-id too"
    assert resp.content_type.startswith("application/json"), resp.content_type
    assert_no_traceback(resp.text)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= error.keys(), error
    assert isinstance(error["message"], str) and error["message"], error
    for name, want in (("type", type), ("code", code), ("param", param)):
        if want is not UNCHECKED:
            assert error[name] == want, f"error.{name}: {error[name]!r} != {want!r} in {error}"
    return error


def assert_healthy(gateway: Gateway, upstream: FakeUpstream) -> None:
    """/healthz answers and a normal chat request goes through the fake upstream."""
    upstream.reset()
    assert gateway.get("/healthz", auth=False).status == 200
    body = {"model": "chat", "messages": [{"role": "user", "content": "still alive"}]}
    resp = gateway.post("/v1/chat/completions", body)
    assert resp.status == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "echo: still alive"
    upstream.reset()
