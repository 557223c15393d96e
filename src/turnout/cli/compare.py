"""``turnout compare``: one workload against several models, side by side, and the report."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from turnout.advisor.compare import Comparison, Measurements, Settings
from turnout.advisor.hardware import PRESETS, load_hardware
from turnout.advisor.metrics import Sample
from turnout.advisor.report import FORMATS, build_report, write_report
from turnout.advisor.targets import GatewaySource, RemoteSource, Source
from turnout.advisor.workload import Workload, load_workload
from turnout.cli.common import config_option, err_console, load_or_exit, out_console
from turnout.config import Config
from turnout.exceptions import ConfigError, ModelNotFound, TurnoutError
from turnout.policies.privacy import Detector
from turnout.pricing import Price, PriceTable
from turnout.telemetry.logging import configure_logging

__all__ = [
    "compare",
    "format_option",
    "hardware_option",
    "output_option",
    "price_table",
    "resolve_output",
]

#: exit status of a run stopped by Ctrl-C (128 + SIGINT), after the report is written
EXIT_INTERRUPTED = 130
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def hardware_option(fn: F) -> F:
    return click.option(
        "--hardware",
        metavar="PRESET|FILE",
        default=None,
        help=f"Local hardware for the cost model: a preset ({', '.join(PRESETS)}) or a "
        "YAML/JSON profile (see docs/compare.md). Without it local targets are not priced.",
    )(fn)


def format_option(fn: F) -> F:
    return click.option(
        "--format",
        "-f",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Report format. Default: from the --output extension, else html.",
    )(fn)


def output_option(default_stem: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        return click.option(
            "--output",
            "-o",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"Report file. Default: ./{default_stem}.FORMAT (html also writes the JSON "
            "next to it).",
        )(fn)

    return decorate


def resolve_output(fmt: str | None, output: Path | None, stem: str) -> tuple[str, Path]:
    """The format (given, else from the file's extension, else html) and the file."""
    if fmt is None:
        suffix = output.suffix.lstrip(".").lower() if output else ""
        fmt = {"htm": "html", "markdown": "md"}.get(suffix, suffix)
        fmt = fmt if fmt in FORMATS else "html"
    if fmt == "html":
        try:
            import plotly  # noqa: F401
        except ImportError:
            err_console.print(
                "The HTML report needs the report extra: pip install 'turnout[report]' "
                "(or choose --format json or md)."
            )
            raise SystemExit(2) from None
    return fmt, output or Path(f"{stem}.{fmt}")


@click.command("compare")
@click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    required=True,
    metavar="MODEL",
    help="A public model name to measure (repeat: two or more to compare them).",
)
@config_option
@click.option(
    "--url",
    default=None,
    help="Measure a running gateway (e.g. http://127.0.0.1:8400) instead of one built from "
    "the configuration in this process.",
)
@click.option(
    "--api-key",
    envvar="TURNOUT_API_KEY",
    default=None,
    help="Key for --url (default: $TURNOUT_API_KEY).",
)
@click.option(
    "--workload",
    "-w",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSONL file, one chat request per line. Default: the built-in mixed set (short "
    "questions, long summaries, code).",
)
@click.option(
    "--requests",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="Measured requests per target, concurrency level and repeat. Default: one pass "
    "over the workload.",
)
@click.option(
    "--concurrency",
    default="1,4",
    show_default=True,
    help="Comma-separated concurrency levels (requests in flight).",
)
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Unmeasured requests per target and level before the measured ones.",
)
@click.option(
    "--stream/--no-stream",
    default=True,
    show_default=True,
    help="Stream responses (needed for time to first token).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Upper limit on every request's output tokens.",
)
@hardware_option
@click.option(
    "--utilization",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.5,
    show_default=True,
    help="Assumed share of the month the local hardware is busy, for its cost per request.",
)
@click.option(
    "--local",
    "declared_local",
    multiple=True,
    metavar="MODEL",
    help="Count this target as local hardware (e.g. a vLLM engine server behind --url).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds one request may take (--url).",
)
@format_option
@output_option("turnout-compare")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(
    targets: tuple[str, ...],
    config_path: str | None,
    url: str | None,
    api_key: str | None,
    workload: str | None,
    requests: int | None,
    concurrency: str,
    repeats: int,
    warmup: int,
    stream: bool,
    max_tokens: int | None,
    hardware: str | None,
    utilization: float,
    declared_local: tuple[str, ...],
    timeout: float,
    fmt: str | None,
    output: Path | None,
    quiet: bool,
) -> None:
    """Run one workload against several models side by side and write a report: latency
    (TTFT, TPOT, end-to-end p50/p90/p99), throughput per concurrency level, errors, cost per
    request and per million tokens, the monthly volume at which local hardware breaks even
    with the API, and how many requests carried sensitive data.

    Ctrl-C stops the run and still writes what was measured (exit status 130).

    \b
    Examples:
      turnout compare -t local-demo -t gpt-4o-mini --hardware l40s-aws
      turnout compare -c turnout.yaml -t qwen-local -t openai/gpt-4o-mini \\
          -w prompts.jsonl --concurrency 1,8,32 --hardware my-box.yaml -o report.html
      turnout compare --url http://127.0.0.1:8400 -t chat -t chat-local --local chat-local \\
          --format md -o report.md
    """
    fmt, path = resolve_output(fmt, output, "turnout-compare")
    settings = Settings(
        concurrency=_levels(concurrency),
        requests=requests or 0,
        repeats=repeats,
        warmup=warmup,
        stream=stream,
    )
    config = load_or_exit(config_path)
    try:
        work = load_workload(workload, max_tokens)
        profile = load_hardware(hardware) if hardware else None
    except ConfigError as exc:
        err_console.print(f"[red]{exc.message}[/]")
        raise SystemExit(2) from None
    if not requests:
        settings = Settings(settings.concurrency, len(work.items), repeats, warmup, stream)
    configure_logging("warning")
    source: Source
    if url:
        source = RemoteSource(url, api_key, price_table(config), declared_local, timeout)
    else:
        source = GatewaySource(config, declared_local)
    measured = run_interruptibly(
        lambda stop: _measure(source, targets, work, settings, quiet, stop)
    )
    report = build_report(
        measured,
        source=f"gateway at {url}" if url else _in_process(config),
        hardware=profile,
        utilization=utilization,
        detector=Detector(config.privacy),
    )
    write_report(report, fmt, path)
    for line in report["verdict"]:
        out_console.print(f"• {line}")
    extra = f" (and {path.with_suffix('.json')})" if fmt == "html" else ""
    out_console.print(f"[green]report written[/] to {path}{extra}")
    if measured.interrupted:
        raise SystemExit(EXIT_INTERRUPTED)


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1:
        raise click.BadParameter(
            f"{text!r}: write positive whole numbers separated by commas, e.g. 1,4,16",
            param_hint="--concurrency",
        )
    return tuple(dict.fromkeys(levels))


