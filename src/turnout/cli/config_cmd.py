"""``turnout config ...``: check the configuration without starting anything."""

from __future__ import annotations

import click

from turnout.cli.common import config_option, load_or_exit, out_console


@click.group("config")
def config_group() -> None:
    """Inspect and validate the configuration."""


@config_group.command("check")
@config_option
def check(config_path: str | None) -> None:
    """Validate the configuration and exit: status 0 when valid, 2 with the fix when not.

    \b
    Examples:
      turnout config check
      turnout config check --config /etc/turnout/turnout.yaml
      TURNOUT_CONFIG=prod.yaml turnout config check
    """
    config = load_or_exit(config_path)
    source = config.source or "built-in defaults (no configuration file)"
    out_console.print(f"[green]OK[/] {source}")
    out_console.print(f"  {len(config.backends)} backend(s): {', '.join(config.backends) or '-'}")
    out_console.print(f"  {len(config.models)} model(s): {', '.join(config.models) or '-'}")
    if config.default_model:
        out_console.print(f"  default model: {config.default_model}")
