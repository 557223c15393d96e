"""turnout.http.client against real servers on loopback (no mocks), on asyncio and uvloop.

Pool internals (``_open``, ``_idle``, ``_waiters``, a response's ``_conn``) are read, never
written, to check that no connection slot leaks and that flow control holds."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import select
import socket
import zlib
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from turnout.http import client
from turnout.http.client import (
    ConnectError,
    ConnectionLost,
    Endpoint,
    Pool,
    ProtocolError,
    TimeoutError_,
)

from .servers import (
    BLOCK,
    RawConn,
    RawServer,
    chunked,
    eventually,
    fetch,
    open_pool,
    request_head,
    response,
    send,
    serve_forever,
    streaming_app,
    web_server,
)

pytestmark = pytest.mark.timeout(30)

# A bound on what the client may hold for a stream that is not being read: the high-water
# mark plus what one read from the socket (or one decompressed piece) can add past it.
BUFFER_BOUND = client._HIGH_WATER + 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ================================================================== Endpoint.parse


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "target", "host_header"),
    [
        ("http://example.com", "http", "example.com", 80, b"/", b"example.com"),
        ("https://api.example.com/v1", "https", "api.example.com", 443, b"/v1", b"api.example.com"),
        (
            "http://example.com:8080/openai/deployments/gpt/chat?api-version=2024-10-21&x=%20y",
            "http",
            "example.com",
            8080,
            b"/openai/deployments/gpt/chat?api-version=2024-10-21&x=%20y",
            b"example.com:8080",
        ),
        ("http://example.com?q=1", "http", "example.com", 80, b"/?q=1", b"example.com"),
        ("https://example.com:443/v1/", "https", "example.com", 443, b"/v1/", b"example.com"),
        ("http://example.com:80/", "http", "example.com", 80, b"/", b"example.com"),
        ("http://example.com:443/", "http", "example.com", 443, b"/", b"example.com:443"),
        ("https://example.com:80/", "https", "example.com", 80, b"/", b"example.com:80"),
        ("http://EXAMPLE.Com/Path", "http", "example.com", 80, b"/Path", b"example.com"),
        ("http://[::1]:8000/v1", "http", "::1", 8000, b"/v1", b"[::1]:8000"),
        ("https://[2001:DB8::1]/", "https", "2001:db8::1", 443, b"/", b"[2001:db8::1]"),
        ("http://127.0.0.1:11434/v1#frag", "http", "127.0.0.1", 11434, b"/v1", b"127.0.0.1:11434"),
        ("http://user:secret@example.com/v1", "http", "example.com", 80, b"/v1", b"example.com"),
        (
            "http://bücher.example/v1",
            "http",
            "bücher.example",
            80,
            b"/v1",
            b"xn--bcher-kva.example",
        ),
    ],
)
def test_endpoint_parse(
    url: str, scheme: str, host: str, port: int, target: bytes, host_header: bytes
) -> None:
    ep = Endpoint.parse(url)
    assert (ep.scheme, ep.host, ep.port, ep.target, ep.host_header) == (
        scheme,
        host,
        port,
        target,
        host_header,
    )
    assert ep.origin == (scheme, host, port)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com/v1",
        "/v1/chat/completions",
        "http:///v1",
        "http://example.com:99999/",
        "http://example.com:port/",
    ],
)
def test_endpoint_parse_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(url)


def test_request_head_carries_target_and_host() -> None:
    head = request_head("http://[::1]:8000/v1/models?x=1", "GET")
    assert head.startswith(b"GET /v1/models?x=1 HTTP/1.1\r\nHost: [::1]:8000\r\n")


# ================================================================== keep-alive


def counting_app() -> tuple[web.Application, list[object]]:
    """Answers ``ok <path>``; records each request's client address (one per connection)."""
    peers: list[object] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        resp = web.Response(body=b"ok " + request.path_qs.encode(), content_type="text/plain")
        if request.query.get("close"):
            resp.force_close()
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app, peers


async def test_sequential_requests_share_one_connection() -> None:
    app, peers = counting_app()
    async with web_server(app) as url, open_pool(url) as pool:
        for i in range(10):
            resp = await send(pool, f"{url}/n/{i}?a=b")
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            assert resp.headers["content-length"] == str(len(f"ok /n/{i}?a=b"))
            assert await resp.read() == f"ok /n/{i}?a=b".encode()
        assert len(peers) == 10
        assert len(set(peers)) == 1
        assert pool._open == 1
        assert len(pool._idle) == 1


