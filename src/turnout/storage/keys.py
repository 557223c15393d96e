"""The ``api_keys`` table: create, read, change, and the polling that keeps replicas current.

Every change sets ``updated_at``, so that other processes find it with :func:`changed_since`.
Spend is added with ``spent = spent + delta`` in the database, so that replicas writing at
once never overwrite each other. Every statement is parameterised; failures raise
:class:`~turnout.exceptions.StorageUnavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Double, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from turnout.storage.db import Database
from turnout.storage.models import ApiKey, UTCDateTime

__all__ = [
    "DuplicatePrefix",
    "add_spent",
    "all_keys",
    "changed_since",
    "insert_key",
    "key_by_prefix",
    "list_keys",
    "update_key",
]

T = TypeVar("T")


class DuplicatePrefix(Exception):
    """The random prefix is taken already (the caller draws another)."""


async def _run(database: Database, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    try:
        async with database.session() as session, session.begin():
            return await work(session)
    except IntegrityError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        raise database.unavailable(exc) from exc


async def insert_key(database: Database, **values: Any) -> ApiKey:
    """A new row (``spent`` 0, ``created_at`` = ``updated_at`` = now); DuplicatePrefix when
    the prefix exists already."""
    now = datetime.now(UTC)
    row = ApiKey(created_at=now, updated_at=now, spent=0.0, **values)

    async def work(session: AsyncSession) -> ApiKey:
        session.add(row)
        await session.flush()
        return row

    try:
        return await _run(database, work)
    except IntegrityError as exc:
        raise DuplicatePrefix(values.get("prefix")) from exc


async def key_by_prefix(database: Database, prefix: str) -> ApiKey | None:
    async def work(session: AsyncSession) -> ApiKey | None:
        return await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))

    return await _run(database, work)


async def list_keys(
    database: Database,
    *,
    limit: int = 100,
    after_id: int | None = None,
    owner: str | None = None,
    role: str | None = None,
) -> Sequence[ApiKey]:
    """Keys in the order they were created, from ``after_id`` on (exclusive)."""
    query = select(ApiKey).order_by(ApiKey.id).limit(limit)
    if after_id is not None:
        query = query.where(ApiKey.id > after_id)
    if owner is not None:
        query = query.where(ApiKey.owner == owner)
    if role is not None:
        query = query.where(ApiKey.role == role)

    async def work(session: AsyncSession) -> Sequence[ApiKey]:
        return (await session.scalars(query)).all()

    return await _run(database, work)


async def update_key(database: Database, key_id: int, **values: Any) -> ApiKey:
    """Change a key's columns (``updated_at`` set to now); returns the new row."""
    values["updated_at"] = datetime.now(UTC)

    async def work(session: AsyncSession) -> ApiKey:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))
        row = await session.get(ApiKey, key_id, populate_existing=True)
        assert row is not None, key_id
        return row

    return await _run(database, work)


async def all_keys(database: Database) -> Sequence[ApiKey]:
    async def work(session: AsyncSession) -> Sequence[ApiKey]:
        return (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()

    return await _run(database, work)


async def changed_since(database: Database, since: datetime) -> Sequence[ApiKey]:
    """Keys whose row changed after ``since`` (by ``updated_at``)."""
    query = select(ApiKey).where(ApiKey.updated_at > since).order_by(ApiKey.updated_at)

    async def work(session: AsyncSession) -> Sequence[ApiKey]:
        return (await session.scalars(query)).all()

    return await _run(database, work)


_TABLE = ApiKey.__table__
assert isinstance(_TABLE, Table)
_ADD_SPENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("key_id"))
    .values(
        spent=_TABLE.c.spent + bindparam("delta", type_=Double()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)


async def add_spent(database: Database, deltas: dict[int, float]) -> None:
    """Add each key's ``delta`` dollars to its ``spent``, in one transaction."""
    if not deltas:
        return
    now = datetime.now(UTC)
    rows = [{"key_id": k, "delta": d, "now": now} for k, d in deltas.items()]

    async def work(session: AsyncSession) -> None:
        connection = await session.connection()
        await connection.execute(_ADD_SPENT, rows)

    await _run(database, work)
