"""Unit-test isolation: no provider keys or TURNOUT_* settings from the developer's shell,
a private TURNOUT_HOME, and a fresh empty working directory (so no ./turnout.yaml is found)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ENV_PREFIXES = ("TURNOUT_", "OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_", "GEMINI_", "GOOGLE_")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every unit test runs in ``tmp_path/work`` with a clean environment; returns that dir."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name.endswith("_API_KEY"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TURNOUT_HOME", str(tmp_path / "turnout-home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work
