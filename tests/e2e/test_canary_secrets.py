"""Canary secrets: planted in every place a secret can come from, searched for in every output.

One gateway runs with a provider key written in its config, one in an ``env:`` reference, one
in ``OPENAI_API_KEY``, a secret upstream header, the master key in ``TURNOUT_MASTER_KEY``, a
Redis URL with a password (a wrong one: the limiter's failure path is taken) and debug
logging. It is driven through successes, streams, wrong API keys, upstream errors that repeat
the key they were sent (401, 400, 404, 429, 500), /metrics, the admin and ops endpoints; then
it is stopped, so that the request log is written. The CLI is run on a broken configuration
full of secrets, and against PostgreSQL with a password in the URL (reachable and not).

Every canary is then searched for in every response (status, headers, body), every line the
gateway and the CLI printed, and the bytes of every file under the gateway's home and working
folder: the SQLite database, its WAL, the spool. The only places a canary may appear are the
files the test itself wrote (the configuration) and the requests it sent.

API keys made at runtime are canaries too: one is created and used (``Authorization`` and
``x-api-key``), then rotated; their secrets appear in the create and rotate answers only.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests import rawhttp
from tests.e2e.support import Gateway, backend, deployment, free_port, gateway_env, run_gateway
from tests.fakes import FakeUpstream
from tests.fakes.upstream import ErrorStatus

CANARY_NAMES = (
    "provider_key",  # backends.fake.api_key, written in the file
    "env_key",  # backends.fake_env.api_key: env:CANARY_ENV_KEY
    "openai_env_key",  # OPENAI_API_KEY (env_backends: true)
    "header_secret",  # backends.fake.headers.X-Upstream-Token
    "master_key",  # TURNOUT_MASTER_KEY
    "redis_password",  # limits.redis_url
    "wrong_api_key",  # what a client sends that is not a key
    "database_password",  # TURNOUT_DATABASE_URL for the CLI runs
)
MESSAGES = [{"role": "user", "content": "hello canary"}]


@dataclass
class Outputs:
    """Everything the gateway and the CLI gave back, by where it came from."""

    texts: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, data: bytes | str) -> None:
        self.texts[where] = data.encode() if isinstance(data, str) else data

    def response(self, where: str, resp: rawhttp.RawResponse) -> None:
        head = "".join(f"{k}: {v}\n" for k, v in resp.headers.items())
        self.add(where, f"{resp.status}\n{head}\n".encode() + resp.body)


@pytest.fixture(scope="module")
def canaries() -> dict[str, str]:
    return {name: f"cnry-{name.replace('_', '-')}-{uuid.uuid4().hex}" for name in CANARY_NAMES}


def gateway_config(upstream: FakeUpstream, canaries: dict[str, str]) -> dict[str, object]:
    fake = backend(upstream.base_url, canaries["provider_key"])
    fake["headers"] = {"X-Upstream-Token": canaries["header_secret"]}
    return {
        "env_backends": True,
        "backends": {
            "fake": fake,
            "fake_env": backend(upstream.base_url, "env:CANARY_ENV_KEY"),
        },
        "models": {
            "chat": deployment("fake", "gpt-4o-mini"),
            "chat-env": deployment("fake_env", "gpt-4o-mini"),
        },
        "router": {"retries": {"max_retries": 0}},
        "limits": {
            "per_ip": {"requests_per_minute": 100_000},
            # no such user: Redis refuses, and the limiter's failure path (logged) is taken
            "redis_url": f"redis://turnout:{canaries['redis_password']}@127.0.0.1:6379/0",
            "on_redis_error": "local",
        },
    }


@pytest.fixture(scope="module")
def run(
    upstream_server: FakeUpstream,
    canaries: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Outputs]]:
    """The gateway's run, driven; yields its working folder (stopped by then) and outputs."""
    workdir = tmp_path_factory.mktemp("canary")
    env = {
        "TURNOUT_MASTER_KEY": canaries["master_key"],
        "CANARY_ENV_KEY": canaries["env_key"],
        "OPENAI_API_KEY": canaries["openai_env_key"],
        "OPENAI_BASE_URL": upstream_server.base_url,
    }
    outputs = Outputs()
    config = gateway_config(upstream_server, canaries)
    with run_gateway(workdir, config=config, env=env, args=("--log-level", "debug")) as gw:
        drive(gw, upstream_server, canaries, outputs)
        canaries.update(drive_api_keys(gw, canaries, outputs))
    outputs.add("gateway log", (workdir / "gateway.log").read_bytes())
    yield workdir, outputs


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def drive(gw: Gateway, upstream: FakeUpstream, canaries: dict[str, str], out: Outputs) -> None:
    master = auth(canaries["master_key"])
    chat = "/v1/chat/completions"

    def post(where: str, body: dict[str, object], headers: dict[str, str]) -> int:
        resp = rawhttp.request("POST", gw.url + chat, json=body, headers=headers)
        out.response(where, resp)
        return resp.status

    for model in ("chat", "chat-env", "openai/gpt-4o-mini"):
        assert post(f"{model} json", {"model": model, "messages": MESSAGES}, master) == 200
        stream = {"model": model, "messages": MESSAGES, "stream": True}
        assert post(f"{model} stream", stream, master) == 200
    wrong = canaries["wrong_api_key"]
    body = {"model": "chat", "messages": MESSAGES}
    assert post("wrong bearer", body, auth(wrong)) == 401
    assert post("wrong x-api-key", body, {"x-api-key": wrong}) == 401
    assert post("wrong basic", body, {"Authorization": f"Basic {wrong}"}) == 401
    # each upstream repeats what that backend sent it: its key, and fake's secret header
    sent = {
        "chat": f"{canaries['provider_key']} (token {canaries['header_secret']})",
        "chat-env": canaries["env_key"],
    }
    for model, credentials in sent.items():
        echo = f"Incorrect API key provided: {credentials}"
        for status in (401, 400, 404, 429, 500):
            with upstream.failing(ErrorStatus(status, message=echo)):
                code = post(f"{model} upstream {status}", {**body, "model": model}, master)
            assert code >= 400
    gets = ["/metrics", "/healthz", "/readyz", "/v1/models", "/v1/models/chat", "/admin/routes"]
    gets += ["/admin/routes/chat", "/admin/models", "/no/such/path"]
    for path in gets:
        resp = rawhttp.request("GET", gw.url + path, headers=master)
        assert resp.status < 500, (path, resp.text)
        out.response(f"GET {path}", resp)
    resp = rawhttp.request("POST", gw.url + chat, json={**body, "model": "nope"}, headers=master)
    out.response("unknown model", resp)


