"""Rate limits through the real gateway, driven by the official openai SDK: per-IP requests
and tokens, the 429 with Retry-After and x-ratelimit-* headers, recovery, X-Forwarded-For
believed only from trusted proxies, and limits shared by two and by three replicas through
Redis (1,000 concurrent requests against 100 a minute)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import aiohttp
import openai
import pytest

from tests.e2e.support import (
    MASTER_KEY,
    UPSTREAM_KEY,
    Gateway,
    assert_error,
    backend,
    deployment,
    free_port,
    run_gateway,
)
from tests.fakes import FakeUpstream

REDIS = ("127.0.0.1", 6379)
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def limited_config(upstream: FakeUpstream, limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "default_model": "chat",
        "backends": {"fake": backend(upstream.base_url, "env:FAKE_UPSTREAM_KEY")},
        "models": {"chat": deployment("fake", "gpt-4o-mini")},
        "limits": limits,
    }


def start(
    factory: pytest.TempPathFactory, upstream: FakeUpstream, limits: dict[str, Any]
) -> AbstractContextManager[Gateway]:
    workdir = factory.mktemp("limited-gateway")
    config = limited_config(upstream, limits)
    return run_gateway(workdir, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY})


@pytest.fixture(scope="module")
def behind_proxy(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """60 requests a minute (one a second), 3 at once, 10000 tokens a minute per client IP;
    the tests run as the trusted proxy 127.0.0.1, so each can be its own client."""
    limits = {
        "per_ip": {"requests_per_minute": 60, "burst": 3, "tokens_per_minute": 10000},
        "trusted_proxies": ["127.0.0.1/32"],
    }
    with start(tmp_path_factory, upstream_server, limits) as gw:
        yield gw


def client_for(gw: Gateway, ip: str) -> openai.OpenAI:
    return gw.client(default_headers={"X-Forwarded-For": ip})


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, **kwargs
    )


def test_every_response_carries_the_limits(behind_proxy: Gateway) -> None:
    with client_for(behind_proxy, "198.51.100.1") as client:
        raw = chat(client, max_tokens=100)
    assert raw.parse().choices[0].message.content == "echo: hi"
    headers = raw.headers
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    # 100 output tokens and the prompt's estimate were reserved before the call
    assert 9800 <= int(headers["x-ratelimit-remaining-tokens"]) <= 9900
    assert headers["x-ratelimit-reset-tokens"].endswith("s")


def test_burst_then_429_with_retry_after_then_recovery(behind_proxy: Gateway) -> None:
    with client_for(behind_proxy, "198.51.100.2") as client:
        remaining = [chat(client).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        with pytest.raises(openai.RateLimitError) as caught:
            chat(client)
        response = caught.value.response
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-limit-requests"] == "60"
        assert response.headers["x-request-id"]
        error = response.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert error["code"] == "rate_limit_exceeded"
        assert "client IP 198.51.100.2" in error["message"]
        time.sleep(float(response.headers["retry-after"]))
        assert chat(client).parse().choices[0].message.content == "echo: hi"


def test_the_sdk_retries_on_its_own_and_gets_through(behind_proxy: Gateway) -> None:
    with client_for(behind_proxy, "198.51.100.3") as client:
        for _ in range(3):
            chat(client)
        patient = client.with_options(max_retries=3)
        started = time.monotonic()
        raw = patient.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
        assert raw.parse().choices[0].message.content == "echo: hi"
        assert time.monotonic() - started >= 0.5  # it waited for the bucket


def test_tokens_are_settled_with_the_real_usage(behind_proxy: Gateway) -> None:
    with client_for(behind_proxy, "198.51.100.4") as client:
        first = chat(client, max_tokens=9000)  # reserves 9001 of 10000 (9000 + the prompt)
        assert int(first.headers["x-ratelimit-remaining-tokens"]) < 1100
        # "hi" -> "echo: hi" used 3 tokens: the other 8998 came back, so this fits too
        second = chat(client, max_tokens=9000)
        assert int(second.headers["x-ratelimit-remaining-tokens"]) < 1100
        assert second.parse().usage.total_tokens == 3


def test_max_tokens_above_the_token_limit_is_a_400(behind_proxy: Gateway) -> None:
    with (
        client_for(behind_proxy, "198.51.100.5") as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        chat(client, max_tokens=50_000)
    error = caught.value.response.json()["error"]
    assert error["param"] == "max_tokens"
    assert "lower max_tokens" in error["message"]


def test_streams_carry_the_headers_and_pay_their_usage(behind_proxy: Gateway) -> None:
    with client_for(behind_proxy, "198.51.100.6") as client:
        with client.chat.completions.with_streaming_response.create(
            model="chat",
            messages=MESSAGES,
            max_tokens=9000,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            assert response.headers["x-ratelimit-limit-requests"] == "60"
            assert int(response.headers["x-ratelimit-remaining-tokens"]) < 1100
            text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
        assert text == "echo: hi"
        after = chat(client, max_tokens=9000)  # fits only because the stream was settled
        assert after.parse().choices[0].message.content == "echo: hi"


def test_refusals_are_counted_in_metrics(behind_proxy: Gateway) -> None:
    with client_for(behind_proxy, "198.51.100.7") as client:
        for _ in range(3):
            chat(client)
        with pytest.raises(openai.RateLimitError):
            chat(client)
    metrics = behind_proxy.get("/metrics", auth=False).text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("turnout_rate_limited_total{") and 'kind="requests"' in line
    )
    assert 'scope="ip"' in line and float(line.split()[-1]) >= 1


def test_operations_endpoints_are_not_limited(behind_proxy: Gateway) -> None:
    for _ in range(10):
        resp = behind_proxy.get("/healthz", auth=False, headers={"X-Forwarded-For": "192.0.2.99"})
        assert resp.status == 200
        assert resp.headers.get("x-ratelimit-limit-requests") is None


def test_the_limit_is_checked_before_the_body_is_read(behind_proxy: Gateway) -> None:
    """A refused client's body is never read: the 429 comes back while it is still sending."""
    ip = "198.51.100.8"
    with client_for(behind_proxy, ip) as client:
        for _ in range(3):
            chat(client)
    host, port = behind_proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {MASTER_KEY}\r\nX-Forwarded-For: {ip}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 429 "), head[:200]
    assert b"retry-after: 1" in head.lower()


