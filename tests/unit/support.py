"""Small helpers shared by the unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: a loopback URL nothing listens on; unit tests never connect to it
DEAD_URL = "http://127.0.0.1:9/v1"


def write_config(path: Path, content: str | dict[str, Any]) -> Path:
    """Write ``content`` (YAML text, or a mapping dumped as YAML) to ``path``; return it."""
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def one_line(text: str) -> str:
    """Collapse all whitespace, so that text a terminal renderer wrapped can be searched."""
    return " ".join(text.split())
