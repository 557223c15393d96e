"""OpenAI's rate-limit response headers, from the limiter's decisions.

``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` and the same three for ``-tokens``; the reset is a duration as
OpenAI writes it (``600ms``, ``1.5s``, ``6m0s``): the time until the whole burst is back.
"""

from __future__ import annotations

import math

from turnout.policies.limits.rules import Decision

__all__ = ["duration", "rate_limit_headers"]


def rate_limit_headers(
    requests: Decision | None, tokens: Decision | None
) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    if requests is not None:
        out += _three(b"requests", requests)
    if tokens is not None:
        out += _three(b"tokens", tokens)
    return out


def _three(kind: bytes, decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit-" + kind, str(decision.limit).encode()),
        (b"x-ratelimit-remaining-" + kind, str(decision.remaining).encode()),
        (b"x-ratelimit-reset-" + kind, duration(decision.reset_after).encode()),
    ]


def duration(seconds: float) -> str:
    """``0s``, ``17ms``, ``1.5s``, ``6m0s``, ``1h0m0s``: rounded up to the millisecond."""
    ms = math.ceil(round(seconds * 1000, 6))
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs
