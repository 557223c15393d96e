"""What a limit is (a rule, the quotas it makes) and what the limiter answers (a decision)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "Quota", "Reservation", "Rule"]

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Quota:
    """``limit`` units per ``period`` seconds, at most ``burst`` of them at once (GCRA).

    A fresh subject may spend ``burst`` units at once; after that one unit comes back every
    ``interval`` seconds, until ``burst`` are available again."""

    limit: int
    burst: int
    period: float = MINUTE

    def __post_init__(self) -> None:
        if self.limit < 1 or self.burst < 1 or self.period <= 0:
            raise ValueError(f"a quota needs limit, burst >= 1 and period > 0, not {self}")

    @property
    def interval(self) -> float:
        """Seconds for one unit to come back."""
        return self.period / self.limit


@dataclass(frozen=True, slots=True)
class Rule:
    """Limits for one subject (a client IP, later an API key); ``None`` means no limit.

    ``burst`` defaults to ``requests_per_minute``; the token bucket holds one minute of
    ``tokens_per_minute``."""

    requests_per_minute: int | None = None
    burst: int | None = None
    tokens_per_minute: int | None = None

    @property
    def requests(self) -> Quota | None:
        if self.requests_per_minute is None:
            return None
        return Quota(self.requests_per_minute, self.burst or self.requests_per_minute)

    @property
    def tokens(self) -> Quota | None:
        if self.tokens_per_minute is None:
            return None
        return Quota(self.tokens_per_minute, self.tokens_per_minute)


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer for one subject and one quota.

    ``remaining``: units that could be spent right now; ``reset_after``: seconds until all
    ``burst`` units are back; ``retry_after``: seconds until the refused request would fit
    (0 when allowed)."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float = 0.0


@dataclass(slots=True)
class Reservation:
    """Units taken up front (``reserve``) and corrected later (``settle``)."""

    key: str
    quota: Quota
    amount: int
    settled: bool = False
