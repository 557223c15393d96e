"""The cost model's worked examples; docs/compare.md walks through the same numbers."""

from __future__ import annotations

import pytest

from turnout.advisor.cost import (
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    Hardware,
    break_even,
    capacity_per_month,
    cost_curve,
    local_at_utilization,
    local_monthly_cost,
    per_million,
    plan_for_volume,
)
from turnout.advisor.hardware import PRESETS
from turnout.pricing import Price

#: OpenAI's list price for gpt-4o-mini (https://openai.com/api/pricing/), per million tokens
GPT_4O_MINI = Price(0.15, 0.60)
#: Anthropic's list price for Claude Sonnet 4.5 (https://www.anthropic.com/pricing#api)
SONNET = Price(3.0, 15.0)


def test_a_month_is_730_hours() -> None:
    assert HOURS_PER_MONTH == 8760 / 12
    assert SECONDS_PER_MONTH == 2_628_000
    assert capacity_per_month(4.0) == 10_512_000
    assert capacity_per_month(-1.0) == 0


def test_example_1_gpt_4o_mini_against_an_l40s_on_aws() -> None:
    """Example 1 of docs/compare.md: 500 input + 200 output tokens per request."""
    hosted = GPT_4O_MINI.cost(500, 200)
    assert hosted == pytest.approx(0.000195)  # (500 × 0.15 + 200 × 0.60) / 1e6
    assert per_million(hosted, 700) == pytest.approx(0.278571, rel=1e-5)

    l40s = PRESETS["l40s-aws"]
    assert l40s.hourly_price == 1.861
    assert l40s.fixed_monthly == pytest.approx(1358.53)  # 1.861 × 730
    assert l40s.energy_monthly == 0  # the hourly price includes power

    # measured: 4 requests/s at the best concurrency -> 10.512M requests/month at most
    result = break_even(l40s, hosted, requests_per_s=4.0)
    assert result.requests_per_month == pytest.approx(6_966_820.5, rel=1e-6)  # 1358.53 / 0.000195
    assert result.utilization == pytest.approx(0.662749, rel=1e-5)  # of 10.512M
    assert result.reachable
    tokens = result.requests_per_month * 700
    assert tokens == pytest.approx(4.8768e9, rel=1e-4)  # about 160M tokens a day

    half = local_at_utilization(l40s, 4.0, 0.5)
    assert half is not None
    assert half.requests_per_month == 5_256_000
    assert half.monthly_cost == pytest.approx(1358.53)
    assert half.cost_per_request == pytest.approx(0.000258472, rel=1e-5)
    assert per_million(half.cost_per_request, 700) == pytest.approx(0.369246, rel=1e-5)


def test_example_2_sonnet_against_an_owned_rtx_4090() -> None:
    """Example 2: 1,000 input + 300 output tokens, 1 request/s on a bought card."""
    hosted = SONNET.cost(1000, 300)
    assert hosted == pytest.approx(0.0075)  # (1000 × 3 + 300 × 15) / 1e6

    card = PRESETS["rtx4090-owned"]
    assert card.fixed_monthly == pytest.approx(44.416667, rel=1e-6)  # 1599 / 36
    assert card.energy_monthly == pytest.approx(42.705)  # 0.45 kW × 730 h × $0.13
    assert local_monthly_cost(card, 0.5) == pytest.approx(44.416667 + 21.3525, rel=1e-6)

    result = break_even(card, hosted, requests_per_s=1.0)
    energy_per_request = 42.705 / 2_628_000
    assert result.requests_per_month == pytest.approx(44.416667 / (0.0075 - energy_per_request))
    assert result.requests_per_month == pytest.approx(5935.1, rel=1e-4)
    assert result.utilization == pytest.approx(0.0022584, rel=1e-3)
    assert result.reachable


def test_example_3_a_break_even_beyond_one_unit_is_never_reached() -> None:
    """Example 3: gpt-4o-mini against an H100 that serves only 1 request/s of the workload."""
    h100 = PRESETS["h100-lambda"]
    assert h100.fixed_monthly == pytest.approx(1817.70)  # 2.49 × 730
    result = break_even(h100, GPT_4O_MINI.cost(500, 200), requests_per_s=1.0)
    assert result.requests_per_month == pytest.approx(9_321_538.5, rel=1e-6)
    assert result.utilization == pytest.approx(3.547008, rel=1e-5)
    assert not result.reachable
    assert "cannot serve" in result.reason


def test_no_break_even_when_the_api_costs_less_than_the_energy() -> None:
    card = PRESETS["rtx4090-owned"]
    # 0.1 requests/s: 42.705 / 262,800 = $0.0001625 of energy per request
    result = break_even(card, 0.0001, requests_per_s=0.1)
    assert result.requests_per_month is None and not result.reachable
    assert "energy" in result.reason
    assert break_even(card, 0.01, requests_per_s=0).requests_per_month is None
    assert break_even(card, 0.0, requests_per_s=1).requests_per_month is None


def test_more_units_when_one_is_full() -> None:
    l40s = PRESETS["l40s-aws"]
    plan = plan_for_volume(l40s, 4.0, 12_000_000)  # one unit serves 10.512M
    assert plan is not None
    assert plan.units == 2
    assert plan.monthly_cost == pytest.approx(2 * 1358.53)
    assert plan.utilization == pytest.approx(12_000_000 / 10_512_000 / 2)
    headroom = plan_for_volume(l40s, 4.0, 6_000_000, max_utilization=0.5)
    assert headroom is not None and headroom.units == 2
    idle = plan_for_volume(l40s, 4.0, 0)
    assert idle is not None and idle.units == 1 and idle.monthly_cost == pytest.approx(1358.53)
    assert plan_for_volume(l40s, 0.0, 10) is None


def test_cost_curve_steps_up_per_unit() -> None:
    owned = Hardware(
        "box",
        purchase_price=3600,
        lifetime_months=36,
        power_kw=1.0,
        electricity_price=0.1,
        other_monthly=50,
    )
    assert owned.fixed_monthly == pytest.approx(150)  # 3600 / 36 + 50
    curve = cost_curve(owned, 0.001, requests_per_s=1.0, max_requests=2 * 2_628_000, points=5)
    assert [p.units for p in curve] == [1, 1, 1, 2, 2]
    assert curve[0].local == pytest.approx(150)
    assert curve[2].local == pytest.approx(150 + 73)  # one unit busy all month: 1 kW × 730 h × $0.1
    assert curve[4].local == pytest.approx(300 + 146)
    assert curve[4].hosted == pytest.approx(2 * 2_628_000 * 0.001)
