"""The role × route permission table of docs/security.md is what the running gateway does.

The table is the source of truth: it must list every registered route with the permission
the route declares, its cells must be what the roles hold, and every route is called on a
real gateway with a key of every role, with no key and with a wrong key. A route added
without a row (or without a declared permission) fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.governance import NO_BODY, create_key, keys_config, send
from tests.e2e.support import CHAT_BODY, MASTER_KEY, Gateway, run_gateway
from tests.fakes import FakeUpstream
from turnout.policies.roles import KEYS_READ, LOGS_READ, OWN_ONLY, PUBLIC, ROLES
from turnout.server.routes import RouteSpec, all_routes

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROLE_NAMES = ("admin", "developer", "auditor")
NOBODY = "tk_000000000000"  # a well-formed prefix no key has

#: a body each route accepts far enough to pass the permission check
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/chat/completions"): CHAT_BODY,
    ("POST", "/v1/completions"): {"model": "chat", "prompt": "hi"},
    ("POST", "/v1/embeddings"): {"model": "embed", "input": "hi"},
    ("POST", "/api/v1/predict"): {"input": "hi", "model": "chat"},
    ("POST", "/admin/models"): {"name": "walked", "path": "/nowhere"},
    ("PATCH", "/admin/routes/*"): {"weights": {"fake/gpt-4o-mini": 1}},
    ("POST", "/admin/keys"): {"owner": "walked"},
    ("PATCH", "/admin/keys/*"): {"owner": "walked"},
}


def table() -> dict[tuple[str, str], list[str]]:
    """(method, route path with ``*``) -> [permission, admin, developer, auditor]."""
    rows: dict[tuple[str, str], list[str]] = {}
    for line in SECURITY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5 and " /" in cells[0]:
            method, _, path = cells[0].partition(" ")
            rows[(method, re.sub(r"\{[^}]+\}.*$", "*", path))] = cells[1:]
    return rows


def expected_cell(spec: RouteSpec, role: str) -> str:
    if spec.permission not in ROLES[role]:
        return "no"
    own = role in OWN_ONLY and spec.permission in (KEYS_READ, LOGS_READ)
    return "own" if own else "yes"


def test_every_route_declares_a_permission_and_has_its_row() -> None:
    rows = table()
    routes = {(s.method, s.path): s for s in all_routes()}
    assert set(rows) == set(routes), set(rows) ^ set(routes)
    for key, spec in routes.items():
        permission, *cells = rows[key]
        assert permission == spec.permission, key
        assert cells == [expected_cell(spec, role) for role in ROLE_NAMES], key


def test_a_route_without_a_permission_cannot_be_declared() -> None:
    async def handler(gw: Any, req: Any) -> Any:
        raise AssertionError

    with pytest.raises(TypeError, match="permission"):
        RouteSpec("GET", "/admin/new", handler)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown permission"):
        RouteSpec("GET", "/admin/new", handler, permission="everything")


@pytest.fixture(scope="module")
def walked(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, dict[str, dict[str, Any]]]]:
    workdir = tmp_path_factory.mktemp("permissions")
    with run_gateway(workdir, config=keys_config(upstream_server)) as gw:
        keys = {role: create_key(gw, role=role, owner=f"walk-{role}") for role in ROLE_NAMES}
        yield gw, keys


def concrete(spec: RouteSpec, own_prefix: str) -> str:
    """A path for the route: a model for model routes, the caller's own key prefix for key
    reads (a write goes to a prefix nobody has)."""
    if not spec.path.endswith("/*"):
        return spec.path
    base = spec.path[:-1]
    if base == "/admin/keys/":
        prefix = own_prefix if spec.method == "GET" else NOBODY
        return base + prefix + ("/rotate" if spec.method == "POST" else "")
    return base + ("chat" if "/routes/" in base or "/v1/" in base else "nowhere")


def call(gw: Gateway, token: str | None, spec: RouteSpec, own_prefix: str) -> Any:
    body = BODIES.get((spec.method, spec.path), NO_BODY)
    return send(gw, token, spec.method, concrete(spec, own_prefix), body)


@pytest.mark.parametrize("spec", all_routes(), ids=lambda s: f"{s.method} {s.path}")
def test_every_route_with_every_role(
    walked: tuple[Gateway, dict[str, dict[str, Any]]], spec: RouteSpec
) -> None:
    gw, keys = walked
    cells = dict(zip(ROLE_NAMES, table()[(spec.method, spec.path)][1:], strict=True))
    for role, key in keys.items():
        resp = call(gw, key["key"], spec, key["prefix"])
        if cells[role] == "no":
            assert resp.status == 403, (role, resp.status, resp.text)
            assert resp.json()["error"]["code"] == "permission_denied"
        else:
            assert resp.status not in (401, 403), (role, resp.status, resp.text)
            assert resp.status < 500, (role, resp.status, resp.text)
    master = call(gw, MASTER_KEY, spec, NOBODY)
    assert master.status not in (401, 403), master.text
    for token in (None, "tk_000000000000_wrong", "sk-test-master-not"):
        resp = call(gw, token, spec, NOBODY)
        if spec.permission == PUBLIC:
            assert resp.status == 200, resp.text
        else:
            assert resp.status == 401, (token, resp.status, resp.text)
            assert resp.json()["error"]["code"] == "invalid_api_key"


def test_own_means_own(walked: tuple[Gateway, dict[str, dict[str, Any]]]) -> None:
    gw, keys = walked
    dev, other = keys["developer"], create_key(gw, role="developer", owner="someone-else")
    listed = send(gw, dev["key"], "GET", "/admin/keys").json()["data"]
    assert [k["prefix"] for k in listed] == [dev["prefix"]]
    for path in (f"/admin/keys/{other['prefix']}", f"/admin/keys/{keys['admin']['prefix']}"):
        resp = send(gw, dev["key"], "GET", path)
        assert resp.status == 404 and resp.json()["error"]["code"] == "not_found", resp.text
    for path in (f"/admin/requests?key={other['prefix']}", f"/admin/usage?key={other['prefix']}"):
        assert send(gw, dev["key"], "GET", path).status == 404
    usage = send(gw, dev["key"], "GET", "/admin/usage").json()["data"]
    assert {u["principal"] for u in usage} <= {dev["prefix"]}
    auditor_view = send(gw, keys["auditor"]["key"], "GET", "/admin/keys").json()["data"]
    assert {dev["prefix"], other["prefix"]} <= {k["prefix"] for k in auditor_view}


def test_refused_admin_attempts_are_audited(
    walked: tuple[Gateway, dict[str, dict[str, Any]]],
) -> None:
    gw, keys = walked
    dev = keys["developer"]
    assert (
        send(gw, dev["key"], "POST", "/admin/keys", {"owner": "x", "role": "admin"}).status == 403
    )
    entries = send(gw, keys["auditor"]["key"], "GET", f"/admin/audit?actor={dev['prefix']}")
    assert entries.status == 200, entries.text
    denied = [e for e in entries.json()["data"] if e["action"] == "key.create"]
    assert denied and denied[0]["outcome"] == "denied"
    assert denied[0]["details"]["role"] == "developer" and denied[0]["request_id"]
