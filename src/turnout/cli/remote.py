"""Talking to a running gateway's admin API from the command line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import click
from rich.markup import escape

from turnout.cli.common import err_console

__all__ = ["API_KEY_OPTION", "URL_OPTION", "call"]

URL_OPTION = click.option(
    "--url",
    default="http://127.0.0.1:8400",
    show_default=True,
    help="The running gateway.",
)
API_KEY_OPTION = click.option(
    "--api-key",
    envvar="TURNOUT_API_KEY",
    default=None,
    help="An admin key, or the master key (default: $TURNOUT_API_KEY).",
)


def call(
    url: str,
    api_key: str | None,
    path: str,
    *,
    method: str = "GET",
    body: Mapping[str, object] | None = None,
    timeout: float = 10.0,
) -> Any:
    """One JSON request to a running gateway; errors are printed with what to do (exit 1)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        hint = "; check --api-key (or $TURNOUT_API_KEY)" if exc.code == 401 else ""
        err_console.print(f"[red]{escape(url)} refused:[/] {escape(message)}{hint}")
        raise SystemExit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        err_console.print(
            f"[red]Cannot reach {escape(url)}[/]: {escape(str(exc))}; is the gateway running?"
        )
        raise SystemExit(1) from None
