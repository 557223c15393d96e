"""The HTTP/1.1 connection: uvicorn's httptools protocol plus a header timeout and size limit.

uvicorn (0.54) bounds only the idle time between two requests of a kept-alive connection
(``timeout_keep_alive``). A client that opens a connection and sends nothing, or sends its
request line and headers a byte at a time, holds the connection for as long as it likes, and
httptools keeps every header it is sent: no limit on their size. This protocol closes both:

- ``header_timeout``: seconds from the connection's start (or the first byte of a next
  request on a kept-alive connection) until the blank line that ends the headers. Past it,
  a connection that has sent part of a request gets 408 and is closed; one that sent
  nothing is closed.
- ``max_header_bytes``: the request line and the headers together; larger gets 431 and the
  connection is closed before any of it reaches the application.

The cost on the request path is a length and a flag per received chunk: the timer is armed
only when a chunk ends inside the headers (most requests arrive whole in one chunk), plus one
timer per new connection. Reading the body has its own deadline, in the application
(``server.body_timeout``, :mod:`turnout.server.deadlines`).

One change to how responses leave: uvicorn writes the response head (status line and
headers) and the body apart, two system calls and two TCP segments for every response, and
a client that reads the head first wakes twice. Each request's response cycle writes
through :class:`_HeadWithBody`, which holds the head until the first body write and sends
both in one ``writelines`` (uvloop: one ``writev``). The head is held no longer than the
event loop's next turn: a response that sends its head and then waits (a stream whose first
event is not ready) still shows its status at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from turnout.exceptions import HeadersTooLarge, RequestTimeout, TurnoutError
from turnout.server.errors import openai_error

__all__ = ["GatewayProtocol"]


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits in the module docstring; give it to
    uvicorn as ``http=functools.partial(GatewayProtocol, header_timeout=..., ...)``."""

    def __init__(
        self,
        *args: Any,
        header_timeout: float = 10.0,
        max_header_bytes: int = 64 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        #: inside a request's line and headers (from its first byte to the blank line)
        self._in_headers = False
        #: bytes of the current headers received in earlier chunks, and in the current one
        self._earlier = 0
        self._chunk = 0
        self._refused = False

    # -- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._chunk = len(data)
        super().data_received(data)
        if self._in_headers and not self._refused:
            self._earlier += self._chunk
            if self._earlier > self.max_header_bytes:
                self._refuse(_too_large(self.max_header_bytes))
            elif self._header_timer is None:
                self._arm()

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_headers = True
        self._earlier = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        if self._refused:
            return
        if self._earlier + self._chunk > self.max_header_bytes and self._header_size() > (
            self.max_header_bytes
        ):
            self._refuse(_too_large(self.max_header_bytes))
            return
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before and cycle is not None and self.scope["method"] != "HEAD":
            cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    # -- the limits -------------------------------------------------------------------------

    def _header_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._in_headers:
            self._refuse(
                RequestTimeout(
                    f"The request headers did not arrive within {self.header_timeout:g} "
                    "seconds; send them at once, or raise server.header_timeout."
                )
            )
        elif self.cycle is None and not self.transport.is_closing():
            self.transport.close()  # a connection that never sent a byte

    def _refuse(self, exc: TurnoutError) -> None:
        """Answer ``exc`` and close: the rest of what the client sends is never read."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        body = openai_error(exc)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (exc.status, _REASONS[exc.status], len(body), body)
        )
        self.transport.close()


class _HeadWithBody:
    """The transport as one response cycle sees it (uvicorn's cycle calls ``write``,
    ``close`` and ``is_closing``): its first write that is not ``100 Continue`` (the response
    head) is held and leaves with the next write, or on the loop's next turn if none comes."""

    __slots__ = ("_held", "_loop", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif self._started or data.startswith(b"HTTP/1.1 100 "):
            self._transport.write(data)
        else:
            self._started = True
            self._held = data
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _too_large(limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(
        f"The request line and headers are larger than the gateway accepts ({limit} bytes); "
        "send fewer or shorter headers, or raise server.max_header_bytes."
    )
