"""Automatic rollback: a canary deployment that does worse than the stable ones gets weight 0.

The comparison runs over a sliding window (``rollback.window`` seconds) of the tries the
router observed, once both sides have ``min_requests``: the canary is rolled back when its
error rate exceeds the stable deployments' by more than ``max_error_rate_increase``, or its
p95 latency (time until the response starts) exceeds theirs times ``max_latency_ratio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from turnout.config import RollbackConfig
from turnout.router.stats import StatsBoard

if TYPE_CHECKING:
    from turnout.router.router import Target

__all__ = ["rollback_reason"]


def rollback_reason(
    canary: Target, stable: Sequence[Target], stats: StatsBoard, rules: RollbackConfig
) -> str | None:
    """Why ``canary`` should be rolled back, or None while it holds up (or data is short)."""
    base = stats.window([t.label for t in stable], rules.window)
    mine = stats.window([canary.label], rules.window)
    if base.requests < rules.min_requests or mine.requests < rules.min_requests:
        return None
    if mine.error_rate - base.error_rate > rules.max_error_rate_increase:
        return (
            f"error rate {mine.error_rate:.1%} against {base.error_rate:.1%} for the stable "
            f"deployments over {mine.requests} and {base.requests} requests"
        )
    if base.p95 > 0 and mine.p95 > base.p95 * rules.max_latency_ratio:
        return (
            f"p95 latency {mine.p95 * 1000:.0f} ms against {base.p95 * 1000:.0f} ms for the "
            f"stable deployments (limit {rules.max_latency_ratio:g}x)"
        )
    return None
