"""The policy: admitting requests per subject, reserving and settling tokens, the headers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.limits.conftest import Clock
from turnout.backends.base import RequestContext, Usage
from turnout.exceptions import InvalidRequest, RateLimited, UpstreamUnavailable
from turnout.policies.limits import Admission, MemoryLimiter, RateLimitPolicy, Rule
from turnout.policies.limits.headers import duration
from turnout.policies.limits.tokens import estimate_reservation

RULE = Rule(requests_per_minute=60, burst=2, tokens_per_minute=1000)
PEER = {"client": ("203.0.113.7", 40000), "headers": []}


@pytest.fixture
def rejects() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def policy(clock: Clock, rejects: list[tuple[str, str]]) -> RateLimitPolicy:
    return RateLimitPolicy(
        MemoryLimiter(clock=clock),
        per_ip=RULE,
        default_reservation=100,
        on_reject=lambda scope, kind: rejects.append((scope, kind)),
    )


async def admitted(policy: RateLimitPolicy) -> RequestContext:
    ctx = RequestContext("req", deadline=0.0)
    ctx.admission = Admission()
    subject = policy.ip_subject(PEER)
    assert subject is not None
    await policy.admit(ctx.admission, subject)
    return ctx


def for_tokens(policy: RateLimitPolicy) -> RequestContext:
    """A request whose IP subject is known, without spending one of its requests."""
    ctx = RequestContext("req", deadline=0.0)
    ctx.admission = Admission()
    subject = policy.ip_subject(PEER)
    assert subject is not None
    ctx.admission.subjects.append(subject)
    return ctx


def chat(max_tokens: int | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": ""}], **extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def headers(ctx: RequestContext) -> dict[str, str]:
    assert ctx.admission is not None
    return {k.decode(): v.decode() for k, v in ctx.admission.headers()}


async def test_requests_beyond_the_burst_are_refused(
    policy: RateLimitPolicy, rejects: list[tuple[str, str]]
) -> None:
    first = await admitted(policy)
    assert headers(first) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1s",
    }
    await admitted(policy)
    with pytest.raises(RateLimited) as caught:
        await admitted(policy)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert "client IP 203.0.113.7" in caught.value.message
    assert "Try again in 1 s" in caught.value.message
    assert rejects == [("ip", "requests")]


async def test_a_refusal_still_carries_the_headers(policy: RateLimitPolicy) -> None:
    for _ in range(2):
        await admitted(policy)
    admission = Admission()
    subject = policy.ip_subject(PEER)
    assert subject is not None
    with pytest.raises(RateLimited):
        await policy.admit(admission, subject)
    assert admission.requests is not None and admission.requests.remaining == 0
    assert (b"x-ratelimit-remaining-requests", b"0") in admission.headers()


async def test_a_refusal_by_one_subject_gives_back_the_others(
    policy: RateLimitPolicy, clock: Clock
) -> None:
    tight = policy.subject("key", "k1", "API key k1", Rule(requests_per_minute=1, burst=1))
    ip = policy.ip_subject(PEER)
    assert ip is not None
    admission = Admission()
    await policy.admit(admission, ip)
    await policy.admit(admission, tight)
    for _ in range(3):  # the key is out; the IP must not pay for the refused requests
        admission = Admission()
        await policy.admit(admission, ip)
        with pytest.raises(RateLimited):
            await policy.admit(admission, tight)
    assert ip.requests is not None
    assert (await policy.limiter.spend(ip.key + ":r", ip.requests, 0)).remaining == 1


async def test_tokens_are_reserved_and_the_unused_part_comes_back(
    policy: RateLimitPolicy,
) -> None:
    ctx = for_tokens(policy)
    await policy.reserve(ctx, chat(max_tokens=600))
    assert headers(ctx) == {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "36s",
    }
    other = for_tokens(policy)
    with pytest.raises(RateLimited) as caught:
        await policy.reserve(other, chat(max_tokens=600))
    assert caught.value.retry_after == pytest.approx(200 * 0.06)
    policy.settle(ctx, Usage(prompt_tokens=5, completion_tokens=45))
    assert ctx.admission is not None and not ctx.admission.reservations
    third = for_tokens(policy)
    await policy.reserve(third, chat(max_tokens=600))
    assert headers(third)["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 600)


async def test_max_tokens_above_the_limit_is_a_client_error(policy: RateLimitPolicy) -> None:
    ctx = for_tokens(policy)
    with pytest.raises(InvalidRequest) as caught:
        await policy.reserve(ctx, chat(max_tokens=2000))
    assert caught.value.param == "max_tokens"
    assert "lower max_tokens" in caught.value.message
    with pytest.raises(InvalidRequest):
        await policy.reserve(ctx, chat(max_tokens=400, n=3))


async def test_without_max_tokens_the_default_is_reserved_and_capped(
    policy: RateLimitPolicy, clock: Clock
) -> None:
    ctx = for_tokens(policy)
    await policy.reserve(ctx, chat())
    assert headers(ctx)["x-ratelimit-remaining-tokens"] == "900"
    policy.settle(ctx, Usage(0, 0))
    ctx = for_tokens(policy)
    await policy.reserve(ctx, chat(n=50))  # 5000 by default: no more than the whole bucket
    assert headers(ctx)["x-ratelimit-remaining-tokens"] == "0"


async def test_a_failure_before_any_output_costs_nothing(policy: RateLimitPolicy) -> None:
    ctx = for_tokens(policy)
    await policy.reserve(ctx, chat(max_tokens=1000))
    policy.settle(ctx, None, UpstreamUnavailable("down"))
    again = for_tokens(policy)
    await policy.reserve(again, chat(max_tokens=1000))  # the whole bucket is back


async def test_a_cancelled_request_without_usage_keeps_its_reservation(
    policy: RateLimitPolicy,
) -> None:
    ctx = for_tokens(policy)
    await policy.reserve(ctx, chat(max_tokens=1000))
    policy.settle(ctx, None, GeneratorExit(), delivered=True)
    again = for_tokens(policy)
    with pytest.raises(RateLimited):
        await policy.reserve(again, chat(max_tokens=1))


async def test_a_stream_cut_short_pays_its_reported_usage(policy: RateLimitPolicy) -> None:
    ctx = for_tokens(policy)
    await policy.reserve(ctx, chat(max_tokens=1000))
    policy.settle(ctx, Usage(10, 20), UpstreamUnavailable("cut"), delivered=True)
    again = for_tokens(policy)
    await policy.reserve(again, chat(max_tokens=970))
    assert headers(again)["x-ratelimit-remaining-tokens"] == "0"


async def test_no_admission_means_no_limits(policy: RateLimitPolicy) -> None:
    ctx = RequestContext("lib", deadline=0.0)  # library mode: nobody admitted it
    await policy.reserve(ctx, chat(max_tokens=10**6))
    policy.settle(ctx, Usage(1, 1))


def test_no_per_ip_rule_means_no_ip_subject(clock: Clock) -> None:
    assert RateLimitPolicy(MemoryLimiter(clock=clock)).ip_subject(PEER) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (chat(max_tokens=10), (10, 10)),
        ({"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 5}, (15, 5)),
        ({"messages": [], "max_completion_tokens": 7, "max_tokens": 99, "n": 2}, (14, 14)),
        ({"messages": [{"content": [{"type": "text", "text": "abcdefgh"}]}]}, (102, None)),
        ({"prompt": ["abcd", "efgh"], "max_tokens": 1}, (3, 1)),
        ({"input": "x" * 9}, (3, None)),  # embeddings: no output
        ({"input": [1, 2, 3]}, (3, None)),  # token ids
        ({"messages": [], "max_tokens": True}, (100, None)),  # not a count: the default
    ],
)
def test_estimate_reservation(body: dict[str, Any], expected: tuple[int, int | None]) -> None:
    assert estimate_reservation(body, 100) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.6, "600ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9991, "1m0s"),
        (360, "6m0s"),
        (3725.25, "1h2m5.25s"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
