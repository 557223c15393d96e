"""``turnout models ...``: the public model names and where they go."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import click
from rich.table import Table

from turnout.cli.common import config_option, err_console, load_or_exit, out_console


@click.group("models")
def models_group() -> None:
    """List and manage models."""


@models_group.command("list")
@config_option
@click.option(
    "--url",
    default=None,
    help="Ask a running gateway (e.g. http://127.0.0.1:8400) instead of reading the config.",
)
@click.option(
    "--api-key",
    envvar="TURNOUT_API_KEY",
    default=None,
    help="Key for --url (default: $TURNOUT_API_KEY).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(
    config_path: str | None, url: str | None, api_key: str | None, as_json: bool
) -> None:
    """List public model names with their deployments (backend → upstream model).

    \b
    Examples:
      turnout models list
      turnout models list --json
      turnout models list --url http://127.0.0.1:8400 --api-key sk-...
    """
    if url:
        _list_remote(url, api_key, as_json)
        return
    config = load_or_exit(config_path)
    rows = [
        (name, ", ".join(f"{d.backend}/{d.model} (w={d.weight:g})" for d in m.deployments))
        for name, m in config.models.items()
    ]
    rows += [
        (f"{b}/*", f"any model on backend {b!r}")
        for b, s in config.backends.items()
        if s.passthrough
    ]
    if as_json:
        click.echo(json.dumps([{"model": n, "deployments": d} for n, d in rows], indent=2))
        return
    table = Table("model", "deployments", title="turnout models")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)
    if not rows:
        out_console.print(
            "No models: add backends and models to turnout.yaml, or export a "
            "provider key such as OPENAI_API_KEY."
        )


def _list_remote(url: str, api_key: str | None, as_json: bool) -> None:
    request = urllib.request.Request(url.rstrip("/") + "/v1/models")  # noqa: S310
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        err_console.print(f"[red]{url} answered HTTP {exc.code}[/]; check --api-key.")
        raise SystemExit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        err_console.print(f"[red]Cannot reach {url}[/]: {exc}; is the gateway running?")
        raise SystemExit(1) from None
    names = [m["id"] for m in data.get("data", [])]
    if as_json:
        click.echo(json.dumps(names, indent=2))
    else:
        for name in names:
            out_console.print(name)
