"""The limits: section: validation messages, TURNOUT_REDIS_URL, the policy it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.config import Config, load_config
from turnout.exceptions import ConfigError
from turnout.policies.limits import FailoverLimiter, MemoryLimiter, Rule, build_policy


def load(tmp: Path, limits: Any, env: dict[str, str] | None = None) -> Config:
    path = tmp / "turnout.yaml"
    path.write_text(yaml.safe_dump({"limits": limits}))
    return load_config(path, env=env or {})


def error(tmp: Path, limits: Any, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp, limits, env)
    return caught.value.message


def test_off_by_default(isolated: Path) -> None:
    config = load(isolated, {})
    assert config.limits.per_ip is None
    policy = build_policy(config.limits)
    assert policy.per_ip is None and isinstance(policy.limiter, MemoryLimiter)


def test_a_per_ip_rule(isolated: Path) -> None:
    rule = {"requests_per_minute": 100, "burst": 50, "tokens_per_minute": 20000}
    config = load(isolated, {"per_ip": rule, "trusted_proxies": ["10.0.0.0/8", "::1"]})
    policy = build_policy(config.limits)
    assert policy.per_ip == Rule(100, 50, 20000)
    assert policy.per_ip.requests is not None and policy.per_ip.requests.burst == 50


def test_burst_defaults_to_the_rate(isolated: Path) -> None:
    config = load(isolated, {"per_ip": {"requests_per_minute": 30}})
    policy = build_policy(config.limits)
    assert policy.per_ip is not None and policy.per_ip.requests is not None
    assert policy.per_ip.requests.burst == 30


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"per_ip": {}}, "limits.per_ip: set requests_per_minute and/or tokens_per_minute"),
        ({"per_ip": {"burst": 5, "tokens_per_minute": 9}}, "burst needs requests_per_minute"),
        ({"per_ip": {"requests_per_minute": 0}}, "limits.per_ip.requests_per_minute"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "'10.0.0.0/33' is not an IP network"),
        ({"on_redis_error": "open"}, "limits.on_redis_error"),
        ({"fallback_share": 0}, "limits.fallback_share"),
        ({"per_ip": {"requests_per_minute": 5, "brust": 3}}, "did you mean 'burst'?"),
    ],
)
def test_mistakes_say_what_to_fix(isolated: Path, limits: Any, message: str) -> None:
    assert message in error(isolated, limits)


def test_a_wrong_redis_url_is_refused_without_showing_it(isolated: Path) -> None:
    text = error(isolated, {"redis_url": "http://user:hunter2@cache:6379"})
    assert "not a Redis URL" in text
    assert "hunter2" not in text


def test_turnout_redis_url_overrides_the_file(isolated: Path) -> None:
    env = {"TURNOUT_REDIS_URL": "redis://from-env:6379/1"}
    config = load(isolated, {"redis_url": "redis://from-file:6379/0"}, env)
    assert config.limits.redis_url is not None
    assert config.limits.redis_url.get_secret_value() == "redis://from-env:6379/1"
    assert "from-env" not in repr(config.limits)  # a secret: never printed


async def test_a_redis_url_builds_the_failover_limiter(isolated: Path) -> None:
    limits = {"redis_url": "redis://127.0.0.1:1/0", "on_redis_error": "closed"}
    policy = build_policy(load(isolated, limits).limits)
    assert isinstance(policy.limiter, FailoverLimiter)
    assert policy.limiter.mode == "closed"
    assert policy.limiter.where == "redis://127.0.0.1:1/0"
    await policy.aclose()
