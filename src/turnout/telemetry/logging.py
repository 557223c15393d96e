"""Process-wide logging set-up, the same in the serving process and in every worker."""

from __future__ import annotations

import logging
import os

__all__ = ["LOG_LEVEL_ENV", "configure_logging"]

#: ``turnout serve --log-level`` travels to worker processes through this variable
LOG_LEVEL_ENV = "TURNOUT_LOG_LEVEL"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> None:
    """Log ``turnout.*`` at ``level`` (default: $TURNOUT_LOG_LEVEL, else info) to stderr."""
    name = (level or os.environ.get(LOG_LEVEL_ENV) or "info").upper()
    root = logging.getLogger()
    if not any(getattr(h, "_turnout", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._turnout = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(name)
