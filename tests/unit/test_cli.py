"""The ``turnout`` command line, through click's CliRunner and, for the entry point itself,
a subprocess. Nothing here starts a server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import turnout
from tests.e2e.support import free_port
from tests.unit.support import DEAD_URL, one_line, write_config
from turnout.cli.main import cli

#: wide enough that rich never wraps a line of the output
WIDE = {"COLUMNS": "400"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="turnout", env={**WIDE, **(env or {})})


def valid_config(isolated: Path) -> Path:
    return write_config(
        isolated / "valid.yaml",
        {
            "default_model": "chat",
            "backends": {
                "local": {"base_url": DEAD_URL, "passthrough": False},
                "oai": {"preset": "openai", "api_key": "sk-secret-in-file"},
            },
            "models": {
                "chat": {
                    "deployments": [
                        {"backend": "local", "model": "llama-3", "weight": 3},
                        {"backend": "oai", "model": "gpt-4o-mini", "weight": 0.5},
                    ]
                },
                "embed": {"deployments": [{"backend": "oai", "model": "text-embedding-3-small"}]},
            },
        },
    )


# ------------------------------------------------------------------------------- help


def test_entry_point_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "turnout", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: turnout [OPTIONS] COMMAND [ARGS]...")
    for command in ("serve", "models", "config"):
        assert f"\n  {command} " in proc.stdout


def test_help_lists_commands_and_examples() -> None:
    for flag in ("--help", "-h"):
        result = invoke(flag)
        assert result.exit_code == 0
        assert "turnout: one gateway for hosted LLM APIs and local models." in result.stdout
        assert "turnout config check" in result.stdout
        assert "--version" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"turnout, version {turnout.__version__}\n"


def test_serve_help() -> None:
    result = invoke("serve", "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: turnout serve [OPTIONS]")
    for option in ("--config", "-c", "--host", "--port", "--workers", "--log-level"):
        assert option in result.stdout
    assert "debug|info|warning|error" in result.stdout
    assert "OPENAI_API_KEY=sk-... turnout serve" in result.stdout


def test_unknown_command() -> None:
    result = invoke("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr


# ----------------------------------------------------------------------- config check


def test_config_check_valid(isolated: Path) -> None:
    path = valid_config(isolated)
    result = invoke("config", "check", "--config", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"OK {path}",
        "  2 backend(s): local, oai",
        "  2 model(s): chat, embed",
        "  default model: chat",
    ]
    assert "sk-secret-in-file" not in result.output


def test_config_check_finds_turnout_yaml_and_turnout_config(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(isolated / "turnout.yaml", {"backends": {"here": {"base_url": DEAD_URL}}})
    result = invoke("config", "check")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == ["OK turnout.yaml", "  1 backend(s): here"]
    other = valid_config(isolated)
    result = invoke("config", "check", env={"TURNOUT_CONFIG": str(other)})
    assert result.stdout.splitlines()[0] == f"OK {other}"


def test_config_check_without_a_file(isolated: Path) -> None:
    result = invoke("config", "check", env={"OPENAI_API_KEY": "sk-env"})
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "OK built-in defaults (no configuration file)",
        "  1 backend(s): openai",
        "  0 model(s): -",
    ]


def test_config_check_invalid(isolated: Path) -> None:
    path = write_config(
        isolated / "bad.yaml",
        {"backends": {"b": {"base_url": DEAD_URL, "api_kye": "sk-do-not-echo"}}},
    )
    result = invoke("config", "check", "-c", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Configuration error",
        f"{path}: invalid configuration:",
        "  backends.b.api_kye: unknown key (did you mean 'api_key'?); remove it or fix the "
        "spelling",
    ]
    assert "sk-do-not-echo" not in result.output


def test_config_check_missing_file(isolated: Path) -> None:
    result = invoke("config", "check", "--config", "nowhere.yaml")
    assert result.exit_code == 2
    assert "nowhere.yaml: no such configuration file" in one_line(result.stderr)


def test_serve_refuses_an_invalid_configuration_before_starting(isolated: Path) -> None:
    path = write_config(isolated / "bad.yaml", {"server": {"port": "eighty"}})
    result = invoke("serve", "--config", str(path))
    assert result.exit_code == 2
    assert "server.port: Input should be a valid integer" in result.stderr
    assert not (isolated.parent / "turnout-home" / "master_key").exists()


# ------------------------------------------------------------------------ models list


def test_models_list_json(isolated: Path) -> None:
    result = invoke("models", "list", "--json", "--config", str(valid_config(isolated)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"model": "chat", "deployments": "local/llama-3 (w=3), oai/gpt-4o-mini (w=0.5)"},
        {"model": "embed", "deployments": "oai/text-embedding-3-small (w=1)"},
        {"model": "oai/*", "deployments": "any model on backend 'oai'"},
    ]


def test_models_list_table(isolated: Path) -> None:
    result = invoke("models", "list", "--config", str(valid_config(isolated)))
    assert result.exit_code == 0, result.output
    rows: list[Any] = [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert "┃ model " in result.stdout and "┃ deployments " in result.stdout  # the header
    assert rows == [
        ["chat", "local/llama-3 (w=3), oai/gpt-4o-mini (w=0.5)"],
        ["embed", "oai/text-embedding-3-small (w=1)"],
        ["oai/*", "any model on backend 'oai'"],
    ]


DEMO_ROW = {
    "model": "local-demo",
    "deployments": "local demo model (random weights, writes nonsense)",
}


def test_models_list_with_nothing_configured_is_the_demo(isolated: Path) -> None:
    result = invoke("models", "list")
    assert result.exit_code == 0
    assert "local-demo" in one_line(result.stdout)
    assert json.loads(invoke("models", "list", "--json").stdout) == [DEMO_ROW]


def test_models_list_with_an_empty_config(isolated: Path) -> None:
    path = write_config(isolated / "empty.yaml", {"server": {}})
    result = invoke("models", "list", "--config", str(path))
    assert result.exit_code == 0
    assert "No models: add backends and models to turnout.yaml" in one_line(result.stdout)


def test_models_list_from_environment_providers(isolated: Path) -> None:
    result = invoke("models", "list", "--json", env={"GROQ_API_KEY": "gsk-x"})
    assert json.loads(result.stdout) == [
        DEMO_ROW,
        {"model": "groq/*", "deployments": "any model on backend 'groq'"},
    ]


def test_models_list_url_unreachable(isolated: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("models", "list", "--url", url)
    assert result.exit_code == 1
    assert f"Cannot reach {url}" in one_line(result.stderr)
    assert "is the gateway running?" in one_line(result.stderr)


def test_models_list_invalid_configuration(isolated: Path) -> None:
    path = write_config(isolated / "bad.yaml", {"models": {"x": {"deployments": []}}})
    result = invoke("models", "list", "--config", str(path))
    assert result.exit_code == 2
    assert "models.x.deployments" in result.stderr
