"""Rate limits: requests per minute with a burst, and tokens per minute, per subject.

Modules, one concept each:

- :mod:`~.rules`: :class:`Rule` (what an operator configures), :class:`Quota`,
  :class:`Decision`, :class:`Reservation`;
- :mod:`~.gcra`: the algorithm, as pure arithmetic;
- :mod:`~.limiter`: the :class:`Limiter` interface; :mod:`~.memory` and :mod:`~.redis_store`
  implement it, :mod:`~.failover` decides what happens when Redis fails;
- :mod:`~.client_ip`: the client's address (``X-Forwarded-For`` from trusted proxies only);
- :mod:`~.tokens`: how many tokens a request reserves; :mod:`~.headers`: ``x-ratelimit-*``;
- :mod:`~.policy`: :class:`RateLimitPolicy`, what the server and the services call;
  :mod:`~.build`: the policy for a configuration.
"""

from turnout.policies.limits.build import build_policy
from turnout.policies.limits.failover import FailoverLimiter
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.memory import MemoryLimiter
from turnout.policies.limits.policy import Admission, RateLimitPolicy, Subject
from turnout.policies.limits.rules import Decision, Quota, Reservation, Rule

__all__ = [
    "Admission",
    "Decision",
    "FailoverLimiter",
    "Limiter",
    "MemoryLimiter",
    "Quota",
    "RateLimitPolicy",
    "Reservation",
    "Rule",
    "Subject",
    "build_policy",
]
