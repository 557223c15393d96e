"""API key authentication in process (the ASGI app over a real gateway on SQLite): one check
for both headers, malicious tokens refused alike from memory without any SQL, revoked and
expired keys, rotation, and keys stored only as their hash."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.asgi import AsgiResponse, asgi_request, bearer
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.policies.keys import MAX_TOKEN_BYTES, ApiKeyState, KeyRing, hash_token, new_key
from turnout.server.app import TurnoutApp
from turnout.storage.models import ApiKey

MASTER = "sk-unit-master"
INCORRECT = "Incorrect API key provided."


@pytest.fixture
async def gateway(isolated: Path) -> AsyncIterator[Gateway]:
    config = Config.model_validate(
        {
            "server": {"data_dir": str(isolated / "data"), "master_key": MASTER},
            "local": {"demo": False},
        }
    )
    gateway = Gateway(config)
    await gateway.start()
    yield gateway
    await gateway.aclose()


@pytest.fixture
def app(gateway: Gateway) -> TurnoutApp:
    return TurnoutApp(gateway, manage_gateway=False)


async def create(app: TurnoutApp, **body: Any) -> dict[str, Any]:
    resp = await asgi_request(
        app, "POST", "/admin/keys", headers=bearer(MASTER), json_body={"owner": "unit", **body}
    )
    assert resp.status == 201, resp.body
    assert resp.headers["cache-control"] == "no-store"
    data: dict[str, Any] = resp.json()
    return data


async def models(app: TurnoutApp, token: bytes, header: str) -> AsgiResponse:
    headers = bearer(token) if header == "bearer" else [(b"x-api-key", token)]
    return await asgi_request(app, "GET", "/v1/models", headers=headers)


def malicious_tokens(real: str) -> dict[str, bytes]:
    return {
        "sql-or": b"' OR '1'='1",
        "sql-drop": b"tk_000000000000_x'; DROP TABLE api_keys; --",
        "sql-union": real[:16].encode() + b"' UNION SELECT hash FROM api_keys --",
        "nul-bytes": b"tk_\x00\x00\x00",
        "nul-after-key": real.encode() + b"\x00",
        "10kB": b"A" * 10_240,
        "10kB-key-prefix": real.encode() + b"A" * 10_240,
        "just-over-the-cap": b"t" * (MAX_TOKEN_BYTES + 1),
        "non-ascii": "ключ-🔑-κλειδί".encode(),
        "latin-1": "clé-ñ".encode("latin-1"),
        "key-uppercase": real.upper().encode(),
        "key-minus-one": real[:-1].encode(),
        "key-prefix-only": real[:15].encode(),
        "percent-encoded": b"%27%20OR%201%3D1",
        "json": b'{"$ne": null}',
    }


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
async def test_malicious_tokens_get_the_same_401_and_no_sql(
    app: TurnoutApp, gateway: Gateway, header: str
) -> None:
    real = (await create(app))["key"]
    statements: list[str] = []
    engine = gateway.database.engine.sync_engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        bodies = set()
        for name, token in malicious_tokens(real).items():
            resp = await models(app, token, header)
            assert resp.status == 401, (name, resp.body)
            bodies.add(resp.body)
        assert statements == []  # decided in memory: nothing reached the database
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(bodies) == 1
    error = AsgiResponse(body=bodies.pop()).json()["error"]
    assert error == {
        "message": INCORRECT,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert (await models(app, real.encode(), header)).status == 200  # nothing was broken


async def test_bearer_and_x_api_key_get_exactly_the_same_checks(app: TurnoutApp) -> None:
    live = (await create(app))["key"]
    revoked = await create(app)
    gone = await asgi_request(
        app, "DELETE", f"/admin/keys/{revoked['prefix']}", headers=bearer(MASTER)
    )
    assert gone.status == 200 and gone.json()["status"] == "revoked"
    auditor = (await create(app, role="auditor"))["key"]
    for token in (live, revoked["key"], auditor, "tk_wrong", MASTER):
        via_bearer = await models(app, token.encode(), "bearer")
        via_header = await models(app, token.encode(), "x-api-key")
        assert via_bearer.status == via_header.status, token
        assert via_bearer.body == via_header.body, token
    assert (await models(app, auditor.encode(), "x-api-key")).status == 403
    assert (await models(app, revoked["key"].encode(), "bearer")).json()["error"]["message"] == (
        f"The API key {revoked['prefix']} was revoked; ask an admin for a new one."
    )


async def test_a_revoked_key_is_refused_at_once_and_a_rotated_one_too(app: TurnoutApp) -> None:
    key = await create(app)
    assert (await models(app, key["key"].encode(), "bearer")).status == 200
    rotated = await asgi_request(
        app, "POST", f"/admin/keys/{key['prefix']}/rotate", headers=bearer(MASTER)
    )
    assert rotated.status == 200
    new = rotated.json()["key"]
    assert new.startswith(key["prefix"] + "_") and new != key["key"]
    assert (await models(app, key["key"].encode(), "bearer")).status == 401
    assert (await models(app, new.encode(), "bearer")).status == 200
    await asgi_request(app, "DELETE", f"/admin/keys/{key['prefix']}", headers=bearer(MASTER))
    refused = await models(app, new.encode(), "bearer")
    assert refused.status == 401 and "revoked" in refused.json()["error"]["message"]


async def test_an_expired_key_is_refused(app: TurnoutApp, gateway: Gateway) -> None:
    key = await create(app, expires_at="2999-01-01T00:00:00Z")
    assert (await models(app, key["key"].encode(), "bearer")).status == 200
    past = await asgi_request(
        app,
        "PATCH",
        f"/admin/keys/{key['prefix']}",
        headers=bearer(MASTER),
        json_body={"expires_at": "2001-01-01T00:00:00Z"},
    )
    assert past.status == 200 and past.json()["status"] == "expired"
    refused = await models(app, key["key"].encode(), "bearer")
    assert refused.status == 401
    assert "expired at 2001-01-01T00:00:00+00:00" in refused.json()["error"]["message"]


async def test_only_the_hash_is_stored(app: TurnoutApp, gateway: Gateway) -> None:
    key = await create(app)
    secret = key["key"]
    assert secret.startswith("tk_") and len(secret) == 59
    async with gateway.database.session() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.prefix == key["prefix"]))
    assert row is not None
    assert row.hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = " ".join(str(getattr(row, c)) for c in ApiKey.__table__.columns.keys())  # noqa: SIM118
    assert secret[16:] not in stored
    listed = await asgi_request(app, "GET", "/admin/keys", headers=bearer(MASTER))
    assert secret[16:] not in listed.body.decode() and row.hash not in listed.body.decode()


def state(key_id: int, token: str, **fields: Any) -> ApiKeyState:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return ApiKeyState(
        key_id, token[:15], hash_token(token.encode()), "developer", "o", now, now, **fields
    )


def test_the_ring_updates_keys_in_place() -> None:
    ring = KeyRing()
    token, _ = new_key("tk_0123456789ab")
    held = ring.put(state(1, token))
    held.charge(0.5)
    rotated, _ = new_key("tk_0123456789ab")
    again = ring.put(state(1, rotated, budget=1.0))
    assert again is held and held.unsaved == 0.5 and held.budget == 1.0  # in flight: same object
    assert ring.authenticate(rotated.encode()).key is held
    with pytest.raises(Exception, match="Incorrect"):
        ring.authenticate(token.encode())
    assert len(ring) == 1
