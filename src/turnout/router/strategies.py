"""How the first deployment of a request is chosen; the others follow in configured order.

Each strategy picks among the deployments with a weight above 0 (weight 0 drains a
deployment: it serves only as a fallback).

- ``weighted``: in proportion to the weights — A/B tests, canaries, gray releases. With a
  sticky value (a key, a session, a user header) the draw is a hash of it, so the same caller
  keeps the same deployment while the weights stay the same; random otherwise.
- ``latency``: the lowest moving average of the time until the response starts; deployments
  not measured yet go first, so every deployment gets measured.
- ``least_busy``: the fewest requests in flight from this gateway process.
- ``cost``: the lowest token price (input plus output per million); local deployments cost
  nothing per token, unknown prices go last.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from turnout.pricing import PriceTable
from turnout.router.stats import StatsBoard

if TYPE_CHECKING:
    from turnout.router.router import Target

__all__ = ["STRATEGIES", "sticky_point"]

Strategy = Callable[[Sequence["Target"], StatsBoard, PriceTable, "float | None"], "Target"]


def sticky_point(route: str, value: str) -> float:
    """A point in [0, 1) that depends only on the route and the sticky value."""
    digest = hashlib.blake2b(f"{route}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def weighted(
    live: Sequence[Target], stats: StatsBoard, prices: PriceTable, point: float | None
) -> Target:
    total = sum(t.weight for t in live)
    mark = (random.random() if point is None else point) * total  # noqa: S311
    for target in live:
        mark -= target.weight
        if mark < 0:
            return target
    return live[-1]


def lowest_latency(
    live: Sequence[Target], stats: StatsBoard, prices: PriceTable, point: float | None
) -> Target:
    unmeasured = [t for t in live if stats.get(t.label).latency is None]
    if unmeasured:
        return random.choice(unmeasured)  # noqa: S311
    return min(live, key=lambda t: stats.get(t.label).latency or 0.0)


def least_busy(
    live: Sequence[Target], stats: StatsBoard, prices: PriceTable, point: float | None
) -> Target:
    fewest = min(stats.get(t.label).in_flight for t in live)
    idle = [t for t in live if stats.get(t.label).in_flight == fewest]
    return idle[0] if len(idle) == 1 else weighted(idle, stats, prices, None)


def cheapest(
    live: Sequence[Target], stats: StatsBoard, prices: PriceTable, point: float | None
) -> Target:
    return min(live, key=lambda t: _price(t, prices))


def _price(target: Target, prices: PriceTable) -> float:
    if target.backend.local:
        return 0.0
    price = prices.lookup(target.backend.name, target.model)
    return price.blended if price is not None else float("inf")


STRATEGIES: dict[str, Strategy] = {
    "weighted": weighted,
    "latency": lowest_latency,
    "least_busy": least_busy,
    "cost": cheapest,
}
