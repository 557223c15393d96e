"""Hybrid routing through the real gateway: fallbacks in order, retries that honour
Retry-After, no retry after the first byte, per-try timeouts, ejection and recovery through
health checks, the weighted split over 10,000 requests, sticky callers, runtime weights, canary
rollback, and privacy routing (local, redact, block) — against fake upstreams speaking
OpenAI's wire format and the local demo model."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.e2e.support import MASTER_KEY, Gateway, assert_error, backend, run_gateway
from tests.fakes import FakeUpstream
from tests.fakes.upstream import (
    ErrorStatus,
    Hang,
    ResetMidStream,
    SlowFirstByte,
    rate_limited,
)

KEY = "sk-fake-routing"
EMAIL = "jane.doe@example.org"


def _deps(*deps: tuple[str, str, float] | dict[str, Any], **extra: Any) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for dep in deps:
        if isinstance(dep, tuple):
            dep = {"backend": dep[0], "model": dep[1], "weight": dep[2]}
        out.append(dep)
    return {"deployments": out, **extra}


class Upstreams:
    def __init__(self) -> None:
        self.primary = FakeUpstream()
        self.secondary = FakeUpstream()
        self.flaky = FakeUpstream()
        self.canary = FakeUpstream()
        self.all = (self.primary, self.secondary, self.flaky, self.canary)

    def reset(self) -> None:
        for upstream in self.all:
            upstream.reset()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    for upstream in ups.all:
        upstream.start()
    try:
        yield ups
    finally:
        for upstream in ups.all:
            upstream.stop()


def _config(ups: Upstreams) -> dict[str, Any]:
    return {
        "backends": {
            "p": backend(ups.primary.base_url, KEY),
            "s": backend(ups.secondary.base_url, KEY),
            "flaky": backend(ups.flaky.base_url, KEY),
            "canary": backend(ups.canary.base_url, KEY),
        },
        "local": {"demo": True},
        "router": {
            "retries": {"backoff": 0.05, "max_backoff": 0.2, "try_timeout": 1.5},
            "breaker": {"failures": 3, "ejection": 60, "health_interval": 0.2},
        },
        "models": {
            "fb": _deps(("p", "gpt-4o-mini", 1), ("s", "gpt-4o-mini", 0)),
            "retry": _deps(("p", "gpt-4o", 1)),
            "eject": _deps(("flaky", "gpt-4o-mini", 1), ("s", "gpt-4o", 1)),
            "split": _deps(("s", "gpt-4o-mini", 1), ("s", "gpt-4o", 3)),
            "sticky": _deps(
                ("s", "gpt-4o-mini", 1), ("s", "gpt-4o", 1), sticky=["header:x-user-id"]
            ),
            "canaried": _deps(
                ("p", "gpt-4o-mini", 1),
                {"backend": "canary", "model": "gpt-4o-mini", "weight": 1, "canary": True},
                rollback={"min_requests": 5, "max_error_rate_increase": 0.2},
            ),
            "private": _deps(("p", "gpt-4o-mini", 1), ("local", "local-demo", 0), privacy="local"),
            "private-hosted": _deps(("p", "gpt-4o-mini", 1), privacy="local"),
            "redacted": _deps(("p", "gpt-4o-mini", 1), privacy="redact"),
            "blocked": _deps(("p", "gpt-4o-mini", 1), privacy="block"),
        },
    }


@pytest.fixture(scope="module")
def gw(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("routing"), config=_config(upstreams)) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(upstreams: Upstreams) -> Iterator[None]:
    upstreams.reset()
    yield
    upstreams.reset()


def chat(gw: Gateway, model: str, text: str = "hello", **headers: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
    return gw.post("/v1/chat/completions", body, headers=headers or None)


def chats(up: FakeUpstream) -> list[Any]:
    return up.requests_to("/v1/chat/completions")


# ----------------------------------------------------------------------------- fallback


def test_fallback_goes_to_the_next_deployment_in_order(gw: Gateway, upstreams: Upstreams) -> None:
    upstreams.primary.enqueue(ErrorStatus(503), path="/v1/chat/completions")
    resp = chat(gw, "fb")
    assert resp.status == 200, resp.text
    assert resp.headers["x-turnout-deployment"] == "s/gpt-4o-mini"
    assert resp.headers["x-turnout-attempts"] == "2"
    first, second = chats(upstreams.primary), chats(upstreams.secondary)
    assert len(first) == len(second) == 1
    assert first[0].received <= second[0].received


def test_a_retry_waits_for_retry_after(gw: Gateway, upstreams: Upstreams) -> None:
    upstreams.primary.enqueue(rate_limited(1), path="/v1/chat/completions")
    resp = chat(gw, "retry")
    assert resp.status == 200, resp.text
    assert resp.headers["x-turnout-attempts"] == "2"
    tries = chats(upstreams.primary)
    assert len(tries) == 2
    assert tries[1].received - tries[0].received >= 1.0  # Retry-After: 1


def test_an_error_mid_stream_is_not_retried(gw: Gateway, upstreams: Upstreams) -> None:
    upstreams.primary.enqueue(ResetMidStream(after_chunks=2), path="/v1/chat/completions")
    with gw.client() as client:
        stream = client.chat.completions.create(
            model="fb",
            messages=[{"role": "user", "content": "one two three four five"}],
            stream=True,
        )
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
    assert len(chats(upstreams.primary)) == 1
    assert chats(upstreams.secondary) == []


def test_a_slow_first_byte_moves_on_after_the_try_timeout(
    gw: Gateway, upstreams: Upstreams
) -> None:
    upstreams.primary.enqueue(SlowFirstByte(4), path="/v1/chat/completions")
    started = time.monotonic()
    resp = chat(gw, "fb")
    assert resp.status == 200, resp.text
    assert resp.headers["x-turnout-deployment"] == "s/gpt-4o-mini"
    assert time.monotonic() - started < 4  # did not wait for the slow one


def test_the_deadline_covers_every_try_and_the_budget_caps_retries(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    primary = upstreams.primary
    config = {
        # read > total: a hang runs into the request's deadline (1 s, the longest total)
        "backends": {"p": backend(primary.base_url, KEY, read=5, total=1.0)},
        "router": {
            "retries": {
                "backoff": 0,
                "max_retries": 5,
                "try_timeout": 0.4,
                "budget_ratio": 0.1,
                "budget_min_per_second": 0.2,
            },
            "breaker": {"failures": 1000},
        },
        "models": {"only": _deps(("p", "gpt-4o-mini", 1))},
    }
    with run_gateway(tmp_path, config=config) as gateway:
        with primary.failing(Hang()):
            started = time.monotonic()
            assert_error(chat(gateway, "only"), 504, code="upstream_timeout")
            assert time.monotonic() - started < 2.5
        hung = len(chats(primary))
        assert 2 <= hung <= 3  # tries every 0.4 s until the 1 s deadline, not 6 tries
        with primary.failing(ErrorStatus(503)):
            for _ in range(100):
                assert_error(chat(gateway, "only"), 503)
        tries = len(chats(primary)) - hung
        # 100 first tries; retries at most 10% of the requests + 0.2/s over the 10 s window
        assert 100 < tries <= 100 + 13, tries
        metrics = gateway.get("/metrics").text
        exhausted = re.search(r"^turnout_router_retry_budget_exhausted_total (\S+)$", metrics, re.M)
        assert exhausted is not None and float(exhausted.group(1)) > 50


# ---------------------------------------------------------------------- ejection, health


def _deployment(gw: Gateway, model: str, label: str) -> dict[str, Any]:
    resp = gw.get(f"/admin/routes/{model}")
    assert resp.status == 200, resp.text
    return next(d for d in resp.json()["deployments"] if d["deployment"] == label)


def test_an_ejected_deployment_gets_no_traffic_until_it_recovers(
    gw: Gateway, upstreams: Upstreams
) -> None:
    flaky = upstreams.flaky
    with flaky.failing(ErrorStatus(500), path="*"):  # chat and health checks (GET /models)
        for _ in range(40):
            assert chat(gw, "eject").status == 200  # the other deployment serves
            if _deployment(gw, "eject", "flaky/gpt-4o-mini")["ejected_for"] > 0:
                break
        assert len(chats(flaky)) == 3  # breaker.failures
        for _ in range(20):
            resp = chat(gw, "eject")
            assert resp.headers["x-turnout-deployment"] == "s/gpt-4o"
            assert resp.headers["x-turnout-attempts"] == "1"  # not even tried
        assert len(chats(flaky)) == 3
        time.sleep(0.5)  # health checks run, and fail
        assert _deployment(gw, "eject", "flaky/gpt-4o-mini")["ejected_for"] > 0
    deadline = time.monotonic() + 5
    while _deployment(gw, "eject", "flaky/gpt-4o-mini")["ejected_for"] > 0:
        assert time.monotonic() < deadline, "the health check did not bring it back"
        time.sleep(0.05)
    served = Counter(chat(gw, "eject").headers["x-turnout-deployment"] for _ in range(40))
    assert served["flaky/gpt-4o-mini"] > 0, served
    events = [e["event"] for e in gw.get("/admin/routes").json()["events"]]
    assert "deployment_ejected" in events and "deployment_restored" in events
    assert (
        'turnout_deployment_ejections_total{deployment="flaky/gpt-4o-mini"}'
        in gw.get("/metrics").text
    )


# ----------------------------------------------------------------------- weights, sticky

SPLIT_REQUESTS = 10_000
#: chi-square, 1 degree of freedom, P(X > x) = 1e-6
CHI2_DF1_P_1E6 = 23.93


async def _split(gw: Gateway, n: int, concurrency: int = 32) -> Counter[str]:
    body = {"model": "split", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    counts: Counter[str] = Counter()
    todo = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(gw.url, connector=connector, headers=headers) as session:

        async def worker() -> None:
            for _ in todo:
                async with session.post("/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    counts[resp.headers["x-turnout-deployment"]] += 1
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def test_ten_thousand_decisions_follow_the_weights(gw: Gateway, upstreams: Upstreams) -> None:
    counts = asyncio.run(_split(gw, SPLIT_REQUESTS))
    assert sum(counts.values()) == SPLIT_REQUESTS
    expected = {"s/gpt-4o-mini": 0.25 * SPLIT_REQUESTS, "s/gpt-4o": 0.75 * SPLIT_REQUESTS}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < CHI2_DF1_P_1E6, (counts, chi2)
    # the upstream saw the same split: the header tells the truth
    models = Counter(r.json["model"] for r in chats(upstreams.secondary))
    assert models == {"gpt-4o-mini": counts["s/gpt-4o-mini"], "gpt-4o": counts["s/gpt-4o"]}


def test_sticky_callers_keep_their_variant(gw: Gateway) -> None:
    seen: dict[str, set[str]] = {}
    for user in range(20):
        for _ in range(4):
            resp = chat(gw, "sticky", **{"x-user-id": f"user-{user}"})
            seen.setdefault(f"user-{user}", set()).add(resp.headers["x-turnout-deployment"])
    assert all(len(variants) == 1 for variants in seen.values()), seen
    assert {v for variants in seen.values() for v in variants} == {"s/gpt-4o-mini", "s/gpt-4o"}


def test_admins_change_weights_at_runtime(gw: Gateway) -> None:
    resp = gw.request_json("PATCH", "/admin/routes/split", {"weights": {"s/gpt-4o": 0}})
    assert resp.status == 200, resp.text
    weights = {d["deployment"]: d["weight"] for d in resp.json()["deployments"]}
    assert weights == {"s/gpt-4o-mini": 1.0, "s/gpt-4o": 0.0}
    served = {chat(gw, "split").headers["x-turnout-deployment"] for _ in range(30)}
    assert served == {"s/gpt-4o-mini"}
    assert "weights of split changed" in gw.log()
    assert_error(
        gw.request_json("PATCH", "/admin/routes/split", {"weights": {"s/nope": 1}}),
        400,
        param="weights",
    )
    assert_error(gw.request_json("PATCH", "/admin/routes/split", {"weights": 3}), 400)
    assert_error(gw.request_json("PATCH", "/admin/routes/nope", {"weights": {"a": 1}}), 404)
    assert gw.request_json("PATCH", "/admin/routes/split", {}, auth=False).status == 401
    restored = gw.request_json("PATCH", "/admin/routes/split", {"weights": {"s/gpt-4o": 3}})
    assert restored.status == 200
    audit = gw.get("/admin/audit?action=route.weights&limit=5").json()["data"]
    assert [(e["actor"], e["target"], e["outcome"]) for e in audit[:5]] == [
        ("master", "split", "ok"),
        ("master", "nope", "error"),
        ("master", "split", "error"),
        ("master", "split", "error"),
        ("master", "split", "ok"),
    ]


def test_a_failing_canary_is_rolled_back(gw: Gateway, upstreams: Upstreams) -> None:
    deadline = time.monotonic() + 15  # judged at most once a second
    with upstreams.canary.failing(ErrorStatus(500)):
        while _deployment(gw, "canaried", "canary/gpt-4o-mini")["weight"] > 0:
            assert time.monotonic() < deadline, "the canary was not rolled back"
            assert chat(gw, "canaried").status == 200  # the stable deployment takes over
    events = gw.get("/admin/routes").json()["events"]
    rollback = next(e for e in events if e["event"] == "canary_rolled_back")
    assert rollback["deployment"] == "canary/gpt-4o-mini" and "error rate" in rollback["reason"]
    before = len(chats(upstreams.canary))
    for _ in range(20):
        assert chat(gw, "canaried").headers["x-turnout-deployment"] == "p/gpt-4o-mini"
    assert len(chats(upstreams.canary)) == before
    assert "turnout_canary_rollbacks_total" in gw.get("/metrics").text

    def audited() -> list[dict[str, Any]]:
        entries = gw.get("/admin/audit?action=route.rollback").json()["data"]
        return [e for e in entries if e["target"] == "canaried"]

    deadline = time.monotonic() + 5
    while not audited():
        assert time.monotonic() < deadline, "the rollback was not audited"
        time.sleep(0.05)
    entry = audited()[0]
    assert (entry["actor"], entry["outcome"]) == ("system", "ok")
    assert entry["details"]["deployment"] == "canary/gpt-4o-mini"


# ------------------------------------------------------------------------------ privacy


def test_sensitive_requests_stay_local(gw: Gateway, upstreams: Upstreams) -> None:
    resp = chat(gw, "private", f"mail {EMAIL} the report")
    assert resp.status == 200, resp.text
    assert resp.headers["x-turnout-deployment"] == "local/local-demo"
    assert resp.headers["x-turnout-privacy"] == "local; categories=email"
    assert chats(upstreams.primary) == []
    plain = chat(gw, "private", "what is the capital of France?")
    assert plain.headers["x-turnout-deployment"] == "p/gpt-4o-mini"
    assert "x-turnout-privacy" not in plain.headers


def test_sensitive_requests_without_a_local_deployment_are_refused(
    gw: Gateway, upstreams: Upstreams
) -> None:
    error = assert_error(
        chat(gw, "private-hosted", f"my card is 4111 1111 1111 1111, mail {EMAIL}"),
        503,
        code="no_local_deployment",
    )
    assert "4111" not in error["message"] and EMAIL not in error["message"]
    assert chats(upstreams.primary) == []


def test_redact_replaces_findings_before_the_request_leaves(
    gw: Gateway, upstreams: Upstreams
) -> None:
    resp = chat(gw, "redacted", f"write to {EMAIL} today")
    assert resp.status == 200, resp.text
    assert resp.headers["x-turnout-privacy"] == "redact; categories=email"
    sent = chats(upstreams.primary)[0]
    assert EMAIL.encode() not in sent.body
    assert "[EMAIL]" in sent.json["messages"][0]["content"]


def test_block_refuses_with_the_categories_not_the_values(
    gw: Gateway, upstreams: Upstreams
) -> None:
    error = assert_error(
        chat(gw, "blocked", f"contact {EMAIL}"), 400, code="sensitive_data_blocked"
    )
    assert "email" in error["message"] and EMAIL not in error["message"]
    assert chats(upstreams.primary) == []
    assert chat(gw, "blocked", "nothing to see here").status == 200
    assert EMAIL not in gw.log()


def test_the_chi_square_bound_is_what_it_claims() -> None:
    # P(X > 23.93) for chi-square with 1 degree of freedom is about 1e-6
    assert math.erfc(math.sqrt(CHI2_DF1_P_1E6 / 2)) == pytest.approx(1e-6, rel=0.05)
