"""The ``audit_log`` table: append and read, nothing else.

There is no function here (nor anywhere in turnout) that updates or deletes a row, and the
database refuses both: migration 0002 installs triggers that abort any ``UPDATE`` or
``DELETE`` on ``audit_log`` (and ``TRUNCATE`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from turnout.storage.db import Database
from turnout.storage.models import AuditEntry

__all__ = ["AuditEvent", "append", "audit_page"]


@dataclass(slots=True)
class AuditEvent:
    """One admin action, as it is written."""

    actor: str
    action: str
    target: str | None
    outcome: str
    request_id: str | None = None
    details: dict[str, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor[:128],
            "action": self.action[:64],
            "target": None if self.target is None else self.target[:256],
            "outcome": self.outcome,
            "request_id": self.request_id,
            "details": self.details,
        }


async def append(database: Database, events: Sequence[AuditEvent]) -> None:
    """Write ``events`` in one transaction; StorageUnavailable when the database fails."""
    if not events:
        return
    try:
        async with database.engine.begin() as conn:
            await conn.execute(insert(AuditEntry), [e.row() for e in events])
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc


async def audit_page(
    database: Database,
    limit: int = 100,
    *,
    before_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> Sequence[AuditEntry]:
    """The newest entries first, older than ``before_id`` when given (the next page)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    try:
        async with database.session() as session:
            return (await session.scalars(query)).all()
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc
