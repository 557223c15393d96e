"""docs/cli.md is what scripts/gen_cli_docs.py generates from the current command tree."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from turnout.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_cli_docs.py"
DOC = ROOT / "docs" / "cli.md"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_paths(command: click.Command, prefix: str = "turnout") -> list[str]:
    paths = [prefix]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            paths += command_paths(sub, f"{prefix} {name}")
    return paths


def test_cli_docs_are_up_to_date() -> None:
    expected = load_script().render()
    actual = DOC.read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/cli.md is out of date: run .venv/bin/python scripts/gen_cli_docs.py"
    )


def test_cli_docs_cover_every_command() -> None:
    text = DOC.read_text(encoding="utf-8")
    paths = command_paths(cli)
    assert {"turnout serve", "turnout config check", "turnout models list"} <= set(paths)
    for path in paths:
        assert f"\n## `{path}`\n" in text
        assert f"Usage: {path} [OPTIONS]" in text


def test_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    script: Any = load_script()
    script.OUTPUT = tmp_path / "cli.md"
    assert script.main(["--check"]) == 1  # missing
    script.OUTPUT.write_text(script.render().replace("turnout serve", "turnout srve", 1))
    assert script.main(["--check"]) == 1  # stale
    assert script.main([]) == 0  # regenerate
    assert script.main(["--check"]) == 0
    assert script.OUTPUT.read_text(encoding="utf-8") == script.render()


def test_render_does_not_depend_on_the_terminal() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        env={"COLUMNS": "37", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
