"""``turnout advise`` over a real request log, on SQLite and PostgreSQL: what is read, the
monthly figures scaled from the window, the local option computed by hand, and the command."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import insert

from tests.storage.support import make_record
from turnout.advisor.advise import (
    DAYS_PER_MONTH,
    LocalProfile,
    TrafficAggregator,
    Window,
    advise_report,
)
from turnout.advisor.hardware import PRESETS
from turnout.advisor.traffic import read_traffic
from turnout.cli.main import cli
from turnout.pricing import PriceTable
from turnout.storage.db import Database, parse_url
from turnout.storage.models import RequestLog
from turnout.storage.writer import record_row

NOW = time.time()
HOUR = 3600.0
#: gpt-4o-mini's built-in list price: $0.15 / $0.60 per million tokens
PER_REQUEST = (1000 * 0.15 + 200 * 0.60) / 1e6


def rows() -> list[dict[str, object]]:
    """Two hours of traffic: 40 hosted chat requests (2 failed, 1 with an e-mail), 10 local
    ones, an embedding request and a request from last year (both left out)."""
    records = []
    for i in range(40):
        records.append(
            make_record(
                i,
                started=NOW - 2 * HOUR + i * 60,
                backend="openai",
                upstream_model="gpt-4o-mini",
                prompt_tokens=1000,
                completion_tokens=200,
                latency=1.0 + (i % 5) * 0.1,  # median 1.2 s
                ttft=0.3,
                status=502 if i in (7, 8) else 200,
                error_code="upstream_error" if i in (7, 8) else None,
                privacy_categories=["email"] if i == 3 else [],
            )
        )
    for i in range(40, 50):
        records.append(
            make_record(
                i,
                started=NOW - HOUR + i,
                backend="local",
                upstream_model="local-demo",
                prompt_tokens=900,
                completion_tokens=210,
                latency=0.4,
            )
        )
    records.append(make_record(50, started=NOW - 60, endpoint="embedding", model="embed"))
    records.append(make_record(51, started=NOW - 400 * 24 * HOUR))
    return [record_row(r) for r in records]


async def fill(url: str) -> Database:
    database = Database(parse_url(url))
    await database.migrate()
    async with database.engine.begin() as conn:
        await conn.execute(insert(RequestLog), rows())
    return database


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = await fill(db_url)
    yield database
    await database.aclose()


async def aggregate(database: Database, models: tuple[str, ...] = ()) -> TrafficAggregator:
    traffic = TrafficAggregator(PriceTable(), lambda backend: backend == "local")
    since = datetime.fromtimestamp(NOW, UTC) - timedelta(days=30)
    await read_traffic(database, since, traffic.add, models)
    return traffic


async def test_reads_generation_requests_in_the_window(database: Database) -> None:
    traffic = await aggregate(database)
    assert set(traffic.models) == {"chat"}  # the embedding request is left out
    hosted, local = traffic.models["chat"]["hosted"], traffic.models["chat"]["local"]
    assert (hosted.requests, hosted.failed, local.requests) == (40, 2, 10)
    assert hosted.prompt_tokens == 38 * 1000 and hosted.completion_tokens == 38 * 200
    assert hosted.cost == pytest.approx(38 * PER_REQUEST)
    assert hosted.sensitive == 1 and hosted.categories == {"email": 1}
    assert traffic.first is not None
    assert traffic.first.timestamp() == pytest.approx(NOW - 2 * HOUR, abs=1e-3)
    assert (await aggregate(database, ("other",))).models == {}


async def test_the_local_option_by_hand(database: Database) -> None:
    traffic = await aggregate(database)
    until = datetime.fromtimestamp(NOW, UTC)
    window = Window(until - timedelta(days=30), until, traffic.first)
    assert window.days == pytest.approx(2 / 24, rel=1e-3)  # traffic began two hours ago
    l40s = PRESETS["l40s-aws"]
    profile = LocalProfile(1000.0, None, "--throughput")
    report = advise_report(traffic, window, l40s, profile, max_utilization=0.8)
    [chat] = report["models"]
    scale = DAYS_PER_MONTH / window.days
    hosted = chat["hosted"]
    assert hosted["per_month"]["requests"] == pytest.approx(40 * scale)
    assert hosted["per_month"]["cost_usd"] == pytest.approx(38 * PER_REQUEST * scale)
    assert hosted["latency_s"]["p50"] == pytest.approx(1.2)

    option = chat["local_option"]
    rps = 1000 / 200  # output tokens/s over output tokens per request
    assert option["requests_per_s_per_unit"] == pytest.approx(rps)
    volume = 38 * scale
    units = max(1, -(-volume // (rps * 2_628_000 * 0.8)))
    assert option["units"] == units
    assert option["monthly_cost_usd"] == pytest.approx(units * 1.861 * 730)
    assert option["savings_usd_per_month"] == pytest.approx(
        38 * PER_REQUEST * scale - units * 1.861 * 730
    )
    assert option["latency_ratio"] == pytest.approx(0.4 / 1.2)  # from the logged local traffic
    assert option["break_even_requests_per_month"] == pytest.approx(1.861 * 730 / PER_REQUEST)
    assert option["break_even_tokens_per_day"] == pytest.approx(
        1.861 * 730 / PER_REQUEST * 1200 / DAYS_PER_MONTH
    )
    verdict = " ".join(report["verdict"])
    assert "chat: at the last 0.0833 days'" in verdict
    assert "of the API's median latency" in verdict
    assert "1 request carrying sensitive data (email 1)" in verdict


def test_the_advise_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'turnout.db'}"

    async def setup() -> None:
        await (await fill(url)).aclose()

    asyncio.run(setup())
    config = tmp_path / "turnout.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": url},
                "backends": {"openai": {"preset": "openai", "api_key": "sk-x"}},
                "models": {
                    "chat": {"deployments": [{"backend": "openai", "model": "gpt-4o-mini"}]}
                },
            }
        )
    )
    out = tmp_path / "advice.json"
    args = ["advise", "-c", str(config), "--hardware", "l40s-aws", "--throughput", "1000"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "report written" in result.output and "would" in result.output
    report = json.loads(out.read_text())
    assert report["schema"] == "turnout.advise/1"
    assert report["models"][0]["local_option"]["units"] >= 1
    md = tmp_path / "advice.md"
    assert CliRunner().invoke(cli, [*args, "-o", str(md)]).exit_code == 0
    assert "| chat | 40 | 2 |" in md.read_text()
    bad = CliRunner().invoke(cli, ["advise", "-c", str(config), "--hardware", "nope"])
    assert bad.exit_code == 2 and "neither a preset" in bad.output
