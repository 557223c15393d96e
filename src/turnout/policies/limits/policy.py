"""The rate-limit policy: which subjects a request counts against, and how much.

The front door calls :meth:`RateLimitPolicy.admit` before it reads the body (one request per
subject); the inference service calls :meth:`~RateLimitPolicy.reserve` before the backend call
(the request's ``max_tokens``, times ``n``, plus an estimate of the prompt, or
``default_reservation`` when it names no ``max_tokens``) and accounting calls
:meth:`~RateLimitPolicy.settle` when the request is over (the real usage replaces the
reservation: the unused part comes back, and a prompt longer than the estimate is charged).

Per-key limits (the seam)
-------------------------
A subject is whatever a request is counted against. Today that is the client IP
(:meth:`RateLimitPolicy.ip_subject`). Once API keys exist, the server authenticates the key
and admits it the same way, with the key's own rule::

    subject = policy.subject("key", key.id, f"API key {key.prefix}", Rule(...key's limits...))
    await policy.admit(req.admission, subject)

Both subjects then share the request's :class:`Admission`: tokens are reserved and settled
for each, and the headers show the tighter of the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.exceptions import InvalidRequest, RateLimited, TurnoutError
from turnout.policies.limits.client_ip import ClientAddress
from turnout.policies.limits.headers import rate_limit_headers
from turnout.policies.limits.limiter import Limiter
from turnout.policies.limits.rules import Decision, Quota, Reservation, Rule
from turnout.policies.limits.tokens import estimate_reservation

if TYPE_CHECKING:
    from turnout.backends.base import RequestContext, Usage

__all__ = ["Admission", "RateLimitPolicy", "Subject"]

RejectHook = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Subject:
    """One party a request is counted against."""

    #: "ip" or "key": the metric label, and the limiter key's first part
    scope: str
    #: the limiter key, e.g. ``ip:203.0.113.7``
    key: str
    #: how messages name it, e.g. ``client IP 203.0.113.7``
    label: str
    requests: Quota | None
    tokens: Quota | None


class Admission:
    """The rate-limit state of one request: its subjects, the decisions the response headers
    show (the tightest per kind), and its token reservations until they are settled."""

    __slots__ = ("requests", "reservations", "subjects", "tokens")

    def __init__(self) -> None:
        self.subjects: list[Subject] = []
        self.requests: Decision | None = None
        self.tokens: Decision | None = None
        self.reservations: list[Reservation] = []

    def headers(self) -> list[tuple[bytes, bytes]]:
        return rate_limit_headers(self.requests, self.tokens)

    def note(self, kind: str, decision: Decision) -> None:
        """Keep ``decision`` if it is tighter than the one kept for ``kind`` (a refusal stays)."""
        current = self.requests if kind == "requests" else self.tokens
        if current is not None and (
            not current.allowed or (decision.allowed and decision.remaining >= current.remaining)
        ):
            return
        if kind == "requests":
            self.requests = decision
        else:
            self.tokens = decision


class RateLimitPolicy:
    def __init__(
        self,
        limiter: Limiter,
        *,
        per_ip: Rule | None = None,
        trusted_proxies: Sequence[str] = (),
        default_reservation: int = 1024,
        on_reject: RejectHook = lambda scope, kind: None,
    ) -> None:
        self.limiter = limiter
        self.per_ip = per_ip
        self.addresses = ClientAddress(trusted_proxies)
        self.default_reservation = default_reservation
        self.on_reject = on_reject
        self._ip_quotas = (per_ip.requests, per_ip.tokens) if per_ip else (None, None)

    async def start(self) -> None:
        await self.limiter.start()

    async def aclose(self) -> None:
        await self.limiter.aclose()

    # ------------------------------------------------------------------ subjects

    def ip_subject(self, scope: Any) -> Subject | None:
        """The client IP of an ASGI request as a subject (None without a per-IP rule)."""
        if self.per_ip is None:
            return None
        ip = self.addresses.of(scope)
        requests, tokens = self._ip_quotas
        return Subject("ip", "ip:" + ip, "client IP " + ip, requests, tokens)

    @staticmethod
    def subject(scope: str, ident: str, label: str, rule: Rule) -> Subject:
        return Subject(scope, f"{scope}:{ident}", label, rule.requests, rule.tokens)

    # ------------------------------------------------------------------ requests

    async def admit(self, admission: Admission, subject: Subject) -> None:
        """Count one request against ``subject``; RateLimited when it has none left."""
        admission.subjects.append(subject)
        if subject.requests is None:
            return
        decision = await self.limiter.spend(subject.key + ":r", subject.requests)
        admission.note("requests", decision)
        if not decision.allowed:
            await self._give_back_requests(admission, subject)
            raise self._refused(subject, "requests", decision)

    async def _give_back_requests(self, admission: Admission, refused: Subject) -> None:
        """A request refused for one subject does not count against the others."""
        for other in admission.subjects:
            if other is not refused and other.requests is not None:
                await self.limiter.charge(other.key + ":r", other.requests, -1)

    # ------------------------------------------------------------------ tokens

    async def reserve(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        """Reserve the request's tokens for each subject before the backend is called."""
        admission = ctx.admission
        if admission is None:
            return
        subjects = [s for s in admission.subjects if s.tokens is not None]
        if not subjects:
            return
        amount, asked = estimate_reservation(body, self.default_reservation)
        for subject in subjects:
            await self._reserve_one(admission, subject, amount, asked)

    async def _reserve_one(
        self, admission: Admission, subject: Subject, amount: int, asked: int | None
    ) -> None:
        quota = subject.tokens
        assert quota is not None
        if asked is not None and asked > quota.burst:
            self._release(admission)
            raise InvalidRequest(
                f"This request asks for up to {asked} output tokens, more than {subject.label} "
                f"may use per minute ({quota.limit} tokens); lower max_tokens.",
                param="max_tokens",
            )
        size = min(amount, quota.burst)
        reservation, decision = await self.limiter.reserve(subject.key + ":t", quota, size)
        admission.note("tokens", decision)
        if not decision.allowed:
            self._release(admission)
            raise self._refused(subject, "tokens", decision)
        admission.reservations.append(reservation)

    def settle(
        self,
        ctx: RequestContext,
        usage: Usage | None,
        error: BaseException | None = None,
        *,
        delivered: bool = False,
    ) -> None:
        """Replace the reservations by the real use, off the request's path.

        With ``usage`` known, that is what is charged (a cancelled or failed stream pays for
        what it produced). Without it: a request that failed with a gateway error before
        anything was sent costs nothing; anything else (success without usage, a client that
        went away, a stream cut short) keeps its whole reservation."""
        admission = ctx.admission
        if admission is None or not admission.reservations:
            return
        if usage is not None:
            actual: int | None = usage.total_tokens
        elif isinstance(error, TurnoutError) and not delivered:
            actual = 0
        else:
            actual = None
        for reservation in admission.reservations:
            if actual is None:
                reservation.settled = True
            else:
                self.limiter.settle_soon(reservation, actual)
        admission.reservations.clear()

    def _release(self, admission: Admission) -> None:
        for reservation in admission.reservations:
            self.limiter.settle_soon(reservation, 0)
        admission.reservations.clear()

    # ------------------------------------------------------------------ refusals

    def _refused(self, subject: Subject, kind: str, decision: Decision) -> RateLimited:
        self.on_reject(subject.scope, kind)
        wait = decision.retry_after
        return RateLimited(
            f"Rate limit reached for {subject.label} on {kind} per minute: limit "
            f"{decision.limit}. Try again in {_seconds(wait)}.",
            retry_after=wait,
        )


def _seconds(value: float) -> str:
    if value < 1:
        return f"{max(1, math.ceil(value * 1000))} ms"
    return f"{math.ceil(value * 10) / 10:g} s"