def drive_api_keys(gw: Gateway, canaries: dict[str, str], out: Outputs) -> dict[str, str]:
    """Create an API key, use it, rotate it, use the old one: the secrets, shown once in the
    create and rotate answers (not kept as outputs), are canaries from then on."""
    master = auth(canaries["master_key"])
    made = rawhttp.request(
        "POST",
        gw.url + "/admin/keys",
        json={"owner": "canary", "role": "developer"},
        headers=master,
    )
    assert made.status == 201, made.text
    first, prefix = made.json()["key"], made.json()["prefix"]
    body = {"model": "chat", "messages": MESSAGES}
    for header in (auth(first), {"x-api-key": first}):
        resp = rawhttp.request("POST", gw.url + "/v1/chat/completions", json=body, headers=header)
        assert resp.status == 200, resp.text
        out.response(f"api key {next(iter(header))}", resp)
    rotated = rawhttp.request("POST", f"{gw.url}/admin/keys/{prefix}/rotate", headers=master)
    assert rotated.status == 200, rotated.text
    second = rotated.json()["key"]
    old = rawhttp.request("POST", gw.url + "/v1/chat/completions", json=body, headers=auth(first))
    assert old.status == 401
    out.response("rotated-out key", old)
    for path in ("/admin/keys", f"/admin/keys/{prefix}", "/admin/requests", "/admin/usage"):
        out.response(f"GET {path}", rawhttp.request("GET", gw.url + path, headers=master))
    out.response(
        "GET /admin/audit", rawhttp.request("GET", gw.url + "/admin/audit", headers=master)
    )
    return {"api_key": first, "rotated_api_key": second}


# ------------------------------------------------------------------------------- the CLI


def turnout(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "turnout", *args],
        cwd=cwd,
        env=gateway_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def broken_config(canaries: dict[str, str]) -> dict[str, object]:
    """Secrets next to mistakes, so that every error message is near one."""
    return {
        "server": {"master_key": ["not", canaries["master_key"]]},
        "backends": {
            "a": {"base_url": "http://127.0.0.1:1/v1", "api_key": canaries["provider_key"] + "\n"},
            "b": {
                "base_url": "http://127.0.0.1:1/v1",
                "api_key": canaries["env_key"],
                "headers": {"Authorization": ["Bearer", canaries["header_secret"]]},
                "launch": {"command": ["x"], "env": {"TOKEN": ["x", canaries["openai_env_key"]]}},
            },
        },
        "limits": {"redis_url": f"http://:{canaries['redis_password']}@127.0.0.1:6379"},
        "database": {"url": f"mysql://root:{canaries['database_password']}@127.0.0.1/db"},
    }


