"""End-to-end fixtures: the real gateway (``python -m turnout serve``) in front of the fake
upstream (tests/fakes/upstream.py), both on loopback.

The session's gateway runs with ``support.main_config``: public models ``chat`` and ``embed``
(backend ``fake``, key from env FAKE_UPSTREAM_KEY), ``chat-literal-key`` (literal api_key),
``chat-deadline`` (timeout.total 1.5 s) and ``chat-dead`` (connection refused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator

import openai
import pytest

from tests.e2e.support import UPSTREAM_KEY, Gateway, main_config, run_gateway
from tests.fakes import FakeUpstream


@pytest.fixture(scope="session")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("gateway")
    config = main_config(upstream_server)
    with run_gateway(workdir, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _fresh_upstream(upstream: FakeUpstream) -> FakeUpstream:
    """Every e2e test starts with no scripted faults and no recorded upstream requests."""
    return upstream


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as c:
        yield c


@pytest.fixture
async def aclient(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with gateway.async_client() as c:
        yield c


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of each involved gateway's log to a failing test's report."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Gateway):
                tail = value.log()[-8000:]
                report.sections.append((f"gateway log ({value.url})", tail))
    return report
