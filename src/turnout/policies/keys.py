"""API keys in memory: their format, their hash, and the ring the hot path checks them against.

Format: ``tk_<12 hex>_<43 base64url>``; the first part (``tk_3f9a2c1b7d4e``) is the key's
visible *prefix*, which names it in lists, logs and the audit trail; the rest is 256 random
bits. Only the SHA-256 of the whole key is stored (docs/security.md says why a fast hash is
right for a random 256-bit secret).

Authentication is one SHA-256 and one dict lookup in :class:`KeyRing`, which holds every key
of the database (loaded at start, kept current by ``turnout.services.key_sync``): no database
round trip per request, and an unknown or malformed token is refused from memory, without any
SQL, with the same message whatever it looks like.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from turnout.exceptions import AuthenticationFailed, ModelNotFound
from turnout.policies.roles import OWN_ONLY, ROLES

if TYPE_CHECKING:
    from turnout.policies.limits import Rule, Subject

__all__ = [
    "KEY_PREFIX",
    "MASTER",
    "MAX_TOKEN_BYTES",
    "ApiKeyState",
    "Caller",
    "KeyRing",
    "hash_token",
    "new_key",
    "new_prefix",
]

KEY_PREFIX = "tk_"
#: longer tokens are refused before they are hashed (a real key is 59 characters)
MAX_TOKEN_BYTES = 256

_INCORRECT = "Incorrect API key provided."


def hash_token(token: bytes) -> str:
    """The stored form of a key: SHA-256 of the whole key, hex."""
    return hashlib.sha256(token).hexdigest()


def new_prefix() -> str:
    return KEY_PREFIX + secrets.token_hex(6)


def new_key(prefix: str) -> tuple[str, str]:
    """A fresh secret key under ``prefix``: (the key, its hash)."""
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, hash_token(key.encode())


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an API key, or the master key (``key`` None)."""

    #: the key's prefix, or "master"
    name: str
    role: str
    permissions: frozenset[str]
    key: ApiKeyState | None = None

    @property
    def own_only(self) -> bool:
        """Reads are limited to this key's own records (developer keys)."""
        return self.role in OWN_ONLY

    def may_use(self, model: str) -> bool:
        key = self.key
        return key is None or key.allowed_models is None or model in key.allowed_models

    def model_not_found(self, model: str, existing: set[str] | dict[str, Any]) -> ModelNotFound:
        """The error for a model this key may not use: the same as for an unknown model,
        naming only models the key may use, so that no other name leaks."""
        allowed = sorted(m for m in existing if self.may_use(m))
        shown = ", ".join(allowed[:20]) + (" ..." if len(allowed) > 20 else "")
        hint = f" Available: {shown}." if allowed else ""
        return ModelNotFound(
            f"The model '{model}' does not exist or you do not have access to it.{hint}"
        )


MASTER = Caller("master", "admin", ROLES["admin"])


@dataclass(slots=True, eq=False)
class ApiKeyState:
    """One API key as the hot path sees it. Updated in place when the database changes, so
    that requests in flight charge their cost to the current object."""

    id: int
    prefix: str
    hash: str
    role: str
    owner: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    allowed_models: frozenset[str] | None = None
    #: the key's own rate limits (None: ``limits.per_key``, else none)
    limits: Rule | None = None
    budget: float | None = None
    #: US dollars spent, as last read from the database
    spent: float = 0.0
    #: US dollars spent through this process and not written yet
    unsaved: float = 0.0
    #: the rate-limit subject of this key (None: not limited)
    subject: Subject | None = None
    caller: Caller = field(init=False)
    _expires: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._derive()

    def _derive(self) -> None:
        self.caller = Caller(self.prefix, self.role, ROLES.get(self.role, frozenset()), self)
        self._expires = self.expires_at.timestamp() if self.expires_at else None

    def update_from(self, other: ApiKeyState) -> None:
        """Take the stored fields of ``other`` (a fresh read of the same key)."""
        for name in ("hash", "role", "owner", "updated_at", "expires_at", "revoked_at"):
            setattr(self, name, getattr(other, name))
        self.allowed_models, self.limits = other.allowed_models, other.limits
        self.budget, self.spent, self.subject = other.budget, other.spent, other.subject
        self._derive()

    @property
    def total_spent(self) -> float:
        return self.spent + self.unsaved

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.spent + self.unsaved >= self.budget

    def charge(self, cost: float) -> None:
        self.unsaved += cost

    def status(self, now: float | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self._expires is not None and self._expires <= (now or time.time()):
            return "expired"
        return "active"

    def check(self) -> Caller:
        """The caller, if the key may be used now; AuthenticationFailed saying why not."""
        if self.revoked_at is None and (self._expires is None or self._expires > time.time()):
            return self.caller
        if self.revoked_at is not None:
            raise AuthenticationFailed(
                f"The API key {self.prefix} was revoked; ask an admin for a new one."
            )
        assert self.expires_at is not None
        raise AuthenticationFailed(
            f"The API key {self.prefix} expired at {self.expires_at.isoformat()}; ask an admin "
            "for a new one."
        )


class KeyRing:
    """Every API key of the database, by hash; what authentication checks, in memory."""

    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKeyState] = {}
        self._by_id: dict[int, ApiKeyState] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def authenticate(self, token: bytes) -> Caller:
        """The caller for a presented token; AuthenticationFailed, the same for any token
        that is not a key (too long, odd bytes, SQL, unknown), decided in memory."""
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationFailed(_INCORRECT)
        digest = hash_token(token)
        state = self._by_hash.get(digest)
        # the lookup is by hash; compare_digest keeps the final comparison constant-time too
        if state is None or not hmac.compare_digest(state.hash, digest):
            raise AuthenticationFailed(_INCORRECT)
        return state.check()

    def get(self, key_id: int) -> ApiKeyState | None:
        return self._by_id.get(key_id)

    def put(self, fresh: ApiKeyState) -> ApiKeyState:
        """Add a key, or update the one with the same id in place; returns the held state."""
        held = self._by_id.get(fresh.id)
        if held is None:
            self._by_id[fresh.id] = fresh
            self._by_hash[fresh.hash] = fresh
            return fresh
        if held.hash != fresh.hash:  # rotated
            self._by_hash.pop(held.hash, None)
            self._by_hash[fresh.hash] = held
        held.update_from(fresh)
        return held

    def states(self) -> list[ApiKeyState]:
        return list(self._by_id.values())