async def test_concurrent_requests_open_connections_that_are_reused() -> None:
    peers: list[object] = []
    in_flight = 0
    all_in = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        in_flight += 1
        if in_flight == 5:
            all_in.set()
        await all_in.wait()
        in_flight -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    async with web_server(app) as url, open_pool(url) as pool:
        results = await asyncio.gather(*(fetch(pool, url + "/") for _ in range(5)))
        assert results == [(200, b"ok")] * 5
        assert len(set(peers)) == 5
        for _ in range(10):
            assert await fetch(pool, url + "/") == (200, b"ok")
        assert len(set(peers)) == 5, "later requests reuse the idle connections"
        assert pool._open == 5


async def test_connection_close_responses_are_not_reused() -> None:
    app, peers = counting_app()
    async with web_server(app) as url, open_pool(url) as pool:
        for _ in range(3):
            resp = await send(pool, url + "/?close=1")
            assert resp.headers.get("connection", "").lower() == "close"
            assert await resp.read() == b"ok /?close=1"
            assert pool._open == 0
        assert len(set(peers)) == 3


async def test_idle_connection_closed_by_the_server_is_not_used() -> None:
    """The server closes a keep-alive connection after its first answer; the client notices
    and the next request goes on a new connection."""

    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(b"one"))
        conn.close()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url) == (200, b"one")
        await eventually(lambda: pool._idle and pool._idle[0].closed)
        assert await fetch(pool, srv.url) == (200, b"one")
        assert len(srv.connections) == 2
        assert pool._open == 1


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_reused_connection_closed_before_the_response_is_retried(how: str) -> None:
    """The server takes the second request on a kept-alive connection, then closes it without
    answering (the race with an idle timeout): the request is sent again, on a new
    connection, and the caller sees only the answer."""

    async def handler(conn: RawConn) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(response(b"first"))
            await conn.read_request()
            if how == "rst":
                await conn.reset()
            else:
                conn.close()
            return
        await serve_forever(conn, response(b"fresh"))

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url + "/a") == (200, b"first")
        status, body = await fetch(pool, srv.url + "/b", method="POST", body=b'{"x":1}')
        assert (status, body) == (200, b"fresh")
        assert len(srv.connections) == 2
        retried = srv.connections[0].requests[1]
        assert retried.startswith(b"POST /b ")
        assert srv.connections[1].requests == [retried]
        assert pool._open == 1


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-Le", response(b"0123456789")[:-4]],
    ids=["mid-headers", "mid-body"],
)
@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_connection_lost_mid_response_is_not_retried(partial: bytes, how: str) -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(b"first"))
        await conn.read_request()
        await conn.send(partial)
        if how == "rst":
            await conn.reset()
        else:
            await asyncio.sleep(0.02)
            conn.close()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url) == (200, b"first")
        with pytest.raises(ConnectionLost) as info:
            await fetch(pool, srv.url)
        assert not info.value.before_response
        assert len(srv.connections) == 1, "not retried"
        assert pool._open == 0


async def test_fresh_connection_closed_before_the_response_is_not_retried() -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        conn.close()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        with pytest.raises(ConnectionLost, match="before answering") as info:
            await fetch(pool, srv.url)
        assert info.value.before_response
        assert len(srv.connections) == 1
        assert pool._open == 0


# ================================================================== the connection cap


def gated_app() -> tuple[web.Application, asyncio.Event, dict[str, int]]:
    """Requests wait for ``gate``; ``stats`` has the peak number in flight."""
    gate = asyncio.Event()
    stats = {"in_flight": 0, "peak": 0, "served": 0}

    async def handle(request: web.Request) -> web.Response:
        stats["in_flight"] += 1
        stats["peak"] = max(stats["peak"], stats["in_flight"])
        try:
            await gate.wait()
        finally:
            stats["in_flight"] -= 1
        stats["served"] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    return app, gate, stats


async def test_max_connections_caps_concurrent_connections() -> None:
    app, gate, stats = gated_app()
    async with web_server(app) as url, open_pool(url, max_connections=2) as pool:
        tasks = [asyncio.create_task(fetch(pool, url + "/")) for _ in range(6)]
        await eventually(lambda: stats["in_flight"] == 2 and len(pool._waiters) == 4)
        await asyncio.sleep(0.05)
        assert stats["in_flight"] == 2
        assert pool._open == 2
        gate.set()
        assert await asyncio.gather(*tasks) == [(200, b"ok")] * 6
        assert stats["peak"] == 2
        assert pool._open == 2
        assert not pool._waiters


