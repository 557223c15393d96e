"""turnout.http.client over TLS: a private CA (trustme), the fake OpenAI upstream on HTTPS,
flow control and cancellation on TLS transports (asyncio's and uvloop's)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.fakes import FakeUpstream
from tests.fakes.tls import Certs, make_certs
from turnout.http.client import ConnectError
from turnout.http.sse import SSEDecoder

from .servers import (
    BLOCK,
    RawConn,
    RawServer,
    eventually,
    fetch,
    open_pool,
    response,
    send,
    streaming_app,
    web_server,
)

pytestmark = pytest.mark.timeout(30)


def text_app(text: str) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=text)

    app = web.Application()
    app.router.add_get("/", handle)
    return app


@pytest.fixture(scope="module")
def certs() -> Certs:
    return make_certs()


@pytest.fixture(scope="module")
def tls_upstream(certs: Certs) -> Iterator[FakeUpstream]:
    with FakeUpstream(ssl_context=certs.server_context()) as upstream:
        yield upstream


async def test_https_with_a_context_that_trusts_the_ca(
    tls_upstream: FakeUpstream, certs: Certs
) -> None:
    base = tls_upstream.base_url
    assert base.startswith("https://127.0.0.1:")
    async with open_pool(base, ssl_context=certs.client_context()) as pool:
        for _ in range(3):
            status, body = await fetch(pool, base + "/models")
            assert status == 200
            assert "gpt-4o-mini" in [m["id"] for m in json.loads(body)["data"]]
        assert pool._open == 1, "keep-alive over TLS"

        request = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "over TLS"}],
            "stream": True,
        }
        resp = await send(
            pool,
            base + "/chat/completions",
            method="POST",
            body=json.dumps(request).encode(),
            headers=b"Content-Type: application/json\r\n",
        )
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        decoder = SSEDecoder()
        payloads: list[bytes] = []
        async for chunk in resp.iter_chunks():
            payloads += decoder.feed(chunk)
        assert payloads[-1] == b"[DONE]"
        text = "".join(
            choice["delta"].get("content") or ""
            for p in payloads[:-1]
            for choice in json.loads(p)["choices"]
        )
        assert text == "echo: over TLS"
        assert pool._open == 1


async def test_the_system_trust_store_does_not_know_a_private_ca(
    tls_upstream: FakeUpstream,
) -> None:
    base = tls_upstream.base_url
    async with open_pool(base) as pool:  # no ssl_context: the system's trust store
        with pytest.raises(ConnectError, match="TLS") as info:
            await fetch(pool, base + "/models")
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        assert pool._open == 0


async def test_the_host_name_is_checked() -> None:
    """A certificate of the right CA but for another name is refused."""
    other = make_certs("localhost")
    app = text_app("never")
    async with web_server(app, ssl_context=other.server_context()) as url:
        async with open_pool(url, ssl_context=other.client_context()) as pool:
            with pytest.raises(ConnectError, match="TLS"):
                await fetch(pool, url + "/")
            assert pool._open == 0
        # the same server by the name in its certificate is fine
        named = url.replace("127.0.0.1", "localhost")
        async with open_pool(named, ssl_context=other.client_context()) as pool:
            assert await fetch(pool, named + "/") == (200, b"never")


async def test_https_to_a_plain_http_server_fails_the_handshake() -> None:
    async with web_server(text_app("plain")) as url:
        url = url.replace("http://", "https://")
        async with open_pool(url, connect_timeout=2) as pool:
            with pytest.raises(ConnectError, match="TLS"):
                await fetch(pool, url + "/")
            assert pool._open == 0


async def test_flow_control_over_tls(certs: Certs) -> None:
    total = 8 * 1024 * 1024
    async with (
        web_server(streaming_app(total), ssl_context=certs.server_context()) as url,
        open_pool(url, ssl_context=certs.client_context()) as pool,
    ):
        # a slow reader: the transport is paused, the buffer bounded, no read timeout
        resp = await send(pool, url + "/stream", read_timeout=0.3)
        await eventually(lambda: resp._conn.paused)
        await asyncio.sleep(0.6)  # paused for longer than the read timeout
        assert resp._conn.paused
        assert resp._conn.buffered <= 2 * 1024 * 1024
        digest = hashlib.sha256()
        async for chunk in resp.iter_chunks():
            digest.update(chunk)
        assert digest.digest() == hashlib.sha256(BLOCK * (total // len(BLOCK))).digest()
        # read() of a body bigger than the flow-control window
        status, body = await fetch(pool, url + "/sized", read_timeout=1.0)
        assert (status, len(body)) == (200, total)
        assert pool._open == 1


async def test_cancel_mid_stream_over_tls(certs: Certs) -> None:
    gone = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b"data: tick\n\n")
                await asyncio.sleep(0.01)
        except (asyncio.CancelledError, ConnectionResetError):
            gone.set()
            raise

    app = web.Application()
    app.router.add_get("/", endless)
    async with (
        web_server(app, ssl_context=certs.server_context()) as url,
        open_pool(url, ssl_context=certs.client_context()) as pool,
    ):
        resp = await send(pool, url + "/")
        got: list[bytes] = []

        async def consume() -> None:
            async for chunk in resp.iter_chunks():
                got.append(chunk)

        task = asyncio.create_task(consume())
        await eventually(lambda: len(got) >= 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(gone.wait(), 2)
        assert pool._open == 0


async def test_eof_delimited_body_over_tls(certs: Certs) -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(b"until ", headers=[("Connection", "close")], length=False))
        await asyncio.sleep(0.02)
        await conn.send(b"the end")
        conn.close()  # close_notify, then FIN

    async with (
        RawServer(handler, ssl_context=certs.server_context()) as srv,
        open_pool(srv.url, ssl_context=certs.client_context()) as pool,
    ):
        assert srv.url.startswith("https://")
        assert await fetch(pool, srv.url) == (200, b"until the end")
        assert pool._open == 0
