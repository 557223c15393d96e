"""Shared fixtures: the fake OpenAI-compatible upstream, and a PostgreSQL database for the
session (``pg_database``, see tests/storage/support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeUpstream
from tests.storage.support import pg_database

__all__ = ["pg_database"]


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    """One fake upstream for the whole session (gateways are configured with its port)."""
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake upstream, with no scripted faults and no recorded requests."""
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()
