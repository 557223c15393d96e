"""A small, fast HTTP/1.1 client for upstream calls: asyncio protocol + llhttp (httptools).

Why not aiohttp or httpx: on this project's benchmark machine aiohttp's client alone costs
about 200 µs of CPU per request, more than everything else a gateway does per request
together; this client costs about 30 µs because it does only what an upstream call needs.

What it does: one pool per origin with a connection cap and keep-alive reuse (LIFO, idle
expiry), TLS with the system's trust store and SNI, Content-Length request bodies, chunked or
sized or EOF-delimited response bodies, gzip/deflate decompression, flow control for
streams, a connect timeout, a read timeout (the longest silence between two bytes; time the
reader is paused by flow control does not count) and an absolute deadline enforced by timers
on the loop, and cancellation: a request whose task is cancelled aborts its connection, which
stops the upstream. A reused keep-alive connection that the server closed before answering is
retried once on a fresh connection.

What it does not do (not needed for LLM upstreams): HTTP/2, proxies, cookies, redirects.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import zlib
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = [
    "ConnectError",
    "ConnectionLost",
    "Endpoint",
    "HTTPClientError",
    "Pool",
    "ProtocolError",
    "Response",
    "TimeoutError_",
]

_HIGH_WATER = 512 * 1024
_LOW_WATER = 128 * 1024
_NO_LIMIT = sys.maxsize  # Response.read() wants the whole body: no flow control
_IDLE_EXPIRY = 15.0


class HTTPClientError(Exception):
    """Base of this client's errors (the backend converts them at its boundary)."""


class ConnectError(HTTPClientError):
    """The connection could not be opened (refused, DNS, TLS)."""


class ConnectionLost(HTTPClientError):
    """The connection closed or reset before the response was complete."""

    def __init__(self, message: str, *, before_response: bool = False) -> None:
        super().__init__(message)
        self.before_response = before_response


class ProtocolError(HTTPClientError):
    """The peer did not speak HTTP/1.1 correctly."""


