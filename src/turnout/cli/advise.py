"""``turnout advise``: the compare report's cost and latency analysis over logged traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from turnout.advisor.advise import LocalProfile, TrafficAggregator, Window, advise_report
from turnout.advisor.advise_render import write_advise
from turnout.advisor.hardware import load_hardware
from turnout.advisor.traffic import read_traffic
from turnout.backends.presets import get_preset
from turnout.cli.common import config_option, err_console, load_or_exit, out_console
from turnout.cli.compare import (
    format_option,
    hardware_option,
    output_option,
    price_table,
    resolve_output,
)
from turnout.config import LOCAL_BACKEND, Config
from turnout.exceptions import ConfigError, TurnoutError
from turnout.storage.db import Database

__all__ = ["advise"]


@click.command("advise")
@config_option
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="How many days of the request log to read, back from now.",
)
@click.option(
    "--model", "models", multiple=True, metavar="MODEL", help="Only this public model (repeat)."
)
@hardware_option
@click.option(
    "--throughput",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Output tokens per second one unit of that hardware sustains for your model.",
)
@click.option(
    "--compare",
    "compare_report",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A turnout compare JSON report: the throughput and median latency of its local "
    "target (--throughput, when given too, wins for the throughput).",
)
@click.option(
    "--local-target", default=None, help="The local target of --compare (default: its first)."
)
@click.option(
    "--max-utilization",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.8,
    show_default=True,
    help="Size the hardware so that each unit is busy at most this share of the time.",
)
@format_option
@output_option("turnout-advise")
def advise(
    config_path: str | None,
    days: float,
    models: tuple[str, ...],
    hardware: str | None,
    throughput: float | None,
    compare_report: Path | None,
    local_target: str | None,
    max_utilization: float,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Read the traffic the gateway logged and answer: what does it cost on hosted APIs per
    month, and what would local hardware cost for the same volume, at what latency?

    \b
    Examples:
      turnout advise --hardware l40s-aws --throughput 1200
      turnout advise --days 7 --model chat --hardware my-box.yaml --compare report.json
      turnout advise --hardware h100-lambda --throughput 2500 --format md -o advice.md
    """
    fmt, path = resolve_output(fmt, output, "turnout-advise")
    config = load_or_exit(config_path)
    try:
        profile = _profile(compare_report, local_target, throughput)
        unit = load_hardware(hardware) if hardware else None
    except ConfigError as exc:
        err_console.print(f"[red]{exc.message}[/]")
        raise SystemExit(2) from None
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    traffic = TrafficAggregator(price_table(config), _locality(config))
    try:
        asyncio.run(_read(config, since, traffic, models))
    except TurnoutError as exc:
        err_console.print(f"[red]{exc.message}[/]")
        raise SystemExit(1) from None
    report = advise_report(
        traffic, Window(since, until, traffic.first), unit, profile, max_utilization
    )
    write_advise(report, fmt, path)
    for line in report["verdict"]:
        out_console.print(f"• {line}")
    out_console.print(f"[green]report written[/] to {path}")


def _profile(
    compare_report: Path | None, local_target: str | None, throughput: float | None
) -> LocalProfile | None:
    from turnout.advisor.advise import profile_from_compare

    profile = profile_from_compare(compare_report, local_target) if compare_report else None
    if throughput is None:
        return profile
    latency = profile.p50_latency if profile else None
    source = "--throughput" + (f"; latency from {profile.source}" if profile else "")
    return LocalProfile(throughput, latency, source)


def _locality(config: Config) -> Callable[[str | None], bool]:
    """Whether a backend runs on the operator's own hardware (as the gateway decides)."""
    local: dict[str | None, bool] = {LOCAL_BACKEND: True}
    for name, spec in config.backends.items():
        local[name] = spec.local if spec.local is not None else get_preset(spec.preset).local
    return lambda backend: local.get(backend, False)


async def _read(
    config: Config, since: datetime, traffic: TrafficAggregator, models: tuple[str, ...]
) -> None:
    database = Database.from_config(config)
    try:
        await read_traffic(database, since, traffic.add, models)
    finally:
        await database.aclose()
