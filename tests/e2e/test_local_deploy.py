"""Deploying local models through the real gateway: unsupported architectures, quantization,
deploys that answer at once (``?wait=false``) and report their progress, ``turnout models
deploy`` with its progress bar, and the progress bar of ``turnout serve`` on a terminal."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pty
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers", reason="the transformers extra is not installed")

from tests.e2e.support import MASTER_KEY, Gateway, assert_error, free_port, gateway_env

DEMO = "local-demo"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """``turnout serve`` with its output on a terminal (a pty), so that the model it loads at
    start-up (``early``, preload) is drawn as a progress bar; the output goes to its log."""
    workdir = tmp_path_factory.mktemp("deploy-gateway")
    models = {"early": {"path": DEMO, "preload": True}}
    config = {"local": {"demo": True, "keep_alive": -1, "max_loaded": 8, "models": models}}
    with serve_on_a_terminal(workdir, config) as gw:
        yield gw


@contextlib.contextmanager
def serve_on_a_terminal(workdir: Path, config: dict[str, Any]) -> Iterator[Gateway]:
    config_path = workdir / "turnout.yaml"
    config_path.write_text(json.dumps(config))
    home = workdir / "turnout-home"
    env = gateway_env(home, {"TERM": "xterm", "COLUMNS": "120", "LINES": "40"})
    port = free_port()
    cmd = [sys.executable, "-m", "turnout", "serve", "--config", str(config_path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    master, slave = pty.openpty()
    process = subprocess.Popen(cmd, stdout=slave, stderr=slave, env=env, cwd=workdir)
    os.close(slave)
    log_path = workdir / "gateway.log"
    reader = threading.Thread(target=_drain, args=(master, log_path), daemon=True)
    reader.start()
    gateway = Gateway(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 60
        while _try_state(gateway, DEMO) is None:
            assert process.poll() is None, gateway.log()
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.1)
        yield gateway
    finally:
        process.terminate()
        process.wait(timeout=20)
        reader.join(timeout=5)
        os.close(master)


def _drain(fd: int, log_path: Path) -> None:
    with log_path.open("ab", buffering=0) as log:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            log.write(chunk)


def _try_state(gateway: Gateway, name: str) -> dict[str, Any] | None:
    try:
        return state(gateway, name)
    except (OSError, AssertionError):
        return None


@pytest.fixture(scope="module")
def models_dir(gateway: Gateway) -> Path:
    return Path(gateway.log_path).parent / "turnout-home" / "models"


def copy_demo(models_dir: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    """A copy of the demo model whose config.json went through ``edit``."""
    target = models_dir / name
    shutil.copytree(models_dir / DEMO, target, dirs_exist_ok=True)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    return name


def state(gateway: Gateway, name: str) -> dict[str, Any] | None:
    resp = gateway.get("/admin/models")
    assert resp.status == 200, resp.text
    return next((m for m in resp.json()["data"] if m["name"] == name), None)


def wait_for(gateway: Gateway, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """The state of ``name`` once it is no longer loading."""
    deadline = time.monotonic() + timeout
    while True:
        current = state(gateway, name)
        assert current is not None, f"{name} is not listed"
        if current["status"] != "loading":
            return current
        assert time.monotonic() < deadline, f"{name} still loading: {current}"
        time.sleep(0.05)


def still_serving(gateway: Gateway) -> None:
    reply = gateway.client().chat.completions.create(model=DEMO, messages=HELLO, max_tokens=2)
    assert reply.choices


# ----------------------------------------------------------------- unsupported models


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.update(values)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.pop(key)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        pytest.param(
            _set(model_type="turnip", architectures=["TurnipForCausalLM"]),
            ["'turnip' model (TurnipForCausalLM)", "does not know", "Upgrade transformers"],
            id="unknown-type",
        ),
        pytest.param(
            _set(
                model_type="turnip",
                architectures=["TurnipForCausalLM"],
                auto_map={"AutoModelForCausalLM": "modeling_turnip.TurnipForCausalLM"},
            ),
            ["needs its own Python code", "trust_remote_code"],
            id="remote-code",
        ),
        pytest.param(
            _set(model_type="t5", architectures=["T5ForConditionalGeneration"]),
            ["'t5' model", "not a text-generation (causal language) model", "llama"],
            id="encoder-decoder",
        ),
        pytest.param(
            _set(model_type="bert", architectures=["BertModel"]),
            ["'bert' model (BertModel)", "not a text-generation"],
            id="encoder",
        ),
        pytest.param(
            _set(architectures=["LlamaForSequenceClassification"]),
            ["(LlamaForSequenceClassification)", "not a text-generation"],
            id="classifier-head",
        ),
        pytest.param(_drop("model_type"), ["names no model_type"], id="no-model-type"),
    ],
)
def test_unsupported_architectures_are_refused(
    gateway: Gateway,
    models_dir: Path,
    edit: Callable[[dict[str, Any]], None],
    fragments: list[str],
    request: pytest.FixtureRequest,
) -> None:
    name = f"arch-{request.node.callspec.id}"
    path = copy_demo(models_dir, name, edit)
    for query in ("", "?wait=false"):  # refused before anything loads, in either mode
        resp = gateway.post(f"/admin/models{query}", {"name": name, "path": path})
        error = assert_error(resp, 400, param="path", code="unsupported_model")
        for fragment in fragments:
            assert fragment in error["message"], error["message"]
    assert state(gateway, name) is None  # nothing registered
    still_serving(gateway)


def test_weights_that_do_not_fit_fail_in_the_background(gateway: Gateway, models_dir: Path) -> None:
    # config.json promises a third layer that the weights do not have
    path = copy_demo(models_dir, "three-layers", _set(num_hidden_layers=3))
    resp = gateway.post("/admin/models?wait=false", {"name": "three-layers", "path": path})
    assert resp.status == 202, resp.text
    final = wait_for(gateway, "three-layers")
    assert final["status"] == "failed" and final["loaded"] is False
    error = final["error"]
    assert error["code"] == "unsupported_model" and error["status"] == 400
    assert "do not fit the architecture" in error["message"]
    assert "model.layers.2." in error["message"]
    still_serving(gateway)
    # the failure stays visible until the name is unloaded
    assert gateway.request("DELETE", "/admin/models/three-layers").json()["unloaded"] is False
    assert state(gateway, "three-layers") is None


# ----------------------------------------------------------------- deploy without waiting


def test_deploy_without_waiting_then_serve(gateway: Gateway, models_dir: Path) -> None:
    shutil.copytree(models_dir / DEMO, models_dir / "later", dirs_exist_ok=True)
    resp = gateway.post("/admin/models?wait=false", {"name": "later", "path": "later"})
    assert resp.status == 202, resp.text
    body = resp.json()
    assert body["status"] == "loading" and body["loaded"] is False
    assert body["progress"]["name"] == "later" and body["progress"]["stage"] == "queued"
    final = wait_for(gateway, "later")
    assert final["status"] == "loaded" and final["progress"] is None
    assert final["stats"]["memory_bytes"] > 0
    reply = gateway.client().chat.completions.create(model="later", messages=HELLO, max_tokens=3)
    assert reply.choices


def test_bad_wait_value(gateway: Gateway) -> None:
    resp = gateway.post("/admin/models?wait=maybe", {"name": "x", "path": DEMO})
    assert_error(resp, 400, param="wait")


# ----------------------------------------------------------------------- quantization


def test_int8_on_cpu_serves_with_less_memory(gateway: Gateway) -> None:
    body = {"name": "demo-int8", "path": DEMO, "quantization": "int8"}
    resp = gateway.post("/admin/models", body)
    assert resp.status == 201, resp.text
    quantized = resp.json()
    assert quantized["quantization"] == "int8"
    assert quantized["stats"]["extra"]["quantization"] == "int8"
    full = state(gateway, DEMO)
    assert full is not None
    # the Linear layers (most of the demo's weights) shrink to a quarter; embeddings stay float
    ratio = quantized["stats"]["memory_bytes"] / full["stats"]["memory_bytes"]
    assert 0.3 < ratio < 0.5, ratio

    client = gateway.client()
    # through the continuous batch
    reply = client.chat.completions.create(model="demo-int8", messages=HELLO, max_tokens=6)
    assert reply.usage is not None and reply.usage.completion_tokens <= 6
    stream = client.chat.completions.create(
        model="demo-int8", messages=HELLO, max_tokens=6, stream=True
    )
    assert [c for c in stream if c.choices and c.choices[0].finish_reason]
    # the sequential path (seeded): deterministic on the quantized weights too
    texts = {
        client.chat.completions.create(model="demo-int8", messages=HELLO, max_tokens=8, seed=4)
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(texts) == 1


# --------------------------------------------------------------------------- precision


def _bf16_demo(models_dir: Path) -> str:
    """The demo model saved in bfloat16, as most released checkpoints are."""
    from turnout.backends.local.demo_model import DemoShape, generate_demo_model

    target = models_dir / "demo-bf16"
    if not target.exists():
        generate_demo_model(target, DemoShape(dtype="bfloat16"))
    return target.name


def test_dtype_auto_keeps_a_bfloat16_checkpoint_where_the_cpu_computes_it(
    gateway: Gateway, models_dir: Path
) -> None:
    from turnout.backends.local.quantization import cpu_native

    path = _bf16_demo(models_dir)
    resp = gateway.post("/admin/models", {"name": "bf16-auto", "path": path})
    assert resp.status == 201, resp.text
    auto = resp.json()["stats"]
    expected = "bfloat16" if cpu_native("bfloat16") else "float32"
    assert auto["extra"]["dtype"] == expected
    full = state(gateway, DEMO)
    assert full is not None and full["stats"]["extra"]["dtype"] == "float32"  # float32 on disk
    if expected == "bfloat16":
        ratio = auto["memory_bytes"] / full["stats"]["memory_bytes"]
        assert 0.45 < ratio < 0.55, ratio

    client = gateway.client()
    reply = client.chat.completions.create(model="bf16-auto", messages=HELLO, max_tokens=6)
    assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 6
    stream = client.chat.completions.create(
        model="bf16-auto", messages=HELLO, max_tokens=6, stream=True
    )
    assert [c for c in stream if c.choices and c.choices[0].finish_reason]
    seeded = {  # the sequential path, deterministic in bfloat16 too
        client.chat.completions.create(model="bf16-auto", messages=HELLO, max_tokens=8, seed=3)
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(seeded) == 1
    vectors = client.embeddings.create(model="bf16-auto", input=["one", "two"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 64
    assert gateway.request("DELETE", "/admin/models/bf16-auto").json()["unloaded"] is True


@pytest.mark.parametrize(
    ("path", "dtype"),
    [("bf16", "float32"), (DEMO, "bfloat16")],
    ids=["bf16-checkpoint-as-float32", "float32-checkpoint-as-bfloat16"],
)
def test_an_explicit_dtype_is_used_as_given(
    gateway: Gateway, models_dir: Path, path: str, dtype: str
) -> None:
    source = _bf16_demo(models_dir) if path == "bf16" else path
    name = f"dtype-{dtype}"
    body = {"name": name, "path": source, "options": {"dtype": dtype}}
    resp = gateway.post("/admin/models", body)
    assert resp.status == 201, resp.text
    assert resp.json()["stats"]["extra"]["dtype"] == dtype
    reply = gateway.client().chat.completions.create(model=name, messages=HELLO, max_tokens=4)
    assert reply.usage is not None and reply.usage.completion_tokens >= 1
    assert gateway.request("DELETE", f"/admin/models/{name}").json()["unloaded"] is True


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"options": {"dtype": "float64"}}, "options.dtype must be one of auto, float32"),
        ({"options": {"dtype": 16}}, "not 16"),
        (
            {"quantization": "int8", "options": {"dtype": "bfloat16"}},
            "int8 quantization on the CPU quantizes float32 layers",
        ),
    ],
)
def test_a_dtype_that_cannot_be_used_is_refused(
    gateway: Gateway, extra: dict[str, Any], fragment: str
) -> None:
    resp = gateway.post("/admin/models", {"name": "bad-dtype", "path": DEMO, **extra})
    error = assert_error(resp, 400, param="options.dtype")
    assert fragment in error["message"], error["message"]
    assert state(gateway, "bad-dtype") is None
    still_serving(gateway)


GPU_EXTRA_MISSING = any(importlib.util.find_spec(p) is None for p in ("bitsandbytes", "accelerate"))


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"quantization": "int4"}, ["int4 needs a CUDA GPU", "int8"]),
        (
            {"quantization": "int8", "options": {"device": "cuda"}},
            ["int8 quantization on 'cuda' needs a CUDA GPU, and torch sees none"]
            + (["pip install 'turnout[gpu]'"] if GPU_EXTRA_MISSING else []),
        ),
        (
            {"quantization": "int4", "options": {"device": "cuda:0"}},
            ["int4 quantization on 'cuda:0' needs a CUDA GPU"],
        ),
        ({"quantization": "int3"}, ["'none', 'int8' or 'int4'"]),
        (
            {"engine": "llama_cpp", "path": "local-demo/model.gguf", "quantization": "int8"},
            ["GGUF file carries its own quantization"],
        ),
    ],
)
def test_quantization_that_cannot_run_here_is_refused(
    gateway: Gateway, body: dict[str, Any], fragments: list[str]
) -> None:
    """No GPU here: the GPU paths are checked for their messages only."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    resp = gateway.post("/admin/models", {"name": "quant", "path": DEMO, **body})
    error = assert_error(resp, 400, param="quantization")
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    still_serving(gateway)


