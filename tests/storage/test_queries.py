"""The read queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from tests.storage.support import make_record
from turnout.exceptions import StorageUnavailable
from turnout.storage.db import Database, parse_url
from turnout.storage.models import RequestLog
from turnout.storage.queries import recent_requests
from turnout.storage.writer import record_row


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = Database(parse_url(db_url))
    await database.migrate()
    rows = [
        {**record_row(make_record(i, model="chat" if i % 2 else "embed")), "key_id": i % 3}
        for i in range(30)
    ]
    async with database.engine.begin() as conn:
        await conn.execute(insert(RequestLog), rows)
    yield database
    await database.aclose()


async def test_recent_requests_newest_first(database: Database) -> None:
    rows = await recent_requests(database, 5)
    assert [r.request_id for r in rows] == [f"req_{i:06d}" for i in (29, 28, 27, 26, 25)]
    assert rows[0].started_at == datetime.fromtimestamp(1_700_000_029, UTC)


async def test_recent_requests_filters(database: Database) -> None:
    of_key = await recent_requests(database, 100, key_id=1)
    assert [r.request_id for r in of_key][:3] == ["req_000028", "req_000025", "req_000022"]
    assert len(of_key) == 10
    chat_of_key = await recent_requests(database, 100, key_id=1, model="chat")
    assert {int(r.request_id[4:]) % 2 for r in chat_of_key} == {1}
    since = datetime.fromtimestamp(1_700_000_027, UTC)
    assert len(await recent_requests(database, 100, since=since)) == 3
    assert await recent_requests(database, 100, principal="tk_nobody") == []
    assert len(await recent_requests(database, 0)) == 1  # at least one


async def test_a_failing_database_raises_storage_unavailable(unused_tcp_port: int) -> None:
    database = Database(parse_url(f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/x"))
    with pytest.raises(StorageUnavailable, match="is unavailable"):
        await recent_requests(database)
    await database.aclose()
