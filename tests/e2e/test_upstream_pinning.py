"""No request field, header or model name can send the gateway to another upstream.

The gateway sits in front of the fake upstream ``fake`` (and the same fake as an Azure
deployment backend); a second fake, the decoy, must receive nothing, whatever the requests
say. Every request the real upstream received went to a configured path, with the configured
Host header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import rawhttp
from tests.e2e.support import UPSTREAM_KEY, Gateway, backend, deployment, run_gateway
from tests.fakes import FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def decoy() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def pinned(
    upstream_server: FakeUpstream, decoy: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    azure = {
        **backend(upstream_server.url, "env:FAKE_UPSTREAM_KEY"),
        "preset": "azure",
        "api_version": "2024-10-21",
    }
    config = {
        "backends": {
            "fake": backend(upstream_server.base_url, "env:FAKE_UPSTREAM_KEY"),
            "azure": azure,
        },
        "models": {
            "chat": deployment("fake", "gpt-4o-mini"),
            "embed": deployment("fake", "text-embedding-3-small"),
        },
    }
    workdir = tmp_path_factory.mktemp("pinned")
    with run_gateway(workdir, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _nothing_reaches_the_decoy(
    decoy: FakeUpstream, upstream: FakeUpstream
) -> Iterator[FakeUpstream]:
    decoy.reset()
    yield decoy
    assert decoy.requests == [], "a request reached the decoy upstream"
    host = f"127.0.0.1:{upstream.port}"
    for rec in upstream.requests:
        assert rec.headers["host"] == host, rec.headers
        assert rec.path in ("/v1/chat/completions", "/v1/embeddings") or rec.path.startswith(
            "/openai/deployments/"
        ), rec.path


def redirecting_fields(decoy: FakeUpstream) -> dict[str, Any]:
    """What SDKs and other gateways use to pick an upstream, all pointing at the decoy."""
    url = decoy.base_url
    return {
        "base_url": url,
        "api_base": url,
        "baseURL": url,
        "url": url,
        "endpoint": url,
        "api_key": "sk-decoy",
        "extra_headers": {"Host": f"127.0.0.1:{decoy.port}"},
        "extra_query": {"url": url},
        "litellm_params": {"api_base": url},
    }


def redirecting_headers(decoy: FakeUpstream) -> dict[str, str]:
    where = f"127.0.0.1:{decoy.port}"
    return {
        "Host": where,  # a loopback name: the trusted-hosts check lets it through
        "X-Forwarded-Host": where,
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Port": str(decoy.port),
        "Forwarded": f"host={where};proto=http",
        "X-Original-URL": decoy.base_url + "/chat/completions",
        "X-Rewrite-URL": decoy.base_url + "/chat/completions",
        "X-Forwarded-Prefix": decoy.base_url,
        "X-Upstream": decoy.base_url,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_body_fields_and_headers_do_not_move_the_upstream(
    pinned: Gateway, decoy: FakeUpstream, upstream: FakeUpstream, stream: bool
) -> None:
    body = {"model": "chat", "messages": MESSAGES, "stream": stream, **redirecting_fields(decoy)}
    resp = pinned.post("/v1/chat/completions", body, headers=redirecting_headers(decoy))
    assert resp.status == 200, resp.text
    (rec,) = upstream.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.authorization == f"Bearer {UPSTREAM_KEY}"  # not the body's api_key
    assert rec.json["base_url"] == decoy.base_url  # passed on as data, never used as a setting
    for name in ("x-forwarded-host", "forwarded", "x-original-url", "x-upstream"):
        assert name not in rec.headers


def test_embeddings_too(pinned: Gateway, decoy: FakeUpstream, upstream: FakeUpstream) -> None:
    body = {"model": "embed", "input": "x", **redirecting_fields(decoy)}
    resp = pinned.post("/v1/embeddings", body, headers=redirecting_headers(decoy))
    assert resp.status == 200, resp.text
    assert [r.path for r in upstream.requests] == ["/v1/embeddings"]


@pytest.mark.parametrize(
    "model",
    [
        "fake/http://127.0.0.1:{decoy}/v1",
        "fake/../../../v1/chat/completions?x=",
        "fake/@127.0.0.1:{decoy}",
        "fake/\r\nHost: 127.0.0.1:{decoy}",
    ],
)
def test_passthrough_names_travel_only_in_the_body(
    pinned: Gateway, decoy: FakeUpstream, upstream: FakeUpstream, model: str
) -> None:
    name = model.format(decoy=decoy.port)
    resp = pinned.post("/v1/chat/completions", {"model": name, "messages": MESSAGES})
    (rec,) = upstream.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.json["model"] == name.removeprefix("fake/")
    assert resp.status in (200, 404), resp.text  # the fake may not know the model


@pytest.mark.parametrize(
    "model", ["http://127.0.0.1:{decoy}/v1", "127.0.0.1:{decoy}/gpt-4o", "decoy/gpt-4o"]
)
def test_urls_as_model_names_are_unknown_models(
    pinned: Gateway, decoy: FakeUpstream, upstream: FakeUpstream, model: str
) -> None:
    name = model.format(decoy=decoy.port)
    resp = pinned.post("/v1/chat/completions", {"model": name, "messages": MESSAGES})
    assert resp.status == 404 and resp.json()["error"]["code"] == "model_not_found"
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("model", "segment"),
    [
        ("gpt-4o", "gpt-4o"),
        (
            "../../../v1/chat/completions?api-version=x#",
            "..%2F..%2F..%2Fv1%2Fchat%2Fcompletions%3Fapi-version%3Dx%23",
        ),
        ("http://127.0.0.1:{decoy}/v1", "http%3A%2F%2F127.0.0.1%3A{decoy}%2Fv1"),
        ("a b/..;x=1&y", "a%20b%2F..%3Bx%3D1%26y"),
    ],
)
def test_azure_deployment_names_stay_one_path_segment(
    pinned: Gateway, decoy: FakeUpstream, upstream: FakeUpstream, model: str, segment: str
) -> None:
    name = "azure/" + model.format(decoy=decoy.port)
    pinned.post("/v1/chat/completions", {"model": name, "messages": MESSAGES})
    (rec,) = upstream.requests
    segment = segment.format(decoy=decoy.port)
    assert rec.target == f"/openai/deployments/{segment}/chat/completions?api-version=2024-10-21"
    assert rec.query == {"api-version": "2024-10-21"}


@pytest.mark.parametrize("model", ["azure/..", "azure/."])
def test_dot_segments_are_refused(pinned: Gateway, upstream: FakeUpstream, model: str) -> None:
    resp = pinned.post("/v1/chat/completions", {"model": model, "messages": MESSAGES})
    assert resp.status == 400, resp.text
    assert "cannot name an Azure deployment" in resp.json()["error"]["message"]
    assert upstream.requests == []


def test_the_raw_request_target_cannot_be_absolute(pinned: Gateway, decoy: FakeUpstream) -> None:
    """An absolute-form request target (proxy style) is just an unknown path."""
    resp = rawhttp.request(
        "GET", pinned.url + f"/http://127.0.0.1:{decoy.port}/v1/models", headers={}
    )
    assert resp.status in (401, 404)