def live_database(request: pytest.FixtureRequest, password: str) -> str | None:
    """The session's PostgreSQL database, reached with ``password`` (PostgreSQL here trusts
    local connections, so any password is accepted); None without PostgreSQL."""
    try:
        url = str(request.getfixturevalue("pg_database"))
    except pytest.skip.Exception:
        return None
    return url.replace("postgres@", f"postgres:{password}@", 1)


@pytest.fixture(scope="module")
def cli_outputs(
    canaries: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Outputs:
    folder = tmp_path_factory.mktemp("canary-cli")
    out = Outputs()
    broken = folder / "broken.yaml"
    broken.write_text(yaml.safe_dump(broken_config(canaries)))
    out.add(
        "config check (broken)", turnout(["config", "check", "--config", str(broken)], folder, {})
    )
    bad_yaml = folder / "bad-syntax.yaml"
    bad_yaml.write_text(f"backends:\n  a:\n    api_key: {canaries['provider_key']}\n   bad: [\n")
    out.add(
        "config check (YAML)", turnout(["config", "check", "--config", str(bad_yaml)], folder, {})
    )
    password = canaries["database_password"]
    dead = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/test"
    out.add("db current (down)", turnout(["db", "current"], folder, {"TURNOUT_DATABASE_URL": dead}))
    out.add(
        "serve (database down)",
        turnout(["serve", "--port", str(free_port())], folder, {"TURNOUT_DATABASE_URL": dead}),
    )
    live = live_database(request, password)
    if live is not None:
        out.add(
            "db current (up)", turnout(["db", "current"], folder, {"TURNOUT_DATABASE_URL": live})
        )
    out.add(
        "folder",
        b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix != ".yaml"),
    )
    return out


# ----------------------------------------------------------------------------- the search


def files_under(folder: Path, skip: set[str]) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def leaks(canaries: dict[str, str], outputs: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in {where}"
        for where, data in outputs.items()
        for name, value in canaries.items()
        if value.encode() in data
    ]


def test_no_canary_in_any_gateway_output(
    run: tuple[Path, Outputs], canaries: dict[str, str]
) -> None:
    _, outputs = run
    assert len(outputs.texts) >= 30
    assert leaks(canaries, outputs.texts) == []


def test_no_canary_in_any_file_the_gateway_wrote(
    run: tuple[Path, Outputs], canaries: dict[str, str]
) -> None:
    workdir, _ = run
    files = files_under(workdir, skip={"gateway-config.yaml", "gateway.log"})
    names = set(files)
    assert any(name.endswith("turnout.db") for name in names), names  # the request log is there
    assert leaks(canaries, files) == []


def test_the_request_log_has_the_requests_without_their_secrets(
    run: tuple[Path, Outputs], canaries: dict[str, str]
) -> None:
    import sqlite3

    workdir, _ = run
    (db,) = workdir.rglob("turnout.db")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM request_log").fetchall()
    assert len(rows) >= 16  # the successes and the upstream errors were all recorded
    text = repr(rows)
    assert not [name for name, value in canaries.items() if value in text]


def test_no_canary_in_what_the_cli_prints(cli_outputs: Outputs, canaries: dict[str, str]) -> None:
    texts = cli_outputs.texts
    assert "invalid configuration" in texts["config check (broken)"].decode()
    assert "not valid YAML" in texts["config check (YAML)"].decode()
    assert leaks(canaries, texts) == []


def test_the_outputs_did_exercise_the_paths(
    run: tuple[Path, Outputs], canaries: dict[str, str]
) -> None:
    """The search above means something only if the failures it covers happened."""
    _, outputs = run
    assert {"api_key", "rotated_api_key"} <= set(canaries)  # searched for like the others
    texts = {k: v.decode(errors="replace") for k, v in outputs.texts.items()}
    assert texts["wrong bearer"].startswith("401")
    assert "upstream_auth_error" in texts["chat upstream 401"]
    assert "[redacted]" in texts["chat upstream 400"]  # the upstream's words, minus the key
    assert "[redacted]" in texts["chat-env upstream 404"]
    assert "rate-limit store" in texts["gateway log"]  # the Redis password was refused
    assert "turnout_requests_total" in texts["GET /metrics"]
