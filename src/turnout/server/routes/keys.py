"""Admin API for API keys: list, create, show, change, revoke, rotate (turnout.services.keys).

The secret key is in the answer of a create or a rotate only (``"key"``), sent with
``Cache-Control: no-store``; nothing else ever shows it. Developer keys see only themselves.
"""

from __future__ import annotations

from typing import Any

import orjson

from turnout.exceptions import UnknownURL
from turnout.gateway import Gateway
from turnout.policies.keys import Caller
from turnout.policies.roles import KEYS_READ, KEYS_WRITE
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.query import Query
from turnout.server.routes import RouteSpec

_BASE = "/admin/keys/"
_NO_STORE = [(b"cache-control", b"no-store")]
#: the settings recorded in the audit trail (never the key or its hash)
_AUDITED = ("role", "owner", "expires_at", "allowed_models", "limits", "budget")


def _caller(req: HttpRequest) -> Caller:
    assert req.caller is not None  # every route here needs a key
    return req.caller


def _prefix(req: HttpRequest, suffix: str = "") -> str:
    """The key prefix in ``/admin/keys/{prefix}{suffix}``; UnknownURL for other paths."""
    rest = req.path.removeprefix(_BASE)
    prefix = rest.removesuffix(suffix) if suffix else rest
    if not prefix or "/" in prefix or (suffix and not rest.endswith(suffix)):
        raise UnknownURL(
            f"Unknown request URL: {req.method} {req.path[:200]}. Keys live at "
            "/admin/keys/{prefix} (GET, PATCH, DELETE) and /admin/keys/{prefix}/rotate (POST)."
        )
    req.audit_target = prefix[:64]
    return prefix


def _settings(view: dict[str, Any]) -> dict[str, Any]:
    return {name: view[name] for name in _AUDITED}


async def list_keys(gw: Gateway, req: HttpRequest) -> JsonResponse:
    query = Query(req)
    data = await gw.key_service.list(
        _caller(req),
        limit=query.integer("limit", 100, 1, 1000) or 100,
        after_id=query.integer("after", None, 0, 2**62),
        owner=query.text("owner"),
        role=query.text("role", 16),
    )
    return JsonResponse(orjson.dumps({"object": "list", "data": data}))


async def create_key(gw: Gateway, req: HttpRequest) -> JsonResponse:
    secret, view = await gw.key_service.create(_caller(req), req.parsed)
    req.audit_target, req.audit_details = view["prefix"], _settings(view)
    return JsonResponse(orjson.dumps({"key": secret, **view}), 201, list(_NO_STORE))


async def show_key(gw: Gateway, req: HttpRequest) -> JsonResponse:
    view = await gw.key_service.show(_caller(req), _prefix(req))
    return JsonResponse(orjson.dumps(view))


async def update_key(gw: Gateway, req: HttpRequest) -> JsonResponse:
    prefix = _prefix(req)
    if isinstance(req.parsed, dict):
        req.audit_details = {"changed": sorted(map(str, req.parsed))[:20]}
    view = await gw.key_service.update(_caller(req), prefix, req.parsed)
    req.audit_details = {"changed": sorted(req.parsed), **_settings(view)}
    return JsonResponse(orjson.dumps(view))


async def revoke_key(gw: Gateway, req: HttpRequest) -> JsonResponse:
    view = await gw.key_service.revoke(_caller(req), _prefix(req))
    return JsonResponse(orjson.dumps(view))


async def rotate_key(gw: Gateway, req: HttpRequest) -> JsonResponse:
    secret, view = await gw.key_service.rotate(_caller(req), _prefix(req, "/rotate"))
    return JsonResponse(orjson.dumps({"key": secret, **view}), headers=list(_NO_STORE))


ROUTES = (
    RouteSpec("GET", "/admin/keys", list_keys, permission=KEYS_READ),
    RouteSpec(
        "POST", "/admin/keys", create_key, body=True, permission=KEYS_WRITE, audit="key.create"
    ),
    RouteSpec("GET", "/admin/keys/*", show_key, permission=KEYS_READ),
    RouteSpec(
        "PATCH", "/admin/keys/*", update_key, body=True, permission=KEYS_WRITE, audit="key.update"
    ),
    RouteSpec("DELETE", "/admin/keys/*", revoke_key, permission=KEYS_WRITE, audit="key.revoke"),
    RouteSpec("POST", "/admin/keys/*", rotate_key, permission=KEYS_WRITE, audit="key.rotate"),
)
