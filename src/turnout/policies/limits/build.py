"""The rate-limit policy for a configuration (``limits:``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from turnout.policies.limits.failover import FailoverLimiter
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.memory import MemoryLimiter
from turnout.policies.limits.policy import RateLimitPolicy
from turnout.policies.limits.rules import Rule

if TYPE_CHECKING:
    from turnout.config import LimitsConfig, RateLimitRule
    from turnout.telemetry.metrics import Metrics

__all__ = ["build_policy", "rule_of"]


def rule_of(spec: RateLimitRule) -> Rule:
    return Rule(spec.requests_per_minute, spec.burst, spec.tokens_per_minute)


def build_policy(config: LimitsConfig, metrics: Metrics | None = None) -> RateLimitPolicy:
    """In memory, or in Redis behind the configured failover (redis-py is imported only then)."""
    limiter: Limiter = MemoryLimiter(max_keys=config.max_keys)
    if config.redis_url is not None:
        from turnout.policies.limits.redis_store import RedisLimiter

        store = RedisLimiter(
            config.redis_url.get_secret_value(),
            prefix=config.key_prefix,
            timeout=config.redis_timeout,
        )
        limiter = FailoverLimiter(
            store,
            mode=config.on_redis_error,
            fallback=MemoryLimiter(max_keys=config.max_keys),
            share=config.fallback_share,
            retry_interval=config.redis_retry_interval,
            on_error=metrics.limiter_errors.inc if metrics else lambda: None,
            where=store.where,
        )
    return RateLimitPolicy(
        limiter,
        per_ip=rule_of(config.per_ip) if config.per_ip else None,
        trusted_proxies=config.trusted_proxies,
        default_reservation=config.default_reservation,
        on_reject=metrics.count_rate_limited if metrics else lambda scope, kind: None,
    )