class TimeoutError_(HTTPClientError):
    """Connect timeout, read timeout (silence) or the overall deadline passed."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed URL: the pool key, the request target and the Host header value."""

    scheme: str
    host: str
    port: int
    target: bytes
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        header = shown if port == default else f"{shown}:{port}"
        return cls(parts.scheme, host, port, target.encode(), header.encode("idna"))

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.error: BaseException | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.high_water = _HIGH_WATER
        self.paused = False
        self.eof_body = False
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: Any = None
        self._compressed = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._read_timeout = 0.0
        self._last_data = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_data = self.loop.time()
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream tried to switch protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP response from the upstream: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete or self.error is not None:
            return
        if self.headers_done and self.eof_body and exc is None:  # a reset is no end of body
            self._finish_body()
            return
        self._fail(
            ConnectionLost(
                "the upstream closed the connection"
                + (" before answering" if not self.received_any else " mid-response"),
                before_response=not self.received_any,
            )
        )

    def pause_writing(self) -> None:  # large request bodies: the kernel buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # -- llhttp callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # interim response: wait for the real one
            self.raw_headers = []
            return
        headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in self.raw_headers}
        self.headers = headers
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        self.eof_body = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            self._compressed = True
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._fail(ProtocolError(f"cannot decompress the upstream's response: {exc}"))
                return
            if not body:
                return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > self.high_water and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish_body()

    # -- the exchange -------------------------------------------------------------------------

    def _finish_body(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self.chunks.append(tail)
            if self._compressed and not self._decoder.eof:
                self._fail(ProtocolError("the upstream's compressed response is truncated"))
                return
        self.complete = True
        self._cancel_timer()
        self._wake()

    def send(self, data: bytes, deadline: float, read_timeout: float) -> None:
        assert self.transport is not None
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._last_data = self.loop.time()
        self._timer = self.loop.call_at(min(deadline, self._last_data + read_timeout), self._tick)
        self.transport.write(data)

    def _tick(self) -> None:
        now = self.loop.time()
        if now >= self._deadline:
            self._fail(TimeoutError_("the request deadline passed"))
        elif self.paused:  # the consumer is behind (flow control), not the upstream silent
            self._timer = self.loop.call_at(
                min(self._deadline, now + self._read_timeout), self._tick
            )
        elif now - self._last_data >= self._read_timeout:
            self._fail(TimeoutError_(f"no data from the upstream for {self._read_timeout:g} s"))
        else:
            when = min(self._deadline, self._last_data + self._read_timeout)
            self._timer = self.loop.call_at(when, self._tick)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._cancel_timer()
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Wait for progress (headers, a body chunk, the end or an error)."""
        if self.error is None:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < _LOW_WATER:
            self.resume()
        return chunk

    def resume(self) -> None:
        """Read from the socket again; the read timeout counts from now."""
        self.paused = False
        self._last_data = self.loop.time()
        if self.transport is not None:
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None


class Response:
    """The status and headers of a response whose body is still to be read."""

    __slots__ = ("_conn", "_done", "_pool", "headers", "status")

    def __init__(self, conn: _Connection, pool: Pool) -> None:
        self._conn = conn
        self._pool = pool
        self._done = False
        self.status = conn.status
        self.headers = conn.headers

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        conn = self._conn
        conn.high_water = _NO_LIMIT
        if conn.paused:
            conn.resume()
        try:
            while not conn.complete:
                await conn.wait()
            body = b"".join(conn.chunks)
        except BaseException:
            self.close()
            raise
        self._release()
        return body

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        """Body chunks as they arrive. Stopping early (or being cancelled) closes the
        connection, which tells the upstream to stop."""
        conn = self._conn
        try:
            while True:
                if conn.chunks:
                    yield conn.take()
                elif conn.complete:
                    break
                else:
                    await conn.wait()
        finally:
            self.close()

    def _release(self) -> None:
        if not self._done:
            self._done = True
            self._pool.release(self._conn)

    def close(self) -> None:
        """Done with this response: reuse the connection if it is complete, else abort it."""
        if not self._done:
            if not self._conn.complete:
                self._conn.abort()
            self._release()


class Pool:
    """Connections to one origin, at most ``max_connections`` at a time."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        max_connections: int = 512,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme, self.host, self.port = endpoint.origin
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._ssl: ssl.SSLContext | None = None
        if self.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(
        self,
        head: bytes,
        body: bytes,
        *,
        deadline: float,
        read_timeout: float,
    ) -> Response:
        """Send one request (``head`` is the request line and headers, CRLF-terminated)
        and return once the response headers have arrived."""
        conn, reused = await self._acquire(deadline)
        try:
            return await self._exchange(conn, head + body, deadline, read_timeout)
        except ConnectionLost as exc:
            if not (reused and exc.before_response):
                raise
        conn, _ = await self._acquire(deadline, fresh=True)
        return await self._exchange(conn, head + body, deadline, read_timeout)

    async def _exchange(
        self, conn: _Connection, data: bytes, deadline: float, read_timeout: float
    ) -> Response:
        try:
            conn.send(data, deadline, read_timeout)
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.abort()
            self.release(conn)
            raise
        return Response(conn, self)

    async def _acquire(self, deadline: float, *, fresh: bool = False) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise ConnectError("the client is closed")
            if not fresh:
                conn = self._pop_idle(loop.time())
                if conn is not None:
                    conn._reset_exchange()
                    return conn, True
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(loop, deadline), False
                except BaseException:
                    self._open -= 1
                    self._wake_waiter()
                    raise
            await self._wait_for_slot(loop, deadline)

    def _pop_idle(self, now: float) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_EXPIRY:
                return conn
            conn.abort()
            self._open -= 1
        return None

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                # woken for a free connection but leaving (cancelled, or the deadline came at
                # the same time): pass the wake-up on, or the next waiter sleeps on
                self._wake_waiter()
            if isinstance(exc, TimeoutError):
                raise TimeoutError_(
                    "no upstream connection became free before the deadline"
                ) from None
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        limit = min(loop.time() + self.connect_timeout, deadline)
        try:
            async with asyncio.timeout_at(limit):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError:
            raise TimeoutError_(f"connecting to {self.host}:{self.port} timed out") from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS with {self.host}:{self.port} failed: {exc.reason}") from exc
        except OSError as exc:
            raise ConnectError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        return conn

    def release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed:
            if conn.paused:  # closed with chunks unread: the next exchange must read
                conn.resume()
            conn.idle_since = conn.loop.time()
            self._idle.append(conn)
        else:
            conn.abort()
            self._open -= 1
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.abort()
        self._open -= len(self._idle)
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