# ------------------------------------------------------- X-Forwarded-For not trusted


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    limits = {"per_ip": {"requests_per_minute": 60, "burst": 2}}
    with start(tmp_path_factory, upstream_server, limits) as gw:
        for i in range(2):
            with client_for(gw, f"203.0.113.{i}") as client:
                chat(client)
        with client_for(gw, "203.0.113.77") as client, pytest.raises(openai.RateLimitError):
            chat(client)  # a new address in the header does not make a new client
        resp = gw.post("/v1/chat/completions", {"model": "chat", "messages": MESSAGES})
        error = assert_error(resp, 429, type="rate_limit_error", code="rate_limit_exceeded")
        assert "client IP 127.0.0.1" in error["message"]


# ------------------------------------------------------------------- Redis


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


needs_redis = pytest.mark.skipif(
    not redis_reachable(), reason="Redis is not running on 127.0.0.1:6379; start redis-server"
)


@needs_redis
def test_two_replicas_share_one_limit_through_redis(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    limits = {
        "per_ip": {"requests_per_minute": 1, "burst": 3},
        "redis_url": "redis://127.0.0.1:6379/0",
        "key_prefix": f"turnout-e2e:{uuid.uuid4().hex}:",
    }
    with (
        start(tmp_path_factory, upstream_server, limits) as one,
        start(tmp_path_factory, upstream_server, limits) as two,
    ):
        with one.client() as a, two.client() as b:
            chat(a)
            chat(b)
            assert chat(a).headers["x-ratelimit-remaining-requests"] == "0"
            with pytest.raises(openai.RateLimitError) as caught:
                chat(b)
        assert int(caught.value.response.headers["retry-after"]) > 50


def test_redis_down_and_fail_closed_is_a_quick_503(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    limits = {
        "per_ip": {"requests_per_minute": 60},
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "on_redis_error": "closed",
    }
    with start(tmp_path_factory, upstream_server, limits) as gw:
        started = time.monotonic()
        resp = gw.post("/v1/chat/completions", {"model": "chat", "messages": MESSAGES})
        assert time.monotonic() - started < 1.0
        error = assert_error(resp, 503, type="api_error", code="rate_limiter_unavailable")
        assert "retry in 1 s" in error["message"]
        assert resp.headers.get("retry-after") == "1"
        for _ in range(5):
            gw.post("/v1/chat/completions", {"model": "chat", "messages": MESSAGES})
        assert gw.log().count("rate-limit store") == 1  # the outage is logged once


#: the issue's example: 100 requests a minute, 50 at once
PER_MINUTE, BURST = 100, 50
CONCURRENT = 1000


async def _fire(urls: list[str], total: int) -> tuple[list[int], float]:
    """``total`` chat requests at once, spread over ``urls``; their statuses and the seconds
    from the first sent to the last answered."""
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "chat", "messages": MESSAGES}
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(i: int) -> int:
            url = urls[i % len(urls)] + "/v1/chat/completions"
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status == 429:
                    assert int(resp.headers["retry-after"]) >= 1
                return resp.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(one(i) for i in range(total)))
        return list(statuses), time.monotonic() - started


