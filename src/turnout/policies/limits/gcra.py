"""The generic cell rate algorithm (GCRA), as pure arithmetic on one stored number.

The state of a subject is its *theoretical arrival time* (TAT): the moment at which its
bucket would be full again. Spending ``cost`` units moves the TAT ``cost * interval`` later;
the spend is allowed when the new TAT is at most ``burst * interval`` ahead of now. A TAT in
the past means a full bucket, so a subject whose TAT has passed can be forgotten.

``charge`` moves the TAT without asking (a settlement: negative to refund, positive to charge
usage beyond a reservation, which may push the subject into debt). The Redis scripts in
:mod:`turnout.policies.limits.redis_store` compute exactly the same in Lua.
"""

from __future__ import annotations

import math

from turnout.policies.limits.rules import Decision, Quota

__all__ = ["EPSILON", "charge", "spend"]

#: seconds of slack in every comparison, absorbing float rounding of summed intervals
EPSILON = 1e-6


def spend(tat: float, now: float, quota: Quota, cost: int) -> tuple[float, Decision]:
    """Try to spend ``cost`` units at ``now``: the new TAT (unchanged if refused) and the
    decision. A cost of 0 asks whether the subject is in debt."""
    interval = quota.interval
    start = max(tat, now)
    new = start + cost * interval
    allow_at = new - quota.burst * interval
    if allow_at - now > EPSILON:
        return tat, Decision(False, quota.limit, 0, start - now, allow_at - now)
    return new, Decision(True, quota.limit, _remaining(now - allow_at, interval), new - now)


def charge(tat: float, now: float, quota: Quota, delta: int) -> float:
    """The TAT after adding ``delta`` units unconditionally (negative: a refund)."""
    return max(tat, now) + delta * quota.interval


def _remaining(slack: float, interval: float) -> int:
    return max(0, math.floor((slack + EPSILON) / interval))
