"""turnout.router: name resolution, weighted plans, and the fallback loop, driven through
scripted backends (real Backend subclasses)."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.scripted import MidStream, ScriptedBackend
from tests.unit.support import DEAD_URL
from turnout.backends.base import BackendRequest, RequestContext, Result
from turnout.config import Config
from turnout.exceptions import (
    BackendError,
    ContextLengthExceeded,
    ModelNotFound,
    NotSupported,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from turnout.router.router import Route, Router, Target

Deps = list[tuple[str, str, float]]


def make_router(
    models: dict[str, Deps],
    *,
    closed: tuple[str, ...] = (),
    names: tuple[str, ...] = ("a", "b", "c"),
    settings: dict[str, Any] | None = None,
) -> tuple[Router, dict[str, ScriptedBackend]]:
    """A router over scripted backends ``names``; those in ``closed`` have passthrough off.
    ``settings`` adds top-level configuration (``router``, ``prices``)."""
    config = Config.model_validate(
        {
            **(settings or {}),
            "backends": {n: {"base_url": DEAD_URL, "passthrough": n not in closed} for n in names},
            "models": {
                name: {
                    "description": f"{name} model",
                    "deployments": [{"backend": b, "model": m, "weight": w} for b, m, w in deps],
                }
                for name, deps in models.items()
            },
        }
    )
    backends = {n: ScriptedBackend(n) for n in names}
    return Router(config, dict(backends)), backends


def ctx(timeout: float = 30.0) -> RequestContext:
    return RequestContext.create("req-test", timeout)


async def chat(router: Router, name: str, context: RequestContext) -> tuple[str, Target]:
    """Route ``name`` through Router.call with a non-streaming chat; returns (text, target)."""

    def op(target: Target) -> Any:
        body = {"model": target.model, "messages": [{"role": "user", "content": "hi"}]}
        return target.backend.chat(BackendRequest(body), context)

    result, target = await router.call(router.resolve(name), context, op)
    assert isinstance(result, Result)
    return result.data["choices"][0]["message"]["content"], target


# ---------------------------------------------------------------------------- resolve


def test_resolves_a_configured_name() -> None:
    router, backends = make_router({"chat": [("a", "small", 3), ("b", "large", 1)]})
    route = router.resolve("chat")
    assert isinstance(route, Route)
    assert route.name == "chat"
    assert route.description == "chat model"
    assert [(t.backend, t.model, t.weight) for t in route.targets] == [
        (backends["a"], "small", 3.0),
        (backends["b"], "large", 1.0),
    ]
    assert [t.label for t in route.targets] == ["a/small", "b/large"]
    assert router.resolve("chat") is route


def test_backend_slash_model_passes_through() -> None:
    router, backends = make_router({"chat": [("a", "small", 1)]})
    route = router.resolve("b/org/some-model:latest")
    assert route.name == "b/org/some-model:latest"
    assert len(route.targets) == 1
    assert route.targets[0].backend is backends["b"]
    assert route.targets[0].model == "org/some-model:latest"
    assert router.resolve("b/org/some-model:latest") is route  # cached


def test_passthrough_only_for_passthrough_backends() -> None:
    router, _ = make_router({"chat": [("a", "small", 1)]}, closed=("c",))
    assert router.resolve("a/x").targets[0].model == "x"
    with pytest.raises(ModelNotFound) as info:
        router.resolve("c/x")
    assert "backend of: a, b." in info.value.message
    assert ", c" not in info.value.message


@pytest.mark.parametrize("name", ["nope", "nobackend/x", "a/", "/x", "", "chat "])
def test_unknown_names(name: str) -> None:
    router, _ = make_router({"chat": [("a", "m", 1)], "embed": [("b", "e", 1)]})
    with pytest.raises(ModelNotFound) as info:
        router.resolve(name)
    err = info.value
    assert (err.status, err.code, err.param, err.type) == (
        404,
        "model_not_found",
        "model",
        "invalid_request_error",
    )
    assert err.message == (
        f"The model '{name}' does not exist or you do not have access to it. "
        "Available: chat, embed. Or name BACKEND/MODEL with a backend of: a, b, c."
    )


def test_not_found_without_models_or_passthrough() -> None:
    router, _ = make_router({}, closed=("a", "b", "c"))
    with pytest.raises(ModelNotFound) as info:
        router.resolve("x")
    assert info.value.message.endswith("No models are configured.")
    assert "BACKEND/MODEL" not in info.value.message


def test_not_found_lists_at_most_twenty_models() -> None:
    router, _ = make_router({f"m{i:02d}": [("a", "x", 1)] for i in range(25)}, closed=("a",))
    with pytest.raises(ModelNotFound) as info:
        router.resolve("x")
    shown = ", ".join(f"m{i:02d}" for i in range(20))
    assert f"Available: {shown} ..." in info.value.message
    assert "m20" not in info.value.message


# ------------------------------------------------------------------------------- plan

DRAWS = 10_000
#: chi-square with 2 degrees of freedom: P(X > x) = exp(-x/2); this x has P = 1e-6
CHI2_DF2_P_1E6 = -2 * math.log(1e-6)


def _plans(route: Route, n: int) -> list[tuple[Target, ...]]:
    state = random.getstate()
    random.seed(8400)
    try:
        return [route.plan() for _ in range(n)]
    finally:
        random.setstate(state)


def test_weighted_first_choice_follows_the_weights() -> None:
    router, _ = make_router({"chat": [("a", "m", 1), ("b", "m", 2), ("c", "m", 7)]})
    route = router.resolve("chat")
    plans = _plans(route, DRAWS)
    counts = Counter(plan[0].backend.name for plan in plans)
    expected = {"a": 0.1 * DRAWS, "b": 0.2 * DRAWS, "c": 0.7 * DRAWS}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < CHI2_DF2_P_1E6, (counts, chi2)
    for plan in plans:  # the first pick, then every other target in configured order
        assert plan[1:] == tuple(t for t in route.targets if t is not plan[0])


def test_zero_weight_is_never_first_but_still_a_fallback() -> None:
    router, _ = make_router({"chat": [("a", "m", 0), ("b", "m", 1), ("c", "m", 0)]})
    plans = set(_plans(router.resolve("chat"), 500))
    assert len(plans) == 1
    assert [t.label for t in plans.pop()] == ["b/m", "a/m", "c/m"]


def test_single_target_plan() -> None:
    router, _ = make_router({"chat": [("a", "m", 1)]})
    route = router.resolve("chat")
    assert route.plan() == route.targets


def test_all_zero_weights_are_a_config_error() -> None:
    with pytest.raises(ValidationError, match="give at least one a weight > 0"):
        make_router({"chat": [("a", "m", 0), ("b", "m", 0)]})


def test_all_zero_weights_still_plan() -> None:
    # weights can reach 0 at runtime (a rolled-back canary): the plan keeps config order
    backends = {n: ScriptedBackend(n) for n in ("a", "b")}
    route = Route("chat", (Target(backends["a"], "m", 0), Target(backends["b"], "m", 0)))
    assert [t.label for t in route.plan()] == ["a/m", "b/m"]


# ------------------------------------------------------------------------ call/fallback

ORDERED: dict[str, Deps] = {"chat": [("a", "ma", 0), ("b", "mb", 1), ("c", "mc", 0)]}  # b, a, c


async def test_first_target_answers() -> None:
    router, backends = make_router(ORDERED)
    context = ctx()
    text, target = await chat(router, "chat", context)
    assert text == "b:mb"
    assert target.label == "b/mb"
    assert (context.attempts, context.served_by) == (1, "b/mb")
    assert [backends[n].calls for n in "abc"] == [[], ["mb"], []]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailable("down"),
        UpstreamTimeout("slow"),
        UpstreamRateLimited("busy", retry_after=3),
        UpstreamError("500"),
        ContextLengthExceeded("too long"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_falls_back_in_plan_order(error: BackendError) -> None:
    router, backends = make_router(ORDERED)
    backends["b"].enqueue(error)
    backends["a"].enqueue(UpstreamUnavailable("also down"))
    context = ctx()
    text, target = await chat(router, "chat", context)
    assert text == "c:mc"
    assert target.label == "c/mc"
    assert (context.attempts, context.served_by) == (3, "c/mc")
    assert [backends[n].calls for n in "abc"] == [["ma"], ["mb"], ["mc"]]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamBadRequest("bad"),
        UpstreamAuthError("key refused"),
        UpstreamNotFound("no such model"),
        NotSupported("no embeddings"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_non_retryable_errors_do_not_fall_back(error: BackendError) -> None:
    router, backends = make_router(ORDERED)
    backends["b"].enqueue(error)
    context = ctx()
    with pytest.raises(type(error)) as info:
        await chat(router, "chat", context)
    assert info.value is error
    assert (context.attempts, context.served_by) == (1, "b/mb")
    assert [backends[n].calls for n in "abc"] == [[], ["mb"], []]


async def test_the_last_error_is_raised_when_every_target_fails() -> None:
    router, backends = make_router(ORDERED, settings={"router": {"retries": {"max_retries": 0}}})
    last = UpstreamTimeout("c timed out")
    backends["b"].enqueue(UpstreamUnavailable("b down"))
    backends["a"].enqueue(UpstreamRateLimited("a busy"))
    backends["c"].enqueue(last)
    context = ctx()
    with pytest.raises(UpstreamTimeout) as info:
        await chat(router, "chat", context)
    assert info.value is last
    assert context.attempts == 3


async def test_a_passed_deadline_tries_nothing() -> None:
    router, backends = make_router(ORDERED)
    context = RequestContext("req-late", asyncio.get_running_loop().time() - 1)
    with pytest.raises(UpstreamTimeout, match="deadline"):
        await chat(router, "chat", context)
    assert [backends[n].calls for n in "abc"] == [[], [], []]


async def test_foreign_exceptions_are_not_fallen_back_on() -> None:
    router, _ = make_router(ORDERED)
    context = ctx()

    async def op(target: Target) -> None:
        raise RuntimeError(f"bug in {target.label}")

    with pytest.raises(RuntimeError, match="bug in b/mb"):
        await router.call(router.resolve("chat"), context, op)
    assert context.attempts == 1


async def test_default_chat_collects_the_stream_with_usage() -> None:
    router, backends = make_router({"chat": [("a", "m", 1)]})
    backends["a"].enqueue("one two three")
    context = ctx()
    route = router.resolve("chat")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    result, _ = await router.call(
        route, context, lambda t: t.backend.chat(BackendRequest(body), context)
    )
    assert result.data["choices"][0]["message"]["content"] == "one two three"
    assert result.data["choices"][0]["finish_reason"] == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (3, 3)


# ------------------------------------------------------------------------- open_stream


async def _open(router: Router, context: RequestContext) -> tuple[str, list[str], Target]:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}

    def op(target: Target) -> Any:
        return target.backend.stream_chat(BackendRequest({**body, "model": target.model}), context)

    head, rest, target = await router.open_stream(router.resolve("chat"), context, op)
    assert head is not None
    return (
        head.data["choices"][0]["delta"]["content"],
        [c.json().decode() async for c in rest],
        target,
    )


async def test_stream_falls_back_until_a_first_chunk_arrives() -> None:
    router, backends = make_router(ORDERED)
    backends["b"].enqueue(UpstreamUnavailable("b down"))
    backends["a"].enqueue("alpha beta")
    context = ctx()
    head, rest, target = await _open(router, context)
    assert (head, target.label) == ("alpha", "a/ma")
    assert '" beta"' in rest[0]
    assert '"usage"' in rest[-1]
    assert (context.attempts, context.served_by) == (2, "a/ma")
    assert backends["c"].calls == []


async def test_after_the_first_chunk_a_failure_reaches_the_caller() -> None:
    router, backends = make_router(ORDERED)
    error = UpstreamUnavailable("reset mid-stream")
    backends["b"].enqueue(MidStream("one two", error))
    context = ctx()
    body = {"model": "x", "messages": []}
    head, rest, target = await router.open_stream(
        router.resolve("chat"),
        context,
        lambda t: t.backend.stream_chat(BackendRequest({**body, "model": t.model}), context),
    )
    assert head is not None and head.data["choices"][0]["delta"]["content"] == "one"
    assert target.label == "b/mb"
    received = []
    with pytest.raises(UpstreamUnavailable) as info:
        async for chunk in rest:
            received.append(chunk.data["choices"][0]["delta"]["content"])
    assert info.value is error
    assert received == [" two"]
    assert backends["a"].calls == [] and backends["c"].calls == []


async def test_stream_non_retryable_error_is_raised_at_once() -> None:
    router, backends = make_router(ORDERED)
    backends["b"].enqueue(UpstreamAuthError("refused"))
    with pytest.raises(UpstreamAuthError):
        await _open(router, ctx())
    assert backends["a"].calls == []
