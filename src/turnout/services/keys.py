"""API key management: create, list, show, change, revoke, rotate; who may see and grant what.

Rules (docs/security.md):

- a key's secret is returned once, by :meth:`KeyService.create` and :meth:`KeyService.rotate`;
  only its hash is stored;
- a developer key sees only itself: any other prefix is "not found" (404), never "forbidden";
- nobody grants more than they have: a new or changed key's role may hold only permissions
  the caller holds, and when the caller's own key is restricted (model allow-list, rate
  limits, budget, expiry) the key it creates or changes must be at least as restricted;
- no key changes its own settings (it could raise its own limits); ask another admin.

No web framework here: the admin routes call these methods, and tests may too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from turnout.config import RateLimitRule
from turnout.exceptions import InvalidRequest, NotFound, PermissionDenied
from turnout.policies.keys import ApiKeyState, Caller, new_key, new_prefix
from turnout.policies.roles import ROLES
from turnout.services.key_sync import KeySync
from turnout.storage import keys as key_table
from turnout.storage.models import ApiKey

__all__ = ["KeyCreate", "KeyService", "KeyUpdate", "key_view"]

_M = TypeVar("_M", bound=BaseModel)
_PREFIX = re.compile(r"tk_[0-9a-f]{12}")
_NAME = Field(min_length=1, max_length=256)
MAX_PAGE = 1000


class KeyCreate(BaseModel):
    """The body of ``POST /admin/keys``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    owner: str = _NAME
    role: Literal["admin", "developer", "auditor"] = "developer"
    #: when the key stops working (an ISO 8601 time with its offset); None: never
    expires_at: datetime | None = Field(default=None, strict=False)
    #: public model names the key may call; None: all
    allowed_models: list[str] | None = Field(default=None, max_length=1000)
    limits: RateLimitRule | None = Field(default=None, strict=False)
    #: US dollars; None: no budget
    budget: float | None = Field(default=None, ge=0)

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give the time with its offset, e.g. 2030-01-31T00:00:00Z")
        if value <= datetime.now(UTC):
            raise ValueError("the time is in the past; give a future time")
        return value.astimezone(UTC)

    @field_validator("allowed_models")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not 0 < len(name) <= 256 for name in value):
            raise ValueError("every model name needs 1 to 256 characters")
        return None if value is None else sorted(set(value))


class KeyUpdate(KeyCreate):
    """A key's settings after ``PATCH /admin/keys/{prefix}``: the fields given replace the
    stored ones (null removes an expiry, an allow-list, limits or a budget). An expiry in the
    past is allowed here: the key stops working at once."""

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the time with its offset, e.g. 2030-01-31T00:00:00Z")
        return None if value is None else value.astimezone(UTC)


def _parse(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"Invalid value for '{param}': {message}.", param=param) from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def key_view(row: ApiKey, held: ApiKeyState | None = None) -> dict[str, Any]:
    """A key as the admin API shows it: never its secret, never its hash."""
    state = held.status() if held is not None else _status(row)
    return {
        "object": "api_key",
        "id": row.id,
        "prefix": row.prefix,
        "role": row.role,
        "owner": row.owner,
        "status": state,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "expires_at": _iso(row.expires_at),
        "revoked_at": _iso(row.revoked_at),
        "allowed_models": row.allowed_models,
        "limits": row.limits,
        "budget": row.budget,
        "spent": row.spent + (held.unsaved if held is not None else 0.0),
    }


def _status(row: ApiKey) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"


