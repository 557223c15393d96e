"""Models from the Hugging Face Hub (``path: hf:ORG/NAME[@REVISION]``) through the real gateway
and the real ``huggingface_hub`` client, against a fake Hub on loopback (HF_ENDPOINT)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers", reason="the transformers extra is not installed")
pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed")

from tests.e2e.support import Gateway, assert_error, free_port, run_gateway
from tests.fakes.hub import FakeHub

HELLO = [{"role": "user", "content": "hello there"}]


def config(workdir: Path) -> dict[str, Any]:
    # demo: a local model, so that local models (and the admin API) are on
    return {"local": {"demo": True, "keep_alive": -1, "model_dirs": [str(workdir / "models")]}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    from turnout.backends.local.demo_model import GGUF_FILE, generate_demo_model

    repo = generate_demo_model(tmp_path_factory.mktemp("hub-repo") / "tiny")
    # a pickle next to the safetensors: it must never be downloaded
    (repo / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    (repo / "README.md").write_text("# tiny\n")
    ggufs = tmp_path_factory.mktemp("hub-gguf")
    if (repo / GGUF_FILE).is_file():
        for name in ("tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf", "tiny-f16.gguf"):
            shutil.copy(repo / GGUF_FILE, ggufs / name)
    (ggufs / "README.md").write_text("# tiny, quantized\n")
    with FakeHub() as fake:
        fake.add_repo("acme/tiny", repo, revisions=("v1",))
        fake.add_repo("acme/tiny-gguf", ggufs)
        yield fake


def hub_env(workdir: Path, endpoint: str) -> dict[str, str]:
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(workdir / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "HF_TOKEN": "",
    }


@pytest.fixture(scope="module")
def gateway(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("hub-gateway")
    with run_gateway(workdir, config=config(workdir), env=hub_env(workdir, hub.url)) as gw:
        yield gw


def models_dir(gateway: Gateway) -> Path:
    return Path(gateway.log_path).parent / "models"


def test_deploy_from_the_hub(gateway: Gateway, hub: FakeHub) -> None:
    resp = gateway.post("/admin/models", {"name": "tiny", "path": "hf:acme/tiny"})
    assert resp.status == 201, resp.text + gateway.log()
    state = resp.json()
    assert state["loaded"] is True and state["path"] == "hf:acme/tiny"

    reply = gateway.client().chat.completions.create(model="tiny", messages=HELLO, max_tokens=4)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0

    target = models_dir(gateway) / "hub" / "acme--tiny" / "main"
    assert (target / "model.safetensors").is_file()
    assert (target / "config.json").is_file()
    assert (target / "tokenizer.json").is_file()
    assert not (target / "pytorch_model.bin").exists()
    assert not (target / "README.md").exists()
    downloads = [r for r in hub.requests if "/resolve/" in r]
    assert downloads and not any(r.endswith(".bin") for r in downloads)


def test_download_progress_in_the_log(gateway: Gateway) -> None:
    gateway.post("/admin/models", {"name": "tiny", "path": "hf:acme/tiny"})
    log = gateway.log()
    # plain lines (no terminal): the download is measured in bytes against the listed total
    assert "loading tiny: download 0.0 MB of " in log
    assert "loading tiny: weights" in log and "loading tiny: loaded in" in log


def test_deploy_a_revision(gateway: Gateway) -> None:
    resp = gateway.post("/admin/models", {"name": "tiny-v1", "path": "hf:acme/tiny@v1"})
    assert resp.status == 201, resp.text
    assert (models_dir(gateway) / "hub" / "acme--tiny" / "v1" / "model.safetensors").is_file()
    reply = gateway.client().chat.completions.create(model="tiny-v1", messages=HELLO, max_tokens=2)
    assert reply.choices


def test_unknown_repository(gateway: Gateway) -> None:
    resp = gateway.post("/admin/models", {"name": "ghost", "path": "hf:acme/ghost"})
    error = assert_error(resp, 400, param="path")
    assert "No model 'acme/ghost' on the Hugging Face Hub" in error["message"]
    assert not (models_dir(gateway) / "hub" / "acme--ghost").exists()  # nothing left behind


def test_unknown_revision(gateway: Gateway) -> None:
    resp = gateway.post("/admin/models", {"name": "ghost", "path": "hf:acme/tiny@nope"})
    error = assert_error(resp, 400, param="path")
    assert "no revision 'nope'" in error["message"]


@pytest.mark.parametrize(
    "path", ["hf:", "hf:../x", "hf:a/b/c", "hf:acme", "hf:/etc/passwd", "hf:acme/..", "hf:a/b@"]
)
def test_bad_ids(gateway: Gateway, hub: FakeHub, path: str) -> None:
    before = len(hub.requests)
    resp = gateway.post("/admin/models", {"name": "bad", "path": path})
    error = assert_error(resp, 400, param="path")
    assert "hf:ORG/NAME" in error["message"]
    assert len(hub.requests) == before  # refused before asking the hub


def test_the_gateway_keeps_serving(gateway: Gateway) -> None:
    gateway.post("/admin/models", {"name": "tiny", "path": "hf:acme/tiny"})
    reply = gateway.client().chat.completions.create(model="tiny", messages=HELLO, max_tokens=2)
    assert reply.choices


def test_hub_unreachable(tmp_path: Path) -> None:
    workdir = tmp_path / "gw"
    closed = f"http://127.0.0.1:{free_port()}"
    with run_gateway(workdir, config=config(workdir), env=hub_env(workdir, closed)) as gw:
        resp = gw.post("/admin/models", {"name": "tiny", "path": "hf:acme/tiny"})
        error = assert_error(resp, 503)
        assert "Hugging Face Hub" in error["message"] and "unreachable" in error["message"]
        assert closed in error["message"]


def test_offline_without_a_copy(tmp_path: Path, hub: FakeHub) -> None:
    workdir = tmp_path / "gw"
    env = {**hub_env(workdir, hub.url), "HF_HUB_OFFLINE": "1"}
    with run_gateway(workdir, config=config(workdir), env=env) as gw:
        resp = gw.post("/admin/models", {"name": "tiny", "path": "hf:acme/tiny"})
        error = assert_error(resp, 400, param="path")
        assert "HF_HUB_OFFLINE" in error["message"]
    shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------ GGUF for llama.cpp

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gguf") is None,
    reason="llama-cpp-python or gguf is not installed",
)


@needs_llama
@pytest.mark.parametrize(
    ("path", "file"),
    [
        ("hf:acme/tiny-gguf:q8_0", "tiny-Q8_0.gguf"),
        ("hf:acme/tiny-gguf/tiny-f16.gguf", "tiny-f16.gguf"),
    ],
)
def test_one_gguf_file_is_downloaded(gateway: Gateway, hub: FakeHub, path: str, file: str) -> None:
    before = len(hub.requests)
    name = "gguf-" + file.split("-")[1].split(".")[0].lower()
    resp = gateway.post("/admin/models", {"name": name, "path": path, "engine": "llama_cpp"})
    assert resp.status == 201, resp.text + gateway.log()
    assert resp.json()["stats"]["extra"]["file"] == file
    fetched = [r for r in hub.requests[before:] if "/resolve/" in r and r.startswith("GET")]
    assert fetched and all(r.endswith("/" + file) for r in fetched), fetched
    target = models_dir(gateway) / "hub" / "acme--tiny-gguf" / "main"
    assert (target / file).is_file() and not (target / "README.md").exists()
    reply = gateway.client().chat.completions.create(model=name, messages=HELLO, max_tokens=3)
    assert reply.choices


@needs_llama
@pytest.mark.parametrize(
    ("path", "code", "fragment"),
    [
        ("hf:acme/tiny-gguf", "ambiguous_model_file", "has 3 GGUF files"),
        ("hf:acme/tiny-gguf:Q2_K", "model_not_found", "has no GGUF file tagged 'Q2_K'"),
        ("hf:acme/tiny-gguf/tiny-Q3.gguf", "model_not_found", "has no file 'tiny-Q3.gguf'"),
    ],
)
def test_gguf_choice_missing_or_ambiguous(
    gateway: Gateway, hub: FakeHub, path: str, code: str, fragment: str
) -> None:
    before = len(hub.requests)
    resp = gateway.post("/admin/models", {"name": "gguf-bad", "path": path, "engine": "llama_cpp"})
    error = assert_error(resp, 400, param="path", code=code)
    assert fragment in error["message"]
    for listed in ("tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf", "tiny-f16.gguf"):
        assert listed in error["message"]
    assert not [r for r in hub.requests[before:] if "/resolve/" in r]  # nothing downloaded


def test_a_gguf_choice_needs_the_llama_cpp_engine(gateway: Gateway, hub: FakeHub) -> None:
    before = len(hub.requests)
    resp = gateway.post("/admin/models", {"name": "x", "path": "hf:acme/tiny-gguf:Q8_0"})
    error = assert_error(resp, 400, param="path")
    assert "llama_cpp" in error["message"]
    assert len(hub.requests) == before
