"""The demo model through the real gateway: the transformers engine with continuous batching,
driven by the openai SDK; the admin API deploys, unloads and refuses bad model files."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers", reason="the transformers extra is not installed")

from tests.e2e.support import Gateway, assert_error, run_gateway

DEMO = "local-demo"
DEMO_GGUF = "local-demo-gguf"
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
ENGINES = [
    pytest.param(DEMO, id="transformers"),
    pytest.param(
        DEMO_GGUF,
        id="llama_cpp",
        marks=pytest.mark.skipif(not HAS_LLAMA, reason="llama-cpp-python is not installed"),
    ),
]
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("demo-gateway")
    config = {"local": {"demo": True, "keep_alive": -1}}
    with run_gateway(workdir, config=config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def models_dir(demo: Gateway) -> Path:
    """local.model_dirs defaults to TURNOUT_HOME/models, where the demo model was generated."""
    path = Path(demo.log_path).parent / "turnout-home" / "models"
    assert (path / DEMO / "model.safetensors").is_file()
    return path


def prompt_tokens(models_dir: Path, messages: list[dict[str, Any]]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models_dir / DEMO, local_files_only=True)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def local_state(gateway: Gateway, name: str) -> dict[str, Any]:
    resp = gateway.get("/admin/models")
    assert resp.status == 200, resp.text
    [state] = [m for m in resp.json()["data"] if m["name"] == name]
    return state


def test_demo_is_listed_and_labelled(demo: Gateway) -> None:
    [model] = [m for m in demo.client().models.list().data if m.id == DEMO]
    assert "nonsense" in (model.model_extra or {}).get("description", "")
    assert local_state(demo, DEMO)["demo"] is True


@pytest.mark.parametrize("model", ENGINES)
def test_chat_json(demo: Gateway, model: str, models_dir: Path) -> None:
    reply = demo.client().chat.completions.create(model=model, messages=HELLO, max_tokens=8)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == prompt_tokens(models_dir, HELLO)
    assert 0 <= reply.usage.completion_tokens <= 8  # the end token may come first
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 8


@pytest.mark.parametrize("model", ENGINES)
def test_chat_stream_with_usage(demo: Gateway, model: str, models_dir: Path) -> None:
    stream = demo.client().chat.completions.create(
        model=model,
        messages=HELLO,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert usage.prompt_tokens == prompt_tokens(models_dir, HELLO)
    if finish[-1] == "length":
        assert usage.completion_tokens == 12


@pytest.mark.parametrize("model", ENGINES)
def test_same_seed_same_text(demo: Gateway, model: str) -> None:
    client = demo.client()

    def ask() -> str | None:
        reply = client.chat.completions.create(model=model, messages=HELLO, max_tokens=10, seed=3)
        return reply.choices[0].message.content

    assert ask() == ask()


@pytest.mark.parametrize("model", ENGINES)
def test_sixteen_concurrent_streams(demo: Gateway, model: str) -> None:
    client = demo.async_client()

    async def one(i: int) -> tuple[str | None, int]:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"request {i}"}],
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
        reason, tokens = None, -1
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                reason = chunk.choices[0].finish_reason
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return reason, tokens

    async def all_of_them() -> list[tuple[str | None, int]]:
        try:
            return await asyncio.gather(*(one(i) for i in range(16)))
        finally:
            await client.close()

    results = asyncio.run(all_of_them())
    assert len(results) == 16
    for reason, tokens in results:
        assert reason in ("stop", "length")
        assert 0 <= tokens <= 24  # the demo may draw its end token first
        if reason == "length":
            assert tokens == 24


@pytest.mark.parametrize(
    ("model", "how"),
    [
        # greedy: served inside the continuous batch, and no early end token from this prompt
        pytest.param(DEMO, {"temperature": 0}, id="transformers-batch"),
        # seeded: the sequential path, deterministic
        pytest.param(DEMO, {"seed": 5}, id="transformers-sequential"),
        pytest.param(DEMO_GGUF, {"seed": 5}, id="llama_cpp", marks=ENGINES[1].marks),
    ],
)
def test_disconnect_frees_the_slot(demo: Gateway, model: str, how: dict[str, Any]) -> None:
    client = demo.client(timeout=30.0)
    stream = client.chat.completions.create(
        model=model, messages=HELLO, max_tokens=4000, stream=True, **how
    )
    next(iter(stream))
    wait_until(lambda: local_state(demo, model)["stats"]["active"] == 1)
    stream.close()  # the client goes away mid-generation
    wait_until(lambda: local_state(demo, model)["stats"]["active"] == 0)


def test_deploy_unload_and_redeploy(demo: Gateway, models_dir: Path) -> None:
    shutil.copytree(models_dir / DEMO, models_dir / "copy", dirs_exist_ok=True)
    resp = demo.post("/admin/models", {"name": "demo-copy", "path": "copy"})
    assert resp.status == 201, resp.text
    assert resp.json()["loaded"] is True
    client = demo.client()
    reply = client.chat.completions.create(model="demo-copy", messages=HELLO, max_tokens=4)
    assert reply.usage is not None and reply.usage.prompt_tokens > 0

    resp = demo.request("DELETE", "/admin/models/demo-copy")
    assert resp.status == 200, resp.text
    assert resp.json() == {"name": "demo-copy", "unloaded": True}
    assert local_state(demo, "demo-copy")["loaded"] is False
    # the next request loads it again
    reply = client.chat.completions.create(model="demo-copy", messages=HELLO, max_tokens=4)
    assert local_state(demo, "demo-copy")["loaded"] is True


@pytest.mark.parametrize(
    ("make", "path", "fragment"),
    [
        (None, "missing-model", "does not exist"),
        (None, "../../../etc", "outside the model directories"),
        (None, "/etc", "outside the model directories"),
        ("pickle", "pickled", "pickle"),
        ("corrupt", "corrupt", "safetensors"),
        ("no-config", "noconfig", "config.json"),
    ],
)
def test_bad_deploys_are_refused(
    demo: Gateway, models_dir: Path, make: str | None, path: str, fragment: str
) -> None:
    target = models_dir / path
    if make is not None:
        shutil.copytree(models_dir / DEMO, target, dirs_exist_ok=True)
    if make == "pickle":
        (target / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    elif make == "corrupt":
        (target / "model.safetensors").write_bytes(b"\xff" * 64)
    elif make == "no-config":
        (target / "config.json").unlink()
    resp = demo.post("/admin/models", {"name": f"bad-{make}", "path": path})
    error = assert_error(resp, 400, param="path")
    assert fragment in error["message"]
    # the gateway keeps serving
    reply = demo.client().chat.completions.create(model=DEMO, messages=HELLO, max_tokens=2)
    assert reply.choices


def test_admin_needs_the_key(demo: Gateway) -> None:
    assert_error(demo.get("/admin/models", auth=False), 401)


def test_embeddings_are_pooled_and_normalised(demo: Gateway) -> None:
    client = demo.client()
    texts = ["hello there", "a longer sentence about railway turnouts"]
    floats = client.embeddings.create(model=DEMO, input=texts, encoding_format="float")
    packed = client.embeddings.create(model=DEMO, input=texts)  # the SDK asks for base64
    assert [e.index for e in floats.data] == [0, 1]
    for a, b in zip(floats.data, packed.data, strict=True):
        assert len(a.embedding) == 64  # the demo model's hidden size
        assert abs(sum(x * x for x in a.embedding) - 1.0) < 1e-4
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) < 1e-6
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    short = client.embeddings.create(model=DEMO, input="hello there", dimensions=16)
    assert len(short.data[0].embedding) == 16
    assert abs(sum(x * x for x in short.data[0].embedding) - 1.0) < 1e-4


def test_embedding_dimensions_beyond_the_model_are_refused(demo: Gateway) -> None:
    resp = demo.post("/v1/embeddings", {"model": DEMO, "input": "x", "dimensions": 65})
    assert_error(resp, 400, param="dimensions")


def test_cli_deploy_and_unload(demo: Gateway, models_dir: Path) -> None:
    import subprocess
    import sys

    shutil.copytree(models_dir / DEMO, models_dir / "cli-copy", dirs_exist_ok=True)
    env = {"TURNOUT_API_KEY": "sk-test-master", "PATH": "/usr/bin:/bin"}

    def turnout(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "turnout", "models", *args, "--url", demo.url]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    done = turnout("deploy", "cli-copy", "cli-copy", "--option", "num_blocks=8")
    assert done.returncode == 0, done.stderr
    assert "deployed cli-copy (transformers" in done.stdout
    assert local_state(demo, "cli-copy")["loaded"] is True
    done = turnout("unload", "cli-copy")
    assert done.returncode == 0 and "cli-copy: unloaded" in done.stdout
    refused = turnout("deploy", "evil", "../../etc")
    assert refused.returncode == 1
    assert "outside the model directories" in refused.stderr


@pytest.mark.parametrize("model", ENGINES)
def test_stop_sequence_ends_the_text_before_it(demo: Gateway, model: str) -> None:
    client = demo.client()

    def ask(**extra: Any) -> tuple[str, str | None]:
        reply = client.chat.completions.create(
            model=model, messages=HELLO, max_tokens=30, seed=11, **extra
        )
        return reply.choices[0].message.content or "", reply.choices[0].finish_reason

    full, _ = ask()
    stop = next((full[i : i + 3] for i in range(4, len(full) - 3) if full[i : i + 3].strip()), None)
    if stop is None:
        pytest.skip(f"the seeded text {full!r} has no usable stop candidate")
    text, reason = ask(stop=[stop])
    assert reason == "stop"
    assert text == full[: full.find(stop)]


def test_deploy_and_unload_while_other_requests_run(demo: Gateway, models_dir: Path) -> None:
    import threading

    shutil.copytree(models_dir / DEMO, models_dir / "busy-copy", dirs_exist_ok=True)
    client = demo.client(timeout=60.0)
    results: list[tuple[str | None, int]] = []

    def long_stream() -> None:
        stream = client.chat.completions.create(
            model=DEMO,
            messages=HELLO,
            max_tokens=300,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,
        )
        reason, tokens = None, -1
        for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                reason = chunk.choices[0].finish_reason
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        results.append((reason, tokens))

    workers = [threading.Thread(target=long_stream) for _ in range(3)]
    for worker in workers:
        worker.start()
    wait_until(lambda: local_state(demo, DEMO)["stats"]["active"] >= 1)
    resp = demo.post("/admin/models", {"name": "busy-copy", "path": "busy-copy"})
    assert resp.status == 201, resp.text
    reply = client.chat.completions.create(model="busy-copy", messages=HELLO, max_tokens=3)
    assert reply.choices
    assert demo.request("DELETE", "/admin/models/busy-copy").json()["unloaded"] is True
    for worker in workers:
        worker.join(timeout=60)
    assert len(results) == 3
    assert all(reason in ("stop", "length") and tokens >= 0 for reason, tokens in results)
