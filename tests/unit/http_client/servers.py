"""Real servers on loopback for the HTTP client's tests, running on the test's own loop.

* :class:`RawServer` is ``asyncio.start_server`` with a script per connection, for byte-exact
  control: malformed responses, EOF-delimited bodies, interim responses, resets, trickles.
* :func:`web_server` runs an ``aiohttp.web`` application.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from turnout.http.client import Endpoint, Pool, Response

# --------------------------------------------------------------------------- raw server


@dataclass
class RawConn:
    """One accepted connection, seen from the server."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[bytes] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def read_request(self) -> bytes | None:
        """The next request (head and Content-Length body), or None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.disconnected.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_for_disconnect(self) -> None:
        """Read (and drop) until the client closes or resets the connection."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.disconnected.set()

    async def reset(self) -> None:
        """Send a TCP RST (after a moment, so the peer has read what was sent before)."""
        await asyncio.sleep(0.05)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        """Close (FIN) without answering."""
        self.writer.close()


Handler = Callable[[RawConn], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``handler`` for every connection."""

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections: list[RawConn] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.new_connection = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.connections:
            conn.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = RawConn(len(self.connections), reader, writer)
        self.connections.append(conn)
        self.new_connection.set()
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.disconnected.set()
        except asyncio.CancelledError:
            pass  # stopped by __aexit__ (returning normally keeps asyncio from logging it)
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def wait_for_connections(self, count: int, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.connections) < count:
                self.new_connection.clear()
                await self.new_connection.wait()


def response(
    body: bytes = b"",
    *,
    status: str = "200 OK",
    headers: Iterable[tuple[str, str]] = (),
    length: bool = True,
    version: str = "HTTP/1.1",
) -> bytes:
    """A complete response; ``length=False`` leaves out Content-Length (EOF-delimited)."""
    lines = [f"{version} {status}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*pieces: bytes) -> bytes:
    """A chunked body made of ``pieces`` (each non-empty), with the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def serve_forever(conn: RawConn, answer: bytes) -> None:
    """Answer every request on the connection with ``answer`` (keep-alive)."""
    while await conn.read_request() is not None:
        await conn.send(answer)


# --------------------------------------------------------------------------- aiohttp server


@contextlib.asynccontextmanager
async def web_server(
    app: web.Application, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port); yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await tcp.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


BLOCK = hashlib.sha256(b"block").digest() * 2048  # 64 KiB


def streaming_app(total: int) -> web.Application:
    """GET /stream: ``total`` bytes of BLOCKs, chunked; GET /sized: the same, Content-Length."""

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if request.path == "/sized":
            resp.content_length = total
        await resp.prepare(request)
        for _ in range(total // len(BLOCK)):
            await resp.write(BLOCK)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/sized", stream)
    return app


# --------------------------------------------------------------------------- client side


def request_head(url: str, method: str = "GET", body: bytes = b"", headers: bytes = b"") -> bytes:
    """The request line and headers the backend would send for ``url``."""
    ep = Endpoint.parse(url)
    return (
        f"{method} ".encode()
        + ep.target
        + b" HTTP/1.1\r\nHost: "
        + ep.host_header
        + b"\r\n"
        + headers
        + b"Content-Length: %d\r\n\r\n" % len(body)
    )


async def send(
    pool: Pool,
    url: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: bytes = b"",
    timeout: float = 5.0,
    read_timeout: float = 2.0,
) -> Response:
    """One request through ``pool``; returns once the response headers are in."""
    deadline = asyncio.get_running_loop().time() + timeout
    head = request_head(url, method, body, headers)
    return await pool.request(head, body, deadline=deadline, read_timeout=read_timeout)


@contextlib.asynccontextmanager
async def open_pool(
    url: str,
    *,
    max_connections: int = 512,
    connect_timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Pool]:
    pool = Pool(
        Endpoint.parse(url),
        max_connections=max_connections,
        connect_timeout=connect_timeout,
        ssl_context=ssl_context,
    )
    try:
        yield pool
    finally:
        await pool.aclose()


async def eventually(condition: Callable[[], object], timeout: float = 2.0) -> None:
    """Wait until ``condition()`` is true."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def fetch(
    pool: Pool,
    url: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: bytes = b"",
    timeout: float = 5.0,
    read_timeout: float = 2.0,
) -> tuple[int, bytes]:
    """One request through ``pool``; the status and the whole body."""
    resp = await send(
        pool,
        url,
        method=method,
        body=body,
        headers=headers,
        timeout=timeout,
        read_timeout=read_timeout,
    )
    return resp.status, await resp.read()
