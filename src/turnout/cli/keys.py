"""``turnout keys ...``: API keys of a running gateway, through its admin API (/admin/keys)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from turnout.cli.common import out_console
from turnout.cli.remote import API_KEY_OPTION, URL_OPTION, call

__all__ = ["keys_group"]

F = TypeVar("F", bound=Callable[..., Any])

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ROLES = click.Choice(["developer", "auditor", "admin"])
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group("keys")
def keys_group() -> None:
    """Create, list, change, revoke and rotate API keys of a running gateway.

    Needs an admin key, or the master key, in --api-key or $TURNOUT_API_KEY.
    """


def _expiry(value: str | None) -> str | None:
    """``30d``, ``12h``, ``90m``, ``2w`` from now, or an ISO 8601 time, as ISO 8601 UTC."""
    if value is None:
        return None
    match = _DURATION.fullmatch(value.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (datetime.now(UTC) + delta).isoformat()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give a duration (30d, 12h, 90m, 2w) or a time (2030-01-31T00:00:00Z)",
            param_hint="--expires",
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def _settings(fn: F) -> F:
    """The options a key's settings are given with (create and update)."""
    options = [
        click.option("--owner", help="Who or what the key is for (a person, team, service)."),
        click.option(
            "--role", type=_ROLES, help="developer, auditor or admin (create: developer)."
        ),
        click.option("--expires", help="30d, 12h, 90m, 2w from now, or an ISO 8601 time."),
        click.option(
            "--models", help="Comma-separated public model names the key may call (default: all)."
        ),
        click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute."),
        click.option("--burst", type=click.IntRange(min=1), help="Requests at once (with --rpm)."),
        click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute."),
        click.option(
            "--budget", type=click.FloatRange(min=0), help="US dollars the key may spend."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _body(options: dict[str, Any]) -> dict[str, Any]:
    """The request body for the options that were given."""
    body: dict[str, Any] = {}
    for name in ("owner", "role", "budget"):
        if options.get(name) is not None:
            body[name] = options[name]
    if options.get("expires") is not None:
        body["expires_at"] = _expiry(options["expires"])
    if options.get("models") is not None:
        body["allowed_models"] = [m.strip() for m in options["models"].split(",") if m.strip()]
    limits = {
        "requests_per_minute": options.get("rpm"),
        "burst": options.get("burst"),
        "tokens_per_minute": options.get("tpm"),
    }
    if any(v is not None for v in limits.values()):
        body["limits"] = {k: v for k, v in limits.items() if v is not None}
    return body


def _print_key(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    for name in ("prefix", "role", "owner", "status", "expires_at", "allowed_models", "limits"):
        out_console.print(f"{name:<15}{escape(_text(view.get(name)))}")
    out_console.print(f"{'spent':<15}{_money(view.get('spent'))} of {_money(view.get('budget'))}")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _money(value: Any) -> str:
    return "no budget" if value is None else f"${float(value):.4f}"


def _print_secret(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    out_console.print(f"[bold]key[/]  {result['key']}")
    out_console.print("[yellow]Shown once: store it now.[/] turnout keeps only its hash.")
    _print_key(result, False)


@keys_group.command("create")
@_settings
@URL_OPTION
@API_KEY_OPTION
@_JSON
def create(url: str, api_key: str | None, as_json: bool, **options: Any) -> None:
    """Create an API key and print it (once: only its hash is kept).

    \b
    Examples:
      turnout keys create --owner alice
      turnout keys create --owner ci --role developer --models chat,embed --rpm 100 --burst 50
      turnout keys create --owner bob --budget 20 --expires 30d
      turnout keys create --owner audit-team --role auditor
    """
    if not options.get("owner"):
        raise click.UsageError("--owner is required: who or what the key is for")
    body = _body(options)
    _print_secret(call(url, api_key, "/admin/keys", method="POST", body=body), as_json)


@keys_group.command("list")
@click.option("--owner", help="Only the keys of this owner.")
@click.option("--role", type=_ROLES, help="Only keys of this role.")
@URL_OPTION
@API_KEY_OPTION
@_JSON
def list_keys(
    owner: str | None, role: str | None, url: str, api_key: str | None, as_json: bool
) -> None:
    """List API keys (never their secrets).

    \b
    Examples:
      turnout keys list
      turnout keys list --role admin --json
    """
    query = "&".join(f"{k}={v}" for k, v in (("owner", owner), ("role", role)) if v)
    keys = _all_pages(url, api_key, query)
    if as_json:
        click.echo(json.dumps(keys, indent=2))
        return
    table = Table("prefix", "role", "owner", "status", "expires", "models", "spent / budget")
    for key in keys:
        table.add_row(
            key["prefix"],
            key["role"],
            escape(key["owner"]),
            key["status"],
            key["expires_at"] or "-",
            escape(_text(key["allowed_models"]) if key["allowed_models"] is not None else "all"),
            f"{_money(key['spent'])} / {_money(key['budget'])}",
        )
    out_console.print(table)


def _all_pages(url: str, api_key: str | None, query: str) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    after = ""
    while True:
        path = f"/admin/keys?limit=1000{after}" + (f"&{query}" if query else "")
        page = call(url, api_key, path)["data"]
        keys += page
        if len(page) < 1000:
            return keys
        after = f"&after={page[-1]['id']}"


@keys_group.command("show")
@click.argument("prefix")
@URL_OPTION
@API_KEY_OPTION
@_JSON
def show(prefix: str, url: str, api_key: str | None, as_json: bool) -> None:
    """Show one API key by its prefix (tk_...).

    \b
    Examples:
      turnout keys show tk_3f9a2c1b7d4e
    """
    _print_key(call(url, api_key, f"/admin/keys/{_path(prefix)}"), as_json)


@keys_group.command("update")
@click.argument("prefix")
@_settings
@click.option("--no-expiry", is_flag=True, help="Remove the expiry.")
@click.option("--all-models", is_flag=True, help="Remove the model allow-list.")
@click.option("--no-limits", is_flag=True, help="Remove the key's own rate limits.")
@click.option("--no-budget", is_flag=True, help="Remove the budget.")
@URL_OPTION
@API_KEY_OPTION
@_JSON
def update(prefix: str, url: str, api_key: str | None, as_json: bool, **options: Any) -> None:
    """Change an API key's settings; the options not given stay as they are.

    \b
    Examples:
      turnout keys update tk_3f9a2c1b7d4e --budget 50
      turnout keys update tk_3f9a2c1b7d4e --models chat --rpm 20
      turnout keys update tk_3f9a2c1b7d4e --no-expiry --all-models
    """
    body = _body(options)
    for flag, field in (
        ("no_expiry", "expires_at"),
        ("all_models", "allowed_models"),
        ("no_limits", "limits"),
        ("no_budget", "budget"),
    ):
        if options[flag]:
            body[field] = None
    if not body:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    path = f"/admin/keys/{_path(prefix)}"
    _print_key(call(url, api_key, path, method="PATCH", body=body), as_json)


@keys_group.command("revoke")
@click.argument("prefix")
@URL_OPTION
@API_KEY_OPTION
@_JSON
def revoke(prefix: str, url: str, api_key: str | None, as_json: bool) -> None:
    """Revoke an API key: refused at once by the gateway that got the command, by its
    other workers and replicas within keys.refresh_interval (2 s).

    \b
    Examples:
      turnout keys revoke tk_3f9a2c1b7d4e
    """
    _print_key(call(url, api_key, f"/admin/keys/{_path(prefix)}", method="DELETE"), as_json)


@keys_group.command("rotate")
@click.argument("prefix")
@URL_OPTION
@API_KEY_OPTION
@_JSON
def rotate(prefix: str, url: str, api_key: str | None, as_json: bool) -> None:
    """Give an API key a new secret (same prefix and settings) and print it once; the old
    secret stops working.

    \b
    Examples:
      turnout keys rotate tk_3f9a2c1b7d4e
    """
    path = f"/admin/keys/{_path(prefix)}/rotate"
    _print_secret(call(url, api_key, path, method="POST"), as_json)


def _path(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", prefix):
        raise click.BadParameter(f"{prefix!r} is not a key prefix (tk_ and 12 hex digits)")
    return prefix
