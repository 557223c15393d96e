"""Fixtures of the storage tests: an empty database of each kind (see support.py), and a
clean working directory and environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.storage.support import db_url

__all__ = ["db_url"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TURNOUT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TURNOUT_HOME", str(tmp_path / "turnout-home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
