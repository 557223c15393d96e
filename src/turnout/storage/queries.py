"""Read queries over the stored data, for the admin API, the console and ``turnout advise``.

Off the request path by design: callers are admin views and reports, never a model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from turnout.storage.db import Database
from turnout.storage.models import RequestLog

__all__ = ["Usage", "recent_requests", "request_page", "usage_by_principal"]

MAX_LIMIT = 1000


async def recent_requests(
    database: Database,
    limit: int = 100,
    *,
    key_id: int | None = None,
    principal: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
) -> Sequence[RequestLog]:
    """The newest request-log rows first, at most ``limit`` (capped at 1000), optionally of
    one key (by id or by principal), one public model, or from ``since`` on.

    Raises StorageUnavailable when the database fails.
    """
    query = select(RequestLog).order_by(RequestLog.started_at.desc(), RequestLog.id.desc())
    if key_id is not None:
        query = query.where(RequestLog.key_id == key_id)
    if principal is not None:
        query = query.where(RequestLog.principal == principal)
    if model is not None:
        query = query.where(RequestLog.model == model)
    if since is not None:
        query = query.where(RequestLog.started_at >= since)
    query = query.limit(max(1, min(limit, MAX_LIMIT)))
    try:
        async with database.session() as session:
            return (await session.scalars(query)).all()
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc


async def request_page(
    database: Database,
    limit: int = 100,
    *,
    before_id: int | None = None,
    key_id: int | None = None,
    principal: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
) -> Sequence[RequestLog]:
    """A page of the request log, newest row first: the rows older than ``before_id`` (the
    last id of the previous page), optionally of one key, principal or model, from ``since``."""
    query = select(RequestLog).order_by(RequestLog.id.desc())
    if before_id is not None:
        query = query.where(RequestLog.id < before_id)
    query = _filtered(query, key_id, principal, model, since)
    query = query.limit(max(1, min(limit, MAX_LIMIT)))
    try:
        async with database.session() as session:
            return (await session.scalars(query)).all()
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc


def _filtered(
    query: Select[RequestLog],
    key_id: int | None,
    principal: str | None,
    model: str | None,
    since: datetime | None,
) -> Select[RequestLog]:
    if key_id is not None:
        query = query.where(RequestLog.key_id == key_id)
    if principal is not None:
        query = query.where(RequestLog.principal == principal)
    if model is not None:
        query = query.where(RequestLog.model == model)
    if since is not None:
        query = query.where(RequestLog.started_at >= since)
    return query


@dataclass(frozen=True, slots=True)
class Usage:
    """What one principal (an API key's prefix, "master") did, from the request log."""

    principal: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    #: US dollars, summed over the requests with a known price
    cost: float


async def usage_by_principal(
    database: Database, *, principal: str | None = None, since: datetime | None = None
) -> list[Usage]:
    """Requests, tokens and cost per principal (or of one), from ``since`` on."""
    errors = func.sum(case((RequestLog.status >= 400, 1), else_=0))
    query = select(
        RequestLog.principal,
        func.count(),
        func.coalesce(errors, 0),
        func.coalesce(func.sum(RequestLog.prompt_tokens), 0),
        func.coalesce(func.sum(RequestLog.completion_tokens), 0),
        func.coalesce(func.sum(RequestLog.cost), 0.0),
    ).group_by(RequestLog.principal)
    if principal is not None:
        query = query.where(RequestLog.principal == principal)
    if since is not None:
        query = query.where(RequestLog.started_at >= since)
    try:
        async with database.session() as session:
            rows = (await session.execute(query.order_by(RequestLog.principal))).all()
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc
    return [Usage(p, int(n), int(e), int(i), int(o), float(c)) for p, n, e, i, o, c in rows]
