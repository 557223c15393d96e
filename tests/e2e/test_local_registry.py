"""The local registry on the real demo model: keep-alive unloading and the loaded-model cap."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the transformers extra is not installed")

from turnout.backends.local.demo_model import generate_demo_model
from turnout.backends.local.registry import LocalRegistry
from turnout.config import LocalConfig, LocalModelConfig


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    generate_demo_model(root / "a")
    shutil.copytree(root / "a", root / "b")
    return root


def registry(root: Path, **settings: float) -> LocalRegistry:
    config = LocalConfig(
        model_dirs=[str(root)],
        models={
            "a": LocalModelConfig(path="a", options={"num_blocks": 8}),
            "b": LocalModelConfig(path="b", options={"num_blocks": 8}),
        },
        **settings,  # type: ignore[arg-type]
    )
    return LocalRegistry(config, root)


def loaded(reg: LocalRegistry) -> set[str]:
    return {s.name for s in reg.states() if s.loaded}


async def test_keep_alive_unloads_an_idle_model(model_root: Path) -> None:
    reg = registry(model_root, keep_alive=0.3)
    await reg.start()
    try:
        await reg.get("a")
        assert loaded(reg) == {"a"}
        deadline = time.monotonic() + 10
        while loaded(reg):
            assert time.monotonic() < deadline, "the idle model was not unloaded"
            await asyncio.sleep(0.05)
        # and it loads again on demand
        await reg.get("a")
        assert loaded(reg) == {"a"}
    finally:
        await reg.aclose()
    assert loaded(reg) == set()


async def test_the_least_recently_used_model_makes_room(model_root: Path) -> None:
    reg = registry(model_root, max_loaded=1, keep_alive=-1)
    await reg.start()
    try:
        await reg.get("a")
        await reg.get("b")
        assert loaded(reg) == {"b"}
    finally:
        await reg.aclose()


async def test_concurrent_first_requests_load_once(model_root: Path) -> None:
    reg = registry(model_root, keep_alive=-1)
    try:
        engines = await asyncio.gather(*(reg.get("a") for _ in range(5)))
        assert len({id(e) for e in engines}) == 1
    finally:
        await reg.aclose()
