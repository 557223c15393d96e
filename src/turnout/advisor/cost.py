"""The cost model: a hosted API's token prices against local hardware, as pure functions.

Units and conventions (docs/compare.md works through examples):

- money in US dollars; a month is :data:`HOURS_PER_MONTH` = 730 hours (8,760 / 12);
- volumes are counted in **requests of the measured workload**: two models count the same
  text in different tokens, but a request is a request. Token figures are derived from a
  target's own token counts per request where a report wants them;
- **hosted**: a request costs its prompt tokens × the input price plus its completion tokens
  × the output price (prices per million tokens, :class:`turnout.pricing.Price`);
- **local**: the hardware costs a fixed amount per month — a cloud GPU's hourly price for
  every hour of the month (billed whether busy or not), or the purchase price spread evenly
  over its lifetime — plus other monthly costs (hosting, support), plus, for owned hardware,
  the energy it draws while busy (power × busy hours × electricity price). One unit serves
  at most the measured throughput (requests per second), so a month's volume keeps it busy
  ``volume / capacity`` of the time (its *utilization*).

The break-even volume is where local's monthly cost equals the API's: ``fixed / (hosted
cost per request - energy per request)``. Beyond one unit's capacity every further unit adds
its fixed cost again, so a break-even volume above one unit's capacity is never reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "HOURS_PER_MONTH",
    "SECONDS_PER_MONTH",
    "BreakEven",
    "CurvePoint",
    "Hardware",
    "LocalEstimate",
    "LocalPlan",
    "break_even",
    "capacity_per_month",
    "cost_curve",
    "local_at_utilization",
    "local_monthly_cost",
    "per_million",
    "plan_for_volume",
]

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0


@dataclass(frozen=True, slots=True)
class Hardware:
    """One unit of local hardware: a cloud GPU by the hour, or hardware bought outright."""

    name: str
    #: US dollars per hour, billed for every hour of the month (a rented GPU)
    hourly_price: float | None = None
    #: US dollars paid once (owned hardware), spread over ``lifetime_months``
    purchase_price: float | None = None
    lifetime_months: float = 36.0
    #: kilowatts drawn while serving (owned hardware; a cloud price includes power)
    power_kw: float = 0.0
    #: US dollars per kWh
    electricity_price: float = 0.0
    #: US dollars per month on top: hosting, rack space, support, operations time
    other_monthly: float = 0.0
    #: where the prices come from, and when they were read
    source: str = ""
    as_of: str = ""

    @property
    def cloud(self) -> bool:
        return self.hourly_price is not None

    @property
    def fixed_monthly(self) -> float:
        """What one unit costs per month whether it serves anything or not."""
        if self.hourly_price is not None:
            return self.hourly_price * HOURS_PER_MONTH + self.other_monthly
        return (self.purchase_price or 0.0) / self.lifetime_months + self.other_monthly

    @property
    def energy_monthly(self) -> float:
        """Energy for a month of serving without a pause (zero for a cloud price)."""
        if self.cloud:
            return 0.0
        return self.power_kw * HOURS_PER_MONTH * self.electricity_price


def capacity_per_month(requests_per_s: float) -> float:
    """Requests one unit serves in a month busy all the time at the measured throughput."""
    return max(requests_per_s, 0.0) * SECONDS_PER_MONTH


def local_monthly_cost(hardware: Hardware, utilization: float) -> float:
    """One unit's monthly cost when busy ``utilization`` (0..1) of the time."""
    return hardware.fixed_monthly + hardware.energy_monthly * utilization


def per_million(cost_per_request: float, tokens_per_request: float) -> float | None:
    """Dollars per million tokens, from a cost and the tokens of one request."""
    if tokens_per_request <= 0:
        return None
    return cost_per_request / tokens_per_request * 1e6


@dataclass(frozen=True, slots=True)
class LocalEstimate:
    """One unit at an assumed utilization."""

    utilization: float
    requests_per_month: float
    monthly_cost: float
    cost_per_request: float


def local_at_utilization(
    hardware: Hardware, requests_per_s: float, utilization: float
) -> LocalEstimate | None:
    """What a local request costs when the unit is busy ``utilization`` of the month at the
    measured throughput; None without a throughput or a utilization."""
    volume = capacity_per_month(requests_per_s) * utilization
    if volume <= 0:
        return None
    monthly = local_monthly_cost(hardware, utilization)
    return LocalEstimate(utilization, volume, monthly, monthly / volume)


@dataclass(frozen=True, slots=True)
class BreakEven:
    """The monthly volume at which one unit costs what the API costs for the same requests.

    ``requests_per_month`` is None when no volume is (the API costs less per request than the
    local energy alone, or nothing was measured); ``reachable`` is False when the volume is
    beyond what one unit can serve (``utilization`` > 1), so local never pays off."""

    requests_per_month: float | None
    utilization: float | None
    reachable: bool
    reason: str = ""


def break_even(hardware: Hardware, hosted_per_request: float, requests_per_s: float) -> BreakEven:
    capacity = capacity_per_month(requests_per_s)
    if capacity <= 0:
        return BreakEven(None, None, False, "the local target completed no requests")
    if hosted_per_request <= 0:
        return BreakEven(None, None, False, "the hosted requests cost nothing at these prices")
    margin = hosted_per_request - hardware.energy_monthly / capacity
    if margin <= 0:
        return BreakEven(
            None, None, False, "a hosted request costs less than the energy of a local one"
        )
    volume = hardware.fixed_monthly / margin
    utilization = volume / capacity
    if utilization > 1:
        return BreakEven(
            volume,
            utilization,
            False,
            "one unit cannot serve that many requests at the measured throughput",
        )
    return BreakEven(volume, utilization, True)


@dataclass(frozen=True, slots=True)
class LocalPlan:
    """Enough units for a monthly volume, each busy at most ``max_utilization``."""

    units: int
    utilization: float
    monthly_cost: float


def plan_for_volume(
    hardware: Hardware,
    requests_per_s: float,
    requests_per_month: float,
    max_utilization: float = 1.0,
) -> LocalPlan | None:
    """The units a volume needs, their mean utilization and their monthly cost (at least one
    unit, even for no traffic); None without a measured throughput."""
    capacity = capacity_per_month(requests_per_s)
    if capacity <= 0 or max_utilization <= 0:
        return None
    volume = max(requests_per_month, 0.0)
    units = max(1, math.ceil(volume / (capacity * max_utilization) - 1e-9))
    busy = volume / capacity  # unit-months of serving
    cost = units * hardware.fixed_monthly + hardware.energy_monthly * busy
    return LocalPlan(units, busy / units, cost)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    requests_per_month: float
    hosted: float
    local: float
    units: int


def cost_curve(
    hardware: Hardware,
    hosted_per_request: float,
    requests_per_s: float,
    max_requests: float,
    points: int = 41,
) -> list[CurvePoint]:
    """Monthly cost of both against volume, from zero to ``max_requests``: the API's grows
    linearly, local steps up by a unit's fixed cost each time one unit's capacity is full."""
    out: list[CurvePoint] = []
    for i in range(points):
        volume = max_requests * i / (points - 1)
        plan = plan_for_volume(hardware, requests_per_s, volume)
        if plan is None:
            return []
        out.append(CurvePoint(volume, volume * hosted_per_request, plan.monthly_cost, plan.units))
    return out