async def test_waiter_for_a_connection_times_out_at_the_deadline() -> None:
    app, gate, stats = gated_app()
    async with web_server(app) as url, open_pool(url, max_connections=1) as pool:
        first = asyncio.create_task(fetch(pool, url + "/"))
        await eventually(lambda: stats["in_flight"] == 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError_, match="no upstream connection became free"):
            await fetch(pool, url + "/", timeout=0.2)
        assert 0.15 <= loop.time() - started < 1.5
        assert not pool._waiters
        gate.set()
        assert await first == (200, b"ok")
        assert await fetch(pool, url + "/") == (200, b"ok")
        assert pool._open == 1


async def test_cancelled_waiter_passes_its_wakeup_on() -> None:
    """A waiter that is woken for a free connection and cancelled before it runs must hand
    the wake-up to the next waiter, or that one waits until its deadline."""

    async def handler(conn: RawConn) -> None:
        await serve_forever(conn, response(b"ok"))

    async with RawServer(handler) as srv, open_pool(srv.url, max_connections=1) as pool:
        held = await send(pool, srv.url)
        await eventually(lambda: held._conn.complete)
        first = asyncio.create_task(fetch(pool, srv.url))
        second = asyncio.create_task(fetch(pool, srv.url, timeout=3.0))
        await eventually(lambda: len(pool._waiters) == 2)
        held.close()  # the connection goes back to the pool and wakes ``first``...
        first.cancel()  # ...which is cancelled before it gets to run
        with pytest.raises(asyncio.CancelledError):
            await first
        async with asyncio.timeout(1.0):
            assert await second == (200, b"ok")
        assert pool._open == 1


# ================================================================== connecting


