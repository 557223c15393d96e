"""The upstream HTTP client's tests run on both event loops: the standard library's (what
library users and these tests' other servers get by default) and uvloop (what
``turnout serve`` runs on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - not on Windows
    uvloop = None  # type: ignore[assignment]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.SelectorEventLoop
    }
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories
