"""Request bodies: the read deadline (408), the JSON nesting limit (400 invalid_json)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.hardening.asgi import Receive, scope
from turnout.exceptions import InvalidRequest, RequestTimeout, RequestTooLarge
from turnout.server.deadlines import Deadlines
from turnout.server.http import BodyLimits, HttpRequest, nested_deeper


def limits(*, timeout: float = 5.0, depth: int = 64, size: int = 1 << 20) -> BodyLimits:
    return BodyLimits.create(size, depth, timeout)


def request(receive: Receive, method: str = "POST") -> HttpRequest:
    return HttpRequest(scope(method, "/v1/chat/completions"), receive)


# ---------------------------------------------------------------------------- deadline


async def test_a_body_in_time_is_read_whole() -> None:
    req = request(Receive([b'{"a":', b" 1}"], delay=0.01))
    assert await req.json(limits(timeout=1.0)) == {"a": 1}


async def test_a_trickled_body_gets_408_soon_after_the_deadline() -> None:
    body_limits = limits(timeout=0.4)
    req = request(Receive([b" "] * 1000, delay=0.05))  # 20 bytes a second, forever
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as caught:
        await req.body(body_limits)
    waited = time.monotonic() - started
    assert 0.4 <= waited < 0.4 + body_limits.deadlines.resolution + 0.5
    assert caught.value.status == 408
    assert "server.body_timeout" in caught.value.message
    assert len(body_limits.deadlines) == 0  # nothing left watched


async def test_headers_then_silence_gets_408() -> None:
    req = request(Receive([]))
    with pytest.raises(RequestTimeout):
        await req.body(limits(timeout=0.2))


async def test_the_size_limit_still_comes_first() -> None:
    req = request(Receive([b"x" * 600, b"x" * 600]))
    with pytest.raises(RequestTooLarge):
        await req.body(limits(size=1024))


async def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    """The disconnect watcher cancels tasks too: that must stay a cancellation."""
    body_limits = limits(timeout=30)
    task = asyncio.create_task(request(Receive([])).body(body_limits))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(body_limits.deadlines) == 0


async def test_one_timer_serves_many_readers() -> None:
    deadlines = Deadlines(0.3, resolution=0.05)
    body_limits = BodyLimits(1 << 20, 64, deadlines)
    slow = [asyncio.create_task(request(Receive([])).body(body_limits)) for _ in range(50)]
    fast = [request(Receive([b"{}"])).body(body_limits) for _ in range(50)]
    assert await asyncio.gather(*fast) == [b"{}"] * 50
    results = await asyncio.gather(*slow, return_exceptions=True)
    assert all(isinstance(r, RequestTimeout) for r in results)
    assert len(deadlines) == 0
    assert deadlines._timer is None  # disarmed once nothing is watched


def test_deadlines_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Deadlines(0)


# ------------------------------------------------------------------------- JSON depth


def nested(depth: int) -> bytes:
    """``depth`` levels: arrays inside objects inside arrays ..."""
    text = "1"
    for level in range(depth):
        text = f'{{"k":{text}}}' if level % 2 else f"[{text}]"
    return text.encode()


async def parse(raw: bytes, depth: int = 64) -> Any:
    return await request(Receive([raw])).json(limits(depth=depth))


async def test_exactly_the_limit_is_accepted() -> None:
    assert await parse(nested(64)) == orjson.loads(nested(64))


@pytest.mark.parametrize("depth", [65, 500, 1024, 1025, 5000])
async def test_deeper_is_invalid_json_with_the_fix(depth: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await parse(nested(depth))
    assert caught.value.code == "invalid_json"
    assert caught.value.status == 400
    assert "more than 64 levels" in caught.value.message
    assert "server.max_json_depth" in caught.value.message


async def test_wide_bodies_and_braces_in_strings_are_not_depth() -> None:
    messages = [{"role": "user", "content": "{[{[" * 50}] * 500
    raw = orjson.dumps({"model": "m", "messages": messages, "tools": [{"a": {"b": [1]}}] * 200})
    assert (await parse(raw))["model"] == "m"


async def test_a_lower_limit_is_honoured() -> None:
    assert await parse(nested(3), depth=3)
    with pytest.raises(InvalidRequest):
        await parse(nested(4), depth=3)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


#: strings full of what could fool a byte-level reading: quotes, backslashes, brackets
tricky_text = st.text(alphabet='[]{}"\\ ,:u0a\n\u00e9\u4e2d', max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=80,
)


@given(json_values, st.integers(min_value=0, max_value=12), st.booleans())
def test_nested_deeper_agrees_with_the_parsed_depth(value: Any, limit: int, indent: bool) -> None:
    raw = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    assert nested_deeper(raw, limit) == (depth_of(value) > limit)


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (rb'{"a": "\\"}', 1),  # an escaped backslash ends the string
        (rb'{"a": "\"[[[["}', 1),  # an escaped quote does not
        (rb'{"a": "\\\"]]]", "b": [[]]}', 3),
        (rb'["\u0022[[[", [[{}]]]', 4),  # \u0022 is a quote in the text, not in the syntax
        (b'{"\xc3\xa9[": [["\xe4\xb8\xad"]]}', 3),
    ],
)
def test_nested_deeper_on_escapes(raw: bytes, depth: int) -> None:
    assert depth_of(orjson.loads(raw)) == depth
    assert nested_deeper(raw, depth - 1) and not nested_deeper(raw, depth)
