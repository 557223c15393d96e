"""Local model settings (quantization, preload) and load progress, without loading a model."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.unit.test_docs import DOCS, _same, read, table_rows, unquote
from turnout.backends.local.progress import PROGRESS_LOGGER, LoadProgress, describe
from turnout.config import LocalConfig, LocalModelConfig


def test_defaults() -> None:
    spec = LocalModelConfig(path="m")
    assert spec.quantization == "none" and spec.preload is False


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"quantization": "int4"}, "int4 needs a CUDA GPU"),
        ({"quantization": "int4", "options": {"device": "cpu"}}, "int4 needs a CUDA GPU"),
        ({"engine": "llama_cpp", "quantization": "int8"}, "GGUF file carries its own"),
        ({"quantization": "int2"}, "'none', 'int8' or 'int4'"),
    ],
)
def test_quantization_refused_by_the_configuration(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        LocalModelConfig(path="m", **settings)
    [error] = info.value.errors()
    assert error["loc"] == ("quantization",)
    assert fragment in error["msg"]


@pytest.mark.parametrize(
    "settings",
    [
        {"quantization": "int8"},
        {"quantization": "int8", "options": {"device": "cuda"}},
        {"quantization": "int4", "options": {"device": "cuda:1"}},
    ],
)
def test_quantization_accepted(settings: dict[str, Any]) -> None:
    assert LocalModelConfig(path="m", **settings).quantization == settings["quantization"]


def test_progress_snapshots_and_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    progress = LoadProgress("m")
    assert progress.snapshot()["stage"] == "queued"
    progress.begin("download", total=4_000_000, unit="bytes")
    progress.advance(1_000_000)
    snap = progress.snapshot()
    assert (snap["done"], snap["total"], snap["unit"], snap["fraction"]) == (
        1_000_000,
        4_000_000,
        "bytes",
        0.25,
    )
    assert describe(snap) == "download 1.0 MB of 4.0 MB (25%)"
    progress.update(9_000_000)  # never past the total
    assert progress.snapshot()["fraction"] == 1.0
    progress.begin("warmup")
    assert describe(progress.snapshot()) == "warmup"
    progress.finish()
    assert progress.finished and describe(progress.snapshot()).startswith("loaded in ")
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]
    # stage starts and the end are logged at once, updates in between only every few seconds
    assert lines[0] == "loading m: download 0.0 MB of 4.0 MB (0%)"
    assert lines[1:] == ["loading m: warmup", lines[-1]] and "loaded in" in lines[-1]
    assert all(isinstance(getattr(r, "load_progress", None), dict) for r in caplog.records)


def test_a_failed_load() -> None:
    progress = LoadProgress("m")
    progress.begin("weights", total=10, unit="bytes")
    progress.finish(error="corrupt")
    snap = progress.snapshot()
    assert snap["stage"] == "failed" and progress.error == "corrupt"
    assert describe(snap) == "failed"


@pytest.mark.parametrize(
    ("model", "prefix"), [(LocalConfig, ""), (LocalModelConfig, "models.NAME.")], ids=str
)
def test_configuration_doc_has_every_local_key(model: type[BaseModel], prefix: str) -> None:
    rows = {unquote(r[0]): r for r in table_rows(read(DOCS / "configuration.md"))}
    for name, field in model.model_fields.items():
        key = prefix + name
        assert key in rows, f"{key} is missing from docs/configuration.md"
        literal = re.match(r"`([^`]*)`", rows[key][1])
        if literal and field.default is not None and field.default_factory is None:
            assert _same(literal.group(1), field.default), (key, literal.group(1))
