"""Admin reads for governance: the request log, usage and spend per key, the audit trail.

Pages run newest first; ``?before=ID`` (the ``next_before`` of the previous page) gives the
next one. A developer key reads its own requests and usage only: another key's prefix is
"not found". The audit trail has no write route: it is append-only for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import DeclarativeBase

from turnout.exceptions import NotFound
from turnout.gateway import Gateway
from turnout.policies.keys import Caller
from turnout.policies.roles import AUDIT_READ, LOGS_READ
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.query import Query
from turnout.server.routes import RouteSpec
from turnout.storage.audit import audit_page
from turnout.storage.queries import request_page, usage_by_principal

_MAX_ID = 2**62


def _caller(req: HttpRequest) -> Caller:
    assert req.caller is not None  # every route here needs a key
    return req.caller


def _principal(caller: Caller, asked: str | None) -> str | None:
    """Whose records to read: a developer key only ever its own."""
    if not caller.own_only:
        return asked
    if asked is not None and asked != caller.name:
        raise NotFound(f"No API key with prefix {asked[:40]!r}.", param="key")
    return caller.name


def _row(row: DeclarativeBase) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in row.__table__.columns.keys():  # noqa: SIM118 (names, not columns)
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _page(rows: Sequence[Any], limit: int) -> bytes:
    data = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    body = {
        "object": "list",
        "data": data,
        "has_more": more,
        "next_before": data[-1]["id"] if more else None,
    }
    return orjson.dumps(body)


async def list_requests(gw: Gateway, req: HttpRequest) -> JsonResponse:
    query = Query(req)
    limit = query.integer("limit", 100, 1, 1000) or 100
    rows = await request_page(
        gw.database,
        limit + 1,
        before_id=query.integer("before", None, 1, _MAX_ID),
        principal=_principal(_caller(req), query.text("key", 128)),
        model=query.text("model"),
        since=query.time("since"),
    )
    return JsonResponse(_page(rows, limit))


async def list_audit(gw: Gateway, req: HttpRequest) -> JsonResponse:
    query = Query(req)
    limit = query.integer("limit", 100, 1, 1000) or 100
    rows = await audit_page(
        gw.database,
        limit + 1,
        before_id=query.integer("before", None, 1, _MAX_ID),
        actor=query.text("actor", 128),
        action=query.text("action", 64),
        since=query.time("since"),
    )
    return JsonResponse(_page(rows, limit))


async def usage(gw: Gateway, req: HttpRequest) -> JsonResponse:
    """Per principal: requests, errors, tokens and cost from the request log (from
    ``?since=``), and for API keys their owner, role, budget and spend counter."""
    query = Query(req)
    principal = _principal(_caller(req), query.text("key", 128))
    logged = {
        u.principal: u
        for u in await usage_by_principal(
            gw.database, principal=principal, since=query.time("since")
        )
    }
    keys = {k.prefix: k for k in gw.keys.states() if principal in (None, k.prefix)}
    data = []
    for name in sorted(set(logged) | set(keys)):
        used, key = logged.get(name), keys.get(name)
        entry: dict[str, Any] = {
            "principal": name,
            "requests": used.requests if used else 0,
            "errors": used.errors if used else 0,
            "prompt_tokens": used.prompt_tokens if used else 0,
            "completion_tokens": used.completion_tokens if used else 0,
            "cost": used.cost if used else 0.0,
        }
        if key is not None:
            entry.update(
                owner=key.owner,
                role=key.role,
                status=key.status(),
                budget=key.budget,
                spent=key.total_spent,
            )
        data.append(entry)
    return JsonResponse(orjson.dumps({"object": "list", "data": data}))


ROUTES = (
    RouteSpec("GET", "/admin/requests", list_requests, permission=LOGS_READ),
    RouteSpec("GET", "/admin/usage", usage, permission=LOGS_READ),
    RouteSpec("GET", "/admin/audit", list_audit, permission=AUDIT_READ),
)