@needs_redis
def test_three_replicas_hold_one_limit_under_1000_concurrent_requests(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Three gateway processes share one Redis; 1,000 requests arrive at once, spread over
    them, from one client IP, against 100 a minute with a burst of 50.

    GCRA allows, in any window of T seconds, at most ``burst + T / interval`` requests
    (interval: 60 / 100 = 0.6 s). The window here is from the first request sent to the last
    answer received, which contains every admission (each decided by one atomic script on
    Redis' own clock, whichever replica asked). Tolerance: one request, for a unit that comes
    back exactly at the window's edge; nothing for the replicas, which share the count
    exactly. Since the whole run takes well under 30 s, that bound is also under the 100 of
    the per-minute limit. At least the burst must get through: the limiter refuses no
    request it owes."""
    limits = {
        "per_ip": {"requests_per_minute": PER_MINUTE, "burst": BURST},
        "redis_url": "redis://127.0.0.1:6379/0",
        "key_prefix": f"turnout-e2e:{uuid.uuid4().hex}:",
        "on_redis_error": "closed",  # a Redis failure must show as errors, not as local counts
        # three gateways, the client and Redis on a 2-core CI machine, 1,000 requests at once:
        # each event loop lags by hundreds of ms, past the 0.25 s default (meant for a Redis
        # next to an unloaded gateway), and a timeout would refuse with 503 (fail closed)
        "redis_timeout": 5,
    }
    with (
        start(tmp_path_factory, upstream_server, limits) as one,
        start(tmp_path_factory, upstream_server, limits) as two,
        start(tmp_path_factory, upstream_server, limits) as three,
    ):
        statuses, elapsed = asyncio.run(_fire([one.url, two.url, three.url], CONCURRENT))
    accepted, refused = statuses.count(200), statuses.count(429)
    assert accepted + refused == CONCURRENT, sorted(set(statuses))
    interval = 60 / PER_MINUTE
    bound = BURST + elapsed / interval + 1
    assert elapsed < 30, f"the run took {elapsed:.1f} s; the bound below needs under 30 s"
    assert BURST <= accepted <= bound, (accepted, elapsed, bound)
    assert accepted <= PER_MINUTE
    assert len(upstream_server.requests_to("/v1/chat/completions")) == accepted
