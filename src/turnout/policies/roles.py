"""Roles and permissions: what each kind of API key may do.

Every route declares the one permission it needs (``RouteSpec.permission``); a role is the
set of permissions it holds. The server checks ``spec.permission in caller.permissions`` for
every request, in one place (``turnout.server.access``). ``docs/security.md`` shows the
resulting route × role table, and a test walks every route with every role against it.

- ``admin``: everything (keys, models, routes, logs, audit, inference);
- ``developer``: inference, and reading its *own* key, requests and usage only;
- ``auditor``: read-only: keys (never a secret), models and routes, request logs, usage and
  the audit trail; no inference, no writes.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "AUDIT_READ",
    "CONFIG_READ",
    "CONFIG_WRITE",
    "INFERENCE",
    "KEYS_READ",
    "KEYS_WRITE",
    "LOGS_READ",
    "OWN_ONLY",
    "PERMISSIONS",
    "PUBLIC",
    "ROLES",
    "Role",
    "describe",
]

Role = Literal["admin", "developer", "auditor"]

#: no key needed (health, readiness, metrics)
PUBLIC: Final = "public"
#: model calls: chat, completions, embeddings, predict, the model list
INFERENCE: Final = "inference"
#: read API keys (their settings and spend; never a secret or a hash)
KEYS_READ: Final = "keys.read"
#: create, change, revoke and rotate API keys
KEYS_WRITE: Final = "keys.write"
#: read local models and routes (weights, privacy policies, routing events)
CONFIG_READ: Final = "config.read"
#: deploy and unload local models, change route weights
CONFIG_WRITE: Final = "config.write"
#: read the request log and usage
LOGS_READ: Final = "logs.read"
#: read the audit trail of admin actions
AUDIT_READ: Final = "audit.read"

#: every permission a route may declare, with what it allows (for messages and docs)
PERMISSIONS: Final[dict[str, str]] = {
    PUBLIC: "call this without a key",
    INFERENCE: "call models",
    KEYS_READ: "read API keys",
    KEYS_WRITE: "create, change, revoke or rotate API keys",
    CONFIG_READ: "read models and routes",
    CONFIG_WRITE: "deploy or unload models or change routes",
    LOGS_READ: "read the request log and usage",
    AUDIT_READ: "read the audit trail",
}

ROLES: Final[dict[str, frozenset[str]]] = {
    "admin": frozenset(PERMISSIONS),
    "developer": frozenset({PUBLIC, INFERENCE, KEYS_READ, LOGS_READ}),
    "auditor": frozenset({PUBLIC, KEYS_READ, CONFIG_READ, LOGS_READ, AUDIT_READ}),
}

#: roles whose reads are limited to their own key, requests and usage
OWN_ONLY: Final = frozenset({"developer"})


def describe(permission: str) -> str:
    return PERMISSIONS.get(permission, permission)
