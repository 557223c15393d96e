"""Access control for every request, in one place: who is calling, may they, and the audit.

For a route that needs a key, :meth:`Access.check`:

1. takes the key from ``Authorization: Bearer KEY`` or ``x-api-key: KEY`` (the Anthropic
   SDK's header): the same checks for both;
2. authenticates it: the master key (constant-time comparison) is the bootstrap admin;
   anything else is looked up in the in-memory :class:`~turnout.policies.keys.KeyRing`
   (no database on this path);
3. counts the request against the key's own rate limit (``limits.per_key`` when the key has
   none), next to the client IP's, refused attempts included;
4. authorizes: the route's declared permission must be in the caller's role
   (:mod:`turnout.policies.roles`); a refusal of an admin route is written to the audit trail
   as ``denied``.

Routes that declare an ``audit`` action run through :meth:`Access.audited`, which records
the action with its outcome (``ok``, ``denied``, ``error``) before the answer goes out.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from turnout.exceptions import AuthenticationFailed, PermissionDenied, TurnoutError
from turnout.policies.keys import MASTER, Caller
from turnout.policies.limits import Admission
from turnout.policies.roles import INFERENCE, describe
from turnout.services.audit import AuditEvent

if TYPE_CHECKING:
    from turnout.gateway import Gateway
    from turnout.server.http import HttpRequest, JsonResponse, SseResponse
    from turnout.server.routes import RouteSpec

__all__ = ["Access", "bearer"]

_MISSING = (
    "Missing API key. Send it as 'Authorization: Bearer KEY' (OpenAI SDK: api_key=) or as "
    "'x-api-key: KEY' (Anthropic SDK)."
)


class Access:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        key = gateway.config.server.master_key
        self._master = key.get_secret_value().encode() if key else None

    async def check(self, spec: RouteSpec, req: HttpRequest) -> None:
        """Authenticate, admit, authorize; sets ``req.caller`` and ``req.principal``."""
        caller = self.authenticate(req)
        req.caller, req.principal = caller, caller.name
        key = caller.key
        if key is not None and key.subject is not None:  # refused attempts count too
            if req.admission is None:
                req.admission = Admission()
            await self.gateway.limits.admit(req.admission, key.subject)
        if spec.permission not in caller.permissions:
            await self._deny(spec, req, caller)

    def authenticate(self, req: HttpRequest) -> Caller:
        token = bearer(req.header(b"authorization")) or req.header(b"x-api-key")
        if token is None:
            raise AuthenticationFailed(_MISSING)
        master = self._master
        if master is not None and hmac.compare_digest(token, master):
            return MASTER
        return self.gateway.keys.authenticate(token)

    async def _deny(self, spec: RouteSpec, req: HttpRequest, caller: Caller) -> None:
        if spec.permission != INFERENCE:  # model calls refused to auditors are no admin action
            details = {"method": req.method, "path": req.path[:256], "role": caller.role}
            await self._record(spec, req, "denied", req.path, details)
        raise PermissionDenied(
            f"This API key ({caller.name}, role {caller.role}) may not "
            f"{describe(spec.permission)}; use a key whose role may (see docs/security.md)."
        )

    async def audited(self, spec: RouteSpec, req: HttpRequest) -> JsonResponse | SseResponse:
        """Run an audited route's handler and record the action with its outcome."""
        try:
            response = await spec.handler(self.gateway, req)
        except TurnoutError as exc:
            outcome = "denied" if isinstance(exc, PermissionDenied) else "error"
            details = {**(req.audit_details or {}), "error": exc.code, "status": exc.status}
            await self._record(spec, req, outcome, _target(spec, req), details)
            raise
        except Exception:
            await self._record(spec, req, "error", _target(spec, req), {"error": "internal"})
            raise
        await self._record(spec, req, "ok", _target(spec, req), req.audit_details)
        return response

    async def _record(
        self,
        spec: RouteSpec,
        req: HttpRequest,
        outcome: str,
        target: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        actor = req.caller.name if req.caller is not None else req.principal
        action = spec.audit or "access"
        event = AuditEvent(actor, action, target, outcome, req.request_id, details)
        await self.gateway.audit.record(event)


def _target(spec: RouteSpec, req: HttpRequest) -> str | None:
    """What the action was done to: the route's own note, else the path's last part
    (``/admin/models/NAME``), else the body's ``name``."""
    if req.audit_target is not None:
        return req.audit_target
    if spec.path.endswith("/*"):
        return req.path[len(spec.path) - 1 :]
    parsed = req.parsed
    if isinstance(parsed, dict) and isinstance(parsed.get("name"), str):
        return str(parsed["name"])
    return None


def bearer(value: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (None for other schemes)."""
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip() or None