class KeyService:
    def __init__(self, sync: KeySync) -> None:
        self.sync = sync
        self.database = sync.database

    # ------------------------------------------------------------------ reads

    async def list(
        self,
        caller: Caller,
        *,
        limit: int = 100,
        after_id: int | None = None,
        owner: str | None = None,
        role: str | None = None,
    ) -> list[dict[str, Any]]:
        if caller.own_only:
            own = await self._own_row(caller)
            return [self._view(own)] if own is not None and after_id is None else []
        rows = await key_table.list_keys(
            self.database,
            limit=max(1, min(limit, MAX_PAGE)),
            after_id=after_id,
            owner=owner,
            role=role,
        )
        return [self._view(row) for row in rows]

    async def show(self, caller: Caller, prefix: str) -> dict[str, Any]:
        return self._view(await self._visible(caller, prefix))

    async def _own_row(self, caller: Caller) -> ApiKey | None:
        if caller.key is None:
            return None
        return await key_table.key_by_prefix(self.database, caller.key.prefix)

    async def _visible(self, caller: Caller, prefix: str) -> ApiKey:
        """The key ``prefix``, if it exists and the caller may see it; else NotFound."""
        row = None
        if _PREFIX.fullmatch(prefix):
            mine = caller.key is not None and caller.key.prefix == prefix
            if mine or not caller.own_only:
                row = await key_table.key_by_prefix(self.database, prefix)
        if row is None:
            raise NotFound(
                f"No API key with prefix {prefix[:40]!r}; list them with GET /admin/keys "
                "(turnout keys list).",
                param="prefix",
            )
        return row

    def _view(self, row: ApiKey) -> dict[str, Any]:
        return key_view(row, self.sync.ring.get(row.id))

    # ------------------------------------------------------------------ writes

    async def create(self, caller: Caller, body: Any) -> tuple[str, dict[str, Any]]:
        """A new key: (the secret key, shown this once; its view)."""
        spec = _parse(KeyCreate, body)
        _within(caller, spec)
        values = spec.model_dump(exclude={"limits"})
        values["limits"] = _limits_json(spec.limits)
        for _ in range(5):
            prefix = new_prefix()
            secret, digest = new_key(prefix)
            try:
                row = await key_table.insert_key(
                    self.database, prefix=prefix, hash=digest, **values
                )
            except key_table.DuplicatePrefix:
                continue
            self.sync.apply([row])
            return secret, self._view(row)
        raise AssertionError("five random prefixes in a row were taken")  # 2^-48 each

    async def update(self, caller: Caller, prefix: str, body: Any) -> dict[str, Any]:
        row = await self._visible(caller, prefix)
        _not_self(caller, row, "change its own settings")
        if not isinstance(body, dict) or not body:
            raise InvalidRequest('Send the fields to change, e.g. {"budget": 50}.')
        current = {**_settings(row), **body}
        spec = _parse(KeyUpdate, current)
        _within(caller, spec)
        changes = spec.model_dump(include=set(body), exclude={"limits"})
        if "limits" in body:
            changes["limits"] = _limits_json(spec.limits)
        row = await key_table.update_key(self.database, row.id, **changes)
        self.sync.apply([row])
        return self._view(row)

    async def revoke(self, caller: Caller, prefix: str) -> dict[str, Any]:
        row = await self._visible(caller, prefix)
        if row.revoked_at is None:
            row = await key_table.update_key(self.database, row.id, revoked_at=datetime.now(UTC))
            self.sync.apply([row])
        return self._view(row)

    async def rotate(self, caller: Caller, prefix: str) -> tuple[str, dict[str, Any]]:
        """A new secret for the key (same prefix and settings); the old one stops working."""
        row = await self._visible(caller, prefix)
        if row.revoked_at is not None:
            raise InvalidRequest(
                f"The API key {prefix} is revoked and cannot be rotated; create a new key."
            )
        secret, digest = new_key(row.prefix)
        row = await key_table.update_key(self.database, row.id, hash=digest)
        self.sync.apply([row])
        return secret, self._view(row)


def _settings(row: ApiKey) -> dict[str, Any]:
    return {
        "owner": row.owner,
        "role": row.role,
        "expires_at": row.expires_at,
        "allowed_models": row.allowed_models,
        "limits": row.limits,
        "budget": row.budget,
    }


def _limits_json(limits: RateLimitRule | None) -> dict[str, Any] | None:
    return None if limits is None else limits.model_dump(exclude_none=True)


def _not_self(caller: Caller, row: ApiKey, what: str) -> None:
    if caller.key is not None and caller.key.id == row.id:
        raise PermissionDenied(
            f"A key cannot {what} (it could raise its own limits); ask another admin."
        )


def _within(caller: Caller, spec: KeyCreate) -> None:
    """PermissionDenied unless ``spec`` grants no more than the caller has."""
    missing = ROLES[spec.role] - caller.permissions
    if missing:
        raise PermissionDenied(
            f"A {caller.role} key cannot grant the role {spec.role!r}: it holds permissions "
            f"the caller does not ({', '.join(sorted(missing))})."
        )
    own = caller.key
    if own is None:
        return
    problem = (
        _models_within(own, spec)
        or _limits_within(own, spec)
        or _budget_within(own, spec)
        or _expiry_within(own, spec)
    )
    if problem:
        raise PermissionDenied(f"A key cannot grant more than it has: {problem}.")


def _models_within(own: ApiKeyState, spec: KeyCreate) -> str | None:
    if own.allowed_models is None:
        return None
    if spec.allowed_models is None or not set(spec.allowed_models) <= own.allowed_models:
        return "allowed_models must be a subset of your key's allowed models"
    return None


def _limits_within(own: ApiKeyState, spec: KeyCreate) -> str | None:
    mine, theirs = own.limits, spec.limits
    if mine is None:
        return None
    for name in ("requests_per_minute", "tokens_per_minute"):
        limit = getattr(mine, name)
        value = None if theirs is None else getattr(theirs, name)
        if limit is not None and (value is None or value > limit):
            return f"limits.{name} must be set and at most {limit}, as on your key"
    if mine.requests_per_minute is not None and theirs is not None:
        burst = mine.burst or mine.requests_per_minute
        if (theirs.burst or theirs.requests_per_minute or 0) > burst:
            return f"limits.burst must be at most {burst}, as on your key"
    return None


def _budget_within(own: ApiKeyState, spec: KeyCreate) -> str | None:
    if own.budget is None:
        return None
    left = max(0.0, own.budget - own.total_spent)
    if spec.budget is None or spec.budget > left:
        return f"budget must be set and at most {left:.2f}, what your key has left"
    return None


def _expiry_within(own: ApiKeyState, spec: KeyCreate) -> str | None:
    if own.expires_at is None:
        return None
    if spec.expires_at is None or spec.expires_at > own.expires_at:
        return f"expires_at must be set and no later than {own.expires_at.isoformat()}"
    return None