@contextlib.contextmanager
def unresponsive_listener() -> Iterator[int]:
    """A port whose listen backlog is full: a new connection attempt gets no SYN-ACK."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            fillers.append(sock)
            _, writable, _ = select.select([], [sock], [], 0.2)
            if not writable:
                break
        else:  # pragma: no cover - depends on the kernel
            pytest.skip("could not fill the listen backlog")
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


async def test_connection_refused_is_connect_error() -> None:
    port = free_port()
    async with open_pool(f"http://127.0.0.1:{port}") as pool:
        with pytest.raises(ConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
            await fetch(pool, f"http://127.0.0.1:{port}/")
        assert pool._open == 0


async def test_connect_timeout() -> None:
    with unresponsive_listener() as port:
        url = f"http://127.0.0.1:{port}"
        async with open_pool(url, connect_timeout=0.2) as pool:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError_, match=f"connecting to 127.0.0.1:{port} timed out"):
                await fetch(pool, url + "/")
            assert 0.15 <= loop.time() - started < 1.5
            assert pool._open == 0
        # the request's deadline bounds the connect too
        async with open_pool(url, connect_timeout=30) as pool:
            started = loop.time()
            with pytest.raises(TimeoutError_):
                await fetch(pool, url + "/", timeout=0.2)
            assert loop.time() - started < 1.5
            assert pool._open == 0


async def test_cancel_while_connecting_frees_the_slot() -> None:
    with unresponsive_listener() as port:
        url = f"http://127.0.0.1:{port}"
        async with open_pool(url, connect_timeout=30, max_connections=1) as pool:
            task = asyncio.create_task(fetch(pool, url + "/"))
            await asyncio.sleep(0.1)
            assert pool._open == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool._open == 0


# ================================================================== timeouts


async def test_read_timeout_waiting_for_headers() -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.wait_for_disconnect()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError_, match=r"no data from the upstream for 0\.2 s"):
            await send(pool, srv.url, read_timeout=0.2)
        assert 0.15 <= loop.time() - started < 1.5
        await asyncio.wait_for(srv.connections[0].disconnected.wait(), 2)
        assert pool._open == 0


async def test_read_timeout_mid_body() -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(b"0123456789")[:-7])  # headers and 3 bytes of 10
        await conn.wait_for_disconnect()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        resp = await send(pool, srv.url, read_timeout=0.2)
        assert resp.status == 200
        with pytest.raises(TimeoutError_, match="no data from the upstream"):
            await resp.read()
        await asyncio.wait_for(srv.connections[0].disconnected.wait(), 2)
        assert pool._open == 0


async def test_deadline_passes_while_the_upstream_trickles() -> None:
    """A byte every 50 ms: the read timeout (0.3 s) never fires, the deadline (0.6 s) does."""

    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(headers=[("Transfer-Encoding", "chunked")], length=False))
        while not conn.disconnected.is_set():
            await conn.send(b"1\r\nx\r\n")
            await asyncio.sleep(0.05)

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        resp = await send(pool, srv.url, read_timeout=0.3, timeout=0.6)
        received = b""
        with pytest.raises(TimeoutError_, match="deadline passed"):
            async for chunk in resp.iter_chunks():
                received += chunk
        assert 0.55 <= loop.time() - started < 2.0
        assert len(received) >= 5 and set(received) == {ord("x")}
        assert pool._open == 0


# ================================================================== bodies


async def test_chunked_body_with_trailers_and_reuse() -> None:
    body = chunked(b"hello ", b"chunked ", b"world")[:-2] + b"X-Trailer: yes\r\n\r\n"
    answer = response(body, headers=[("Transfer-Encoding", "chunked")], length=False)

    async def handler(conn: RawConn) -> None:
        await serve_forever(conn, answer)

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        for _ in range(3):
            assert await fetch(pool, srv.url) == (200, b"hello chunked world")
        assert len(srv.connections) == 1


async def test_empty_bodies_keep_the_connection() -> None:
    answers = [response(b""), response(status="204 No Content", length=False), response(b"x")]

    async def handler(conn: RawConn) -> None:
        for answer in answers:
            await conn.read_request()
            await conn.send(answer)
        await conn.wait_for_disconnect()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url) == (200, b"")
        assert await fetch(pool, srv.url) == (204, b"")
        assert await fetch(pool, srv.url) == (200, b"x")
        assert len(srv.connections) == 1


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
async def test_eof_delimited_body(version: str) -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        headers = [("Connection", "close")] if version == "HTTP/1.1" else []
        await conn.send(response(headers=headers, length=False, version=version))
        for piece in (b"no ", b"length ", b"here"):
            await conn.send(piece)
            await asyncio.sleep(0.01)
        conn.close()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url) == (200, b"no length here")
        assert pool._open == 0
        resp = await send(pool, srv.url)
        assert b"".join([c async for c in resp.iter_chunks()]) == b"no length here"
        assert len(srv.connections) == 2
        assert pool._open == 0


async def test_eof_delimited_body_cut_by_a_reset_is_an_error() -> None:
    """A reset is not the end of an EOF-delimited body: the body is incomplete."""

    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(b"partial ", headers=[("Connection", "close")], length=False))
        await conn.reset()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        resp = await send(pool, srv.url)
        with pytest.raises(ConnectionLost, match="mid-response"):
            await resp.read()
        assert pool._open == 0


async def test_request_bodies_arrive_whole() -> None:
    sizes: list[int] = []

    async def echo(request: web.Request) -> web.Response:
        data = await request.read()
        sizes.append(len(data))
        return web.Response(body=hashlib.sha256(data).hexdigest().encode())

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/", echo)
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB: more than the kernel buffers take at once
    async with web_server(app) as url, open_pool(url) as pool:
        for body in (b'{"a": 1}', big):
            status, digest = await fetch(pool, url + "/", method="POST", body=body)
            assert (status, digest) == (200, hashlib.sha256(body).hexdigest().encode())
        assert sizes == [8, len(big)]


async def test_interim_responses_before_the_real_one() -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0.01)
        await conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await asyncio.sleep(0.01)
        await conn.send(response(b"final", headers=[("X-Real", "yes")]))
        await serve_forever(conn, response(b"again"))

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        resp = await send(pool, srv.url)
        assert resp.status == 200
        assert resp.headers["x-real"] == "yes"
        assert "link" not in resp.headers
        assert await resp.read() == b"final"
        assert await fetch(pool, srv.url) == (200, b"again")
        assert len(srv.connections) == 1


# ================================================================== compression

TEXT = b"".join(
    b'data: {"choices":[{"delta":{"content":"token %d"}}]}\n\n' % i for i in range(4000)
)


def deflate(data: bytes) -> bytes:
    return zlib.compress(data)


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", deflate),
    ],
)
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_compressed_body(
    coding: str, compress: Callable[[bytes], bytes], framing: str
) -> None:
    packed = compress(TEXT)
    headers = [("Content-Encoding", coding)]
    if framing == "length":
        answer = response(packed, headers=headers)
    else:
        pieces = [packed[i : i + 7] for i in range(0, len(packed), 7)]
        answer = response(
            chunked(*pieces), headers=[*headers, ("Transfer-Encoding", "chunked")], length=False
        )

    async def handler(conn: RawConn) -> None:
        await serve_forever(conn, answer)

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url) == (200, TEXT)
        resp = await send(pool, srv.url)
        assert resp.headers["content-encoding"] == coding
        assert b"".join([c async for c in resp.iter_chunks()]) == TEXT
        assert len(srv.connections) == 1


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("corrupt", response(b"this is not gzip", headers=[("Content-Encoding", "gzip")])),
        (
            "truncated",
            response(gzip.compress(TEXT)[:-100], headers=[("Content-Encoding", "gzip")]),
        ),
        (
            "truncated-deflate",
            response(deflate(TEXT)[:-100], headers=[("Content-Encoding", "deflate")]),
        ),
    ],
)
async def test_bad_compressed_body_is_a_protocol_error(name: str, answer: bytes) -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(answer)
        await conn.wait_for_disconnect()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        with pytest.raises(ProtocolError, match=r"decompress|compressed"):
            await fetch(pool, srv.url)
        assert pool._open == 0


async def test_truncated_gzip_in_an_eof_delimited_body_is_an_error() -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(
            response(
                gzip.compress(TEXT)[:-100],
                headers=[("Content-Encoding", "gzip"), ("Connection", "close")],
                length=False,
            )
        )
        conn.close()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        with pytest.raises(ProtocolError):
            await fetch(pool, srv.url)
        assert pool._open == 0


async def test_empty_body_with_a_content_encoding() -> None:
    answer = response(b"", headers=[("Content-Encoding", "gzip")])

    async def handler(conn: RawConn) -> None:
        await serve_forever(conn, answer)

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        assert await fetch(pool, srv.url) == (200, b"")
        assert await fetch(pool, srv.url) == (200, b"")
        assert len(srv.connections) == 1


# ================================================================== flow control


async def test_slowly_read_stream_keeps_the_buffer_bounded() -> None:
    total = 20 * 1024 * 1024
    async with web_server(streaming_app(total)) as url, open_pool(url) as pool:
        resp = await send(pool, url + "/stream", read_timeout=5)
        conn = resp._conn
        await eventually(lambda: conn.paused)  # nobody reads: the client stops reading...
        await asyncio.sleep(0.2)
        assert conn.paused and conn.buffered <= BUFFER_BOUND  # ...and stays stopped
        digest = hashlib.sha256()
        peak = received = 0
        async for chunk in resp.iter_chunks():
            peak = max(peak, conn.buffered)
            digest.update(chunk)
            received += len(chunk)
            if received % (1024 * 1024) < len(chunk):
                await asyncio.sleep(0.01)  # a slow consumer
        assert received == total
        assert digest.digest() == hashlib.sha256(BLOCK * (total // len(BLOCK))).digest()
        assert peak <= BUFFER_BOUND
        assert pool._open == 1  # complete: kept for reuse


@pytest.mark.parametrize("path", ["/stream", "/sized"])
async def test_read_of_a_body_larger_than_the_flow_control_window(path: str) -> None:
    """``Response.read()`` wants the whole body: flow control must not stall it."""
    total = 4 * 1024 * 1024
    async with web_server(streaming_app(total)) as url, open_pool(url) as pool:
        status, body = await fetch(pool, url + path, read_timeout=1.0)
        assert status == 200
        assert len(body) == total
        assert await fetch(pool, url + path, read_timeout=1.0) == (200, body)
        assert pool._open == 1


async def test_paused_stream_is_not_upstream_silence() -> None:
    """A consumer slower than the read timeout pauses the upstream; that is not the
    upstream going silent."""
    total = 4 * 1024 * 1024
    async with web_server(streaming_app(total)) as url, open_pool(url) as pool:
        resp = await send(pool, url + "/stream", read_timeout=0.3)
        received = 0
        async for chunk in resp.iter_chunks():
            if not received:
                await asyncio.sleep(0.8)
            received += len(chunk)
        assert received == total


async def test_connection_released_while_paused_reads_again() -> None:
    """A response that arrived whole while reading was paused, closed with unread chunks:
    its connection goes back to the pool and must read the next response."""
    big = gzip.compress(bytes(2 * 1024 * 1024))  # 2 KiB that inflate to 2 MiB in one piece

    async def handler(conn: RawConn) -> None:
        await serve_forever(conn, response(big, headers=[("Content-Encoding", "gzip")]))

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        resp = await send(pool, srv.url)
        await eventually(lambda: resp._conn.complete)
        assert resp._conn.paused
        resp.close()
        assert pool._open == 1 and len(pool._idle) == 1
        status, body = await fetch(pool, srv.url, read_timeout=0.5)
        assert (status, len(body)) == (200, 2 * 1024 * 1024)
        assert len(srv.connections) == 1


# ================================================================== cancellation


async def test_cancel_while_waiting_for_headers_aborts() -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.wait_for_disconnect()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        task = asyncio.create_task(send(pool, srv.url))
        await srv.wait_for_connections(1)
        await eventually(lambda: srv.connections[0].requests)
        assert pool._open == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.connections[0].disconnected.wait(), 2)
        assert pool._open == 0


async def endless_chunks(conn: RawConn) -> None:
    """Headers, then a chunk every 10 ms until the client goes away."""
    await conn.read_request()
    await conn.send(response(headers=[("Transfer-Encoding", "chunked")], length=False))
    reader = asyncio.create_task(conn.wait_for_disconnect())
    try:
        while not reader.done():
            await conn.send(b"5\r\ntick \r\n")
            await asyncio.sleep(0.01)
    finally:
        reader.cancel()


@pytest.mark.parametrize("where", ["read", "iter_chunks"])
async def test_cancel_while_reading_the_body_aborts(where: str) -> None:
    async with RawServer(endless_chunks) as srv, open_pool(srv.url) as pool:
        resp = await send(pool, srv.url)
        got: list[bytes] = []

        async def consume() -> None:
            if where == "read":
                await resp.read()
            else:
                async for chunk in resp.iter_chunks():
                    got.append(chunk)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        assert where == "read" or got
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.connections[0].disconnected.wait(), 2)
        assert pool._open == 0


async def test_many_cancellations_leak_no_connection_slots() -> None:
    barrier_count = 0
    barrier = asyncio.Event()

    async def slow_headers(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="late")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        while True:
            await resp.write(b"x" * 100)
            await asyncio.sleep(0.005)

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="fast")

    async def together(request: web.Request) -> web.Response:
        nonlocal barrier_count
        barrier_count += 1
        if barrier_count == 3:
            barrier.set()
        await barrier.wait()
        return web.Response(text="together")

    app = web.Application()
    app.router.add_get("/slow-headers", slow_headers)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/fast", fast)
    app.router.add_get("/together", together)

    async def read_some(pool: Pool, url: str) -> None:
        resp = await send(pool, url)
        async for _ in resp.iter_chunks():
            pass

    async with web_server(app) as url, open_pool(url, max_connections=3) as pool:
        paths = ["/slow-headers", "/slow-body", "/fast", "/slow-body", "/slow-headers"]
        for i in range(30):
            tasks = [asyncio.create_task(read_some(pool, url + p)) for p in paths]
            await asyncio.sleep(0.002 * (i % 6))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert pool._open <= 3
            assert not pool._waiters
        # all three slots are still there: three requests that only answer together
        async with asyncio.timeout(3):
            results = await asyncio.gather(*(fetch(pool, url + "/together") for _ in range(3)))
        assert results == [(200, b"together")] * 3


# ================================================================== malformed responses


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ],
    ids=[
        "status",
        "not-http",
        "bare-lf",
        "chunk-size",
        "content-length",
        "length-and-chunked",
        "two-lengths",
        "header-name",
        "nul-in-header",
        "upgrade",
    ],
)
async def test_malformed_response_is_a_protocol_error(answer: bytes) -> None:
    async def handler(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(answer)
        await conn.wait_for_disconnect()

    async with RawServer(handler) as srv, open_pool(srv.url) as pool:
        with pytest.raises(ProtocolError):
            await fetch(pool, srv.url)
        await asyncio.wait_for(srv.connections[0].disconnected.wait(), 2)
        assert pool._open == 0
        assert len(srv.connections) == 1


# ================================================================== closing


async def test_closed_pool_refuses_requests_and_wakes_waiters() -> None:
    app, gate, stats = gated_app()
    async with web_server(app) as url:
        pool = Pool(Endpoint.parse(url), max_connections=1)
        first = asyncio.create_task(fetch(pool, url + "/"))
        await eventually(lambda: stats["in_flight"] == 1)
        waiter = asyncio.create_task(fetch(pool, url + "/"))
        await eventually(lambda: len(pool._waiters) == 1)
        await pool.aclose()
        with pytest.raises(ConnectError, match="closed"):
            await waiter
        with pytest.raises(ConnectError, match="closed"):
            await fetch(pool, url + "/")
        gate.set()
        assert await first == (200, b"ok")
        assert pool._open == 0, "a connection released after aclose() is closed"
