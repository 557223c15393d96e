"""Progress bars for loading local models: in the ``turnout serve`` console (from the
``turnout.local.progress`` log records, see :mod:`turnout.backends.local.progress`) and in
``turnout models deploy`` (from the states a running gateway reports)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from turnout.backends.local.progress import PROGRESS_LOGGER

__all__ = ["LoadBars", "show_load_progress"]


class _Amount(ProgressColumn):
    """Bytes for byte stages, nothing for the others."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == "bytes" and task.total:
            return self._bytes.render(task)
        return Text("")


class LoadBars:
    """One rich progress bar per model being loaded, fed with progress snapshots."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[bold]{task.fields[name]}[/]"),
            TextColumn("{task.description}"),
            BarColumn(),
            _Amount(),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, Any] = {}
        self._live = False
        self._lock = threading.Lock()

    def update(self, snapshot: dict[str, Any]) -> None:
        """Draw ``snapshot`` (a LoadProgress snapshot or a model state's ``progress``)."""
        with self._lock:
            name, stage = snapshot["name"], snapshot["stage"]
            task = self._tasks.get(name)
            if task is None:
                if not self._live:  # bars of earlier loads stay on screen, drawn once
                    for old in list(self.progress.task_ids):
                        self.progress.remove_task(old)
                    self.progress.start()
                    self._live = True
                task = self.progress.add_task(stage, name=name, unit=None, total=None)
                self._tasks[name] = task
            finished = stage in ("loaded", "failed")
            total = snapshot.get("total")
            self.progress.update(
                task,
                description=_stage_text(stage),
                total=1 if finished and not total else total,
                completed=1 if finished and not total else snapshot.get("done", 0),
                unit=snapshot.get("unit"),
            )
            if finished:
                self._tasks.pop(name)
                if not self._tasks:
                    self.stop()

    def stop(self) -> None:
        if self._live:
            self.progress.stop()
            self._live = False


def _stage_text(stage: str) -> str:
    return {
        "queued": "waiting",
        "download": "downloading",
        "weights": "reading weights",
        "building": "building the model",
        "warmup": "warming up",
        "loaded": "[green]loaded[/]",
        "failed": "[red]failed[/]",
    }.get(stage, stage)


class _BarsHandler(logging.Handler):
    def __init__(self, bars: LoadBars) -> None:
        super().__init__(logging.DEBUG)
        self.bars = bars

    def emit(self, record: logging.LogRecord) -> None:
        snapshot = getattr(record, "load_progress", None)
        if isinstance(snapshot, dict):
            self.bars.update(snapshot)


def show_load_progress(console: Console) -> LoadBars:
    """Draw every model load of this process as a progress bar on ``console`` instead of
    log lines (for a console that is a terminal)."""
    bars = LoadBars(console)
    logger = logging.getLogger(PROGRESS_LOGGER)
    logger.addHandler(_BarsHandler(bars))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return bars
