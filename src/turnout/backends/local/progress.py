"""How far the loading of one local model is: for ``GET /admin/models`` and the console.

Stages, in order (each one optional): ``download`` (from the Hugging Face Hub; bytes),
``weights`` (reading the weight files; bytes), ``warmup`` (a first tiny generation), ending in
``loaded`` or ``failed``. The thread that loads writes, the event loop reads; every update
replaces whole values, so a reader sees a consistent enough picture without a lock.

Every change goes to the logger ``turnout.local.progress`` with the snapshot attached to the
record (``record.load_progress``, the :meth:`LoadProgress.snapshot` dict): at INFO when a stage
begins or the load ends, and every :data:`LOG_EVERY` seconds in between (the plain log lines of
a gateway without a terminal); at DEBUG at most every :data:`DRAW_EVERY` seconds (for a live
progress bar, see :mod:`turnout.cli.progress`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["DRAW_EVERY", "LOG_EVERY", "PROGRESS_LOGGER", "LoadProgress", "describe"]

PROGRESS_LOGGER = "turnout.local.progress"
#: seconds between two plain log lines about one load
LOG_EVERY = 5.0
#: seconds between two updates for a live progress bar
DRAW_EVERY = 0.1

log = logging.getLogger(PROGRESS_LOGGER)


class LoadProgress:
    """The loading of model ``name``; see the module docstring."""

    __slots__ = ("_drawn", "_logged", "done", "error", "name", "stage", "started", "total", "unit")

    def __init__(self, name: str) -> None:
        self.name = name
        self.stage = "queued"
        self.done = 0
        #: 0 while unknown
        self.total = 0
        #: ``bytes`` or empty (no unit: a stage without measurable steps)
        self.unit = ""
        self.error: str | None = None
        self.started = time.monotonic()
        self._logged = 0.0
        self._drawn = 0.0

    def begin(self, stage: str, *, total: int = 0, unit: str = "") -> None:
        self.stage, self.done, self.total, self.unit = stage, 0, max(total, 0), unit
        self._emit(force=True)

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int) -> None:
        self.done = min(done, self.total) if self.total else done
        self._emit()

    def finish(self, error: str | None = None) -> None:
        """The load ended: ``loaded``, or ``failed`` with ``error`` (the message)."""
        self.stage = "failed" if error is not None else "loaded"
        self.error = error
        if error is None and self.total:
            self.done = self.total
        self._emit(force=True)

    @property
    def finished(self) -> bool:
        return self.stage in ("loaded", "failed")

    def snapshot(self) -> dict[str, Any]:
        fraction = min(self.done / self.total, 1.0) if self.total else None
        return {
            "name": self.name,
            "stage": self.stage,
            "done": self.done,
            "total": self.total or None,
            "unit": self.unit or None,
            "fraction": fraction,
            "elapsed": round(time.monotonic() - self.started, 3),
        }

    def _emit(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._logged >= LOG_EVERY:
            self._logged = self._drawn = now
            self._record(logging.INFO)
        elif now - self._drawn >= DRAW_EVERY and log.isEnabledFor(logging.DEBUG):
            self._drawn = now
            self._record(logging.DEBUG)

    def _record(self, level: int) -> None:
        snapshot = self.snapshot()
        log.log(
            level,
            "loading %s: %s",
            self.name,
            describe(snapshot),
            extra={"load_progress": snapshot},
        )


def describe(snapshot: dict[str, Any]) -> str:
    """One line: ``weights 12.3 MB of 40.0 MB (31%)``, ``warmup``, ``loaded in 2.1 s``."""
    stage = snapshot["stage"]
    if stage == "loaded":
        return f"loaded in {snapshot['elapsed']:.1f} s"
    if stage == "failed":
        return "failed"
    done, total = snapshot["done"], snapshot["total"]
    if snapshot["unit"] == "bytes":
        amount = f"{_mb(done)} of {_mb(total)}" if total else _mb(done)
    else:
        amount = f"{done} of {total}" if total else ""
    percent = f" ({snapshot['fraction']:.0%})" if snapshot["fraction"] is not None else ""
    return f"{stage} {amount}{percent}".rstrip()


def _mb(count: int) -> str:
    return f"{count / 1e6:.1f} MB"
