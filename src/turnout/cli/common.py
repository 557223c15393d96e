"""Shared CLI pieces: the --config option and friendly configuration errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from turnout.config import Config, load_config
from turnout.exceptions import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False)


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Configuration file. Default: $TURNOUT_CONFIG, else ./turnout.yaml, else built-in "
        "defaults plus providers whose API keys are in the environment.",
    )(fn)


def load_or_exit(path: str | None) -> Config:
    """Load the configuration, or print what is wrong and exit with status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        err_console.print(f"[bold red]Configuration error[/]\n{exc.message}", markup=True)
        raise SystemExit(2) from None
