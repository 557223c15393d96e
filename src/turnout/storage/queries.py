"""Read queries over the stored data, for the admin API, the console and ``turnout advise``.

Off the request path by design: callers are admin views and reports, never a model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from turnout.storage.db import Database
from turnout.storage.models import RequestLog

__all__ = ["recent_requests"]

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