def price_table(config: Config) -> PriceTable:
    """The built-in prices overlaid with the configuration's ``prices:``."""
    return PriceTable({k: Price(v.input, v.output) for k, v in config.prices.items()})


def _in_process(config: Config) -> str:
    where = config.source or "built-in defaults"
    return f"in-process gateway ({where})"


def run_interruptibly(work: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``work`` on a new event loop; the first Ctrl-C sets the event it is given (it
    stops and returns what it has), a second one interrupts at once."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def first_interrupt() -> None:
            err_console.print("[yellow]stopping: writing what was measured (Ctrl-C again quits)")
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)

        loop.add_signal_handler(signal.SIGINT, first_interrupt)
        try:
            return await work(stop)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    except ModelNotFound as exc:
        err_console.print(f"[red]{exc.message}[/]")
        raise SystemExit(2) from None
    except TurnoutError as exc:
        err_console.print(f"[red]{exc.message}[/]")
        raise SystemExit(1) from None


async def _measure(
    source: Source,
    names: tuple[str, ...],
    workload: Workload,
    settings: Settings,
    quiet: bool,
    stop: asyncio.Event,
) -> Measurements:
    bar = None if quiet else RunProgress(err_console)
    try:
        await source.start()
        targets = [await source.target(name) for name in dict.fromkeys(names)]
        return await Comparison(source, targets, workload, settings, bar).run(stop)
    finally:
        if bar is not None:
            bar.stop()
        await source.aclose()


class RunProgress:
    """The comparison's progress as a rich bar: measured requests, the phase, the errors."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[errors]} failed"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: Any = None
        self._errors = 0

    def begin(self, total: int) -> None:
        self.progress.start()
        self._task = self.progress.add_task("starting", total=total, errors=0)

    def phase(self, target: str, concurrency: int, repeat: int, warmup: bool) -> None:
        step = "warm-up" if warmup else f"pass {repeat + 1}"
        self.progress.update(
            self._task, description=f"{target} · concurrency {concurrency} · {step}"
        )

    def advance(self, sample: Sample) -> None:
        self._errors += not sample.outcome.ok
        self.progress.update(self._task, advance=1, errors=self._errors)

    def stop(self) -> None:
        self.progress.stop()
