"""Helpers of the governance end-to-end tests: a gateway config, keys made through the admin
API with the master key, and requests sent with a given key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests import rawhttp
from tests.e2e.support import MASTER_KEY, Gateway, backend, deployment
from tests.fakes import FakeUpstream

NO_BODY: Any = object()


def keys_config(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """Models ``chat`` (gpt-4o-mini, priced), ``embed`` and ``other`` on the fake upstream."""
    return {
        "backends": {"fake": backend(upstream.base_url, "sk-fake-upstream-key")},
        "models": {
            "chat": deployment("fake", "gpt-4o-mini"),
            "embed": deployment("fake", "text-embedding-3-small"),
            "other": deployment("fake", "gpt-4o"),
        },
        **extra,
    }


def create_key(gw: Gateway, token: str = MASTER_KEY, **body: Any) -> dict[str, Any]:
    body.setdefault("owner", "e2e")
    resp = send(gw, token, "POST", "/admin/keys", body)
    assert resp.status == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def send(
    gw: Gateway,
    token: str | None,
    method: str,
    path: str,
    body: Any = NO_BODY,
    *,
    header: str = "authorization",
) -> rawhttp.RawResponse:
    """One request with ``token`` as a bearer token (or in ``x-api-key``); None: no key."""
    headers: dict[str, str] = {}
    if token is not None:
        headers = (
            {"x-api-key": token} if header == "x-api-key" else {"Authorization": f"Bearer {token}"}
        )
    if body is NO_BODY:
        return rawhttp.request(method, gw.url + path, headers=headers)
    return rawhttp.request(method, gw.url + path, json=body, headers=headers)


def eventually(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``check`` until it holds; the seconds it took. Fails after ``seconds``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started
