"""Timing one request: from the call to the first chunk with output, between such chunks,
and to the end (see :mod:`turnout.advisor.metrics` for what each figure means)."""

from __future__ import annotations

import time
from typing import Any

from turnout.advisor.metrics import Outcome
from turnout.backends.base import Usage

__all__ = ["StreamClock"]


class StreamClock:
    """Started when created; fed every chunk of a stream (or the whole response) as it
    arrives; turns into the request's :class:`Outcome`."""

    __slots__ = ("_first", "_last", "itl", "t0", "usage")

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self._first: float | None = None
        self._last = 0.0
        self.itl: list[float] = []
        self.usage: Usage | None = None

    def chunk(self, data: dict[str, Any], now: float) -> None:
        """One ``chat.completion.chunk``, received at ``now`` (``time.perf_counter()``)."""
        if _has_output(data):
            if self._first is None:
                self._first = now
            else:
                self.itl.append(now - self._last)
            self._last = now
        usage = data.get("usage")
        if usage is not None:
            self.usage = Usage.from_dict(usage)

    def whole(self, usage: Usage | None) -> None:
        """A non-streamed response arrived (no first token to time)."""
        self.usage = usage

    def done(self, deployment: str | None = None) -> Outcome:
        usage = self.usage or Usage()
        return Outcome(
            ok=True,
            latency=time.perf_counter() - self.t0,
            ttft=None if self._first is None else self._first - self.t0,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            itl=self.itl,
            deployment=deployment,
        )

    def failed(self, error: str, deployment: str | None = None) -> Outcome:
        return Outcome(
            ok=False,
            latency=time.perf_counter() - self.t0,
            error=error,
            deployment=deployment,
        )


def _has_output(data: dict[str, Any]) -> bool:
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
    return False