# --------------------------------------------------------------------------------- CLI


def turnout_cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "turnout", "models", *args, "--url", gateway.url]
    env = {"TURNOUT_API_KEY": MASTER_KEY, "PATH": "/usr/bin:/bin", "COLUMNS": "120"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_cli_deploy_shows_progress(gateway: Gateway, models_dir: Path) -> None:
    shutil.copytree(models_dir / DEMO, models_dir / "cli-q8", dirs_exist_ok=True)
    done = turnout_cli(gateway, "deploy", "cli-q8", "cli-q8", "--quantization", "int8")
    assert done.returncode == 0, done.stderr
    assert "deployed cli-q8 (transformers, int8," in done.stdout
    assert "cli-q8" in done.stderr and "loaded" in done.stderr  # the bar, drawn once
    current = state(gateway, "cli-q8")
    assert current is not None and current["status"] == "loaded"
    assert current["quantization"] == "int8"


def test_cli_deploy_reports_a_failed_load(gateway: Gateway, models_dir: Path) -> None:
    path = copy_demo(models_dir, "cli-bad", _set(num_hidden_layers=3))
    done = turnout_cli(gateway, "deploy", "cli-bad", path)
    assert done.returncode == 1
    assert "could not load cli-bad" in done.stderr and "do not fit" in done.stderr
    refused = turnout_cli(gateway, "deploy", "cli-int4", DEMO, "--quantization", "int4")
    assert refused.returncode == 1 and "int4 needs a CUDA GPU" in refused.stderr
    still_serving(gateway)


# ---------------------------------------------------------------- turnout serve console


def test_serve_draws_a_progress_bar_on_a_terminal(gateway: Gateway) -> None:
    """``early`` (preload: true) loaded at start-up; on a terminal as a rich progress bar,
    not as log lines."""
    early = state(gateway, "early")
    assert early is not None and early["status"] == "loaded"
    text = gateway.log()
    assert "\x1b[" in text  # drawn for a terminal
    assert "early" in text and "loaded" in text and "━" in text
    assert "loading early: weights" not in text  # no plain log lines instead
    assert "loading later: weights" not in text  # nor for loads later on
