"""Request cost: from the price table for hosted deployments, 0 on the operator's own hardware,
unknown (and one warning) without a price; charged to the calling key, not to the master key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.unit.support import DEAD_URL
from turnout.backends.base import RequestContext, Usage
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.policies.keys import MASTER, ApiKeyState
from turnout.services.accounting import Accountant


def gateway(isolated: Path) -> Gateway:
    return Gateway(
        Config.model_validate(
            {
                "server": {"data_dir": str(isolated / "data"), "log_requests": False},
                "local": {"demo": False},
                "backends": {
                    "hosted": {"base_url": DEAD_URL},
                    "gpu": {"base_url": DEAD_URL, "local": True},
                },
                "prices": {"hosted/house-model": {"input": 1.0, "output": 2.0}},
            }
        )
    )


def test_costs_come_from_the_price_table_and_local_is_free(
    isolated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway(isolated)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000)
    assert gw.cost("hosted", "house-model", usage) == pytest.approx(2.0)
    assert gw.cost("hosted", "gpt-4o-mini-2024-07-18", usage) == pytest.approx(0.15 + 0.30)
    assert gw.cost("gpu", "gpt-4o-mini", usage) == 0.0
    with caplog.at_level(logging.WARNING, logger="turnout"):
        assert gw.cost("hosted", "mystery", usage) is None
        assert gw.cost("hosted", "mystery", usage) is None
    assert [r.message for r in caplog.records].count(
        "no price for hosted/mystery: its requests cost 0 toward budgets; add it under prices:"
    ) == 1


async def test_the_cost_is_recorded_and_charged_to_the_key_only(isolated: Path) -> None:
    gw = gateway(isolated)
    charged: list[tuple[int, float]] = []
    accountant = Accountant(
        gw.metrics, None, pricer=gw.cost, charge=lambda key, cost: charged.append((key.id, cost))
    )
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    key = ApiKeyState(7, "tk_000000000007", "0" * 64, "developer", "o", now, now)
    for caller in (key.caller, MASTER):
        ctx = RequestContext.create("req", 10)
        ctx.caller, ctx.principal = caller, caller.name
        record = accountant.begin(ctx, "chat", "house")
        ctx.backend, ctx.upstream_model = "hosted", "house-model"
        accountant.finish(record, ctx, usage=Usage(500_000, 0))
        assert record.cost == pytest.approx(0.5)
        assert record.key_id == (7 if caller is key.caller else None)
    assert charged == [(7, pytest.approx(0.5))]
