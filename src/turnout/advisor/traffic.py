"""The traffic the gateway logged, read from the request log for ``turnout advise``.

Rows are streamed in batches and handed one by one to a sink (an aggregator), so a month of
traffic never sits in memory as rows; only the figures the analysis keeps per model do.
Embedding requests are left out: they generate no output tokens to compare.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from turnout.storage.db import Database
from turnout.storage.models import RequestLog

__all__ = ["LoggedRequest", "read_traffic"]

_BATCH = 5000
_COLUMNS = (
    RequestLog.started_at,
    RequestLog.model,
    RequestLog.backend,
    RequestLog.upstream_model,
    RequestLog.status,
    RequestLog.error_code,
    RequestLog.latency,
    RequestLog.ttft,
    RequestLog.prompt_tokens,
    RequestLog.completion_tokens,
    RequestLog.cost,
    RequestLog.privacy_categories,
)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """The columns of one request-log row that the analysis uses."""

    started_at: datetime
    model: str
    backend: str | None
    upstream_model: str | None
    status: int
    error_code: str | None
    latency: float
    ttft: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: US dollars, when the gateway priced the request itself
    cost: float | None = None
    privacy_categories: list[Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def deployment(self) -> str | None:
        return f"{self.backend}/{self.upstream_model}" if self.backend else None


async def read_traffic(
    database: Database,
    since: datetime,
    sink: Callable[[LoggedRequest], None],
    models: Collection[str] = (),
) -> int:
    """Feed every logged generation request from ``since`` on (of ``models``, when given) to
    ``sink``; returns how many. Raises StorageUnavailable when the database fails."""
    query = select(*_COLUMNS).where(
        RequestLog.started_at >= since, RequestLog.endpoint != "embedding"
    )
    if models:
        query = query.where(RequestLog.model.in_(list(models)))
    count = 0
    try:
        async with database.session() as session:
            rows = await session.stream(query.execution_options(yield_per=_BATCH))
            async for row in rows:
                sink(LoggedRequest(*row))
                count += 1
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc
    return count
