"""How responses leave the gateway's HTTP protocol (turnout.server.protocol): the response head
and the first body write go out in one write, uvicorn's own response cycle driven by a real
request parsed by httptools; only the socket is replaced by a transport that records what is
written (what the kernel would get, one call per system call)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from turnout.server.protocol import GatewayProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []  # one entry per write / writelines call
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append(b"".join(bytes(d) for d in list_of_data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True


def _connect(app: Any) -> tuple[GatewayProtocol, RecordingTransport]:
    """A connection to ``app`` through the gateway's protocol, on a recording transport."""
    config = uvicorn.Config(app=app, http=GatewayProtocol, lifespan="off", access_log=False)
    config.load()
    protocol = GatewayProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _serve_one(app: Any, request: bytes, *, settle: float = 0.05) -> RecordingTransport:
    protocol, transport = _connect(app)
    protocol.data_received(request)
    await asyncio.sleep(settle)
    protocol.connection_lost(None)
    return transport


LENGTH_4 = (b"content-length", b"4")


def _get(path: str = "/", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


async def _json_app(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"11"), (b"x-a", b"1")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def test_head_and_body_leave_in_one_write() -> None:
    transport = asyncio.run(_serve_one(_json_app, _get()))
    assert len(transport.calls) == 1, transport.calls
    (only,) = transport.calls
    assert only.startswith(b"HTTP/1.1 200 OK\r\n") and only.endswith(b'\r\n\r\n{"ok":true}')


def test_a_stream_sends_its_head_with_the_first_event_then_each_event() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for event in (b"data: 1\n\n", b"data: 2\n\n"):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    calls = asyncio.run(_serve_one(app, _get())).calls
    assert len(calls) == 3, calls
    assert calls[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert calls[0].endswith(b"transfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
    assert calls[1:] == [b"9\r\ndata: 2\n\n\r\n", b"0\r\n\r\n"]


def test_a_head_followed_by_a_wait_is_sent_at_once() -> None:
    """A response that sends its head and then waits (a stream whose first event is slow)
    shows its status on the loop's next turn, not when the first event comes."""
    seen: dict[str, list[bytes]] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [LENGTH_4]})
        await asyncio.sleep(0.01)
        seen["before the body"] = list(transport_calls)
        await send({"type": "http.response.body", "body": b"late"})

    transport_calls: list[bytes] = []

    async def run() -> list[bytes]:
        protocol, transport = _connect(app)
        transport.calls = transport_calls
        protocol.data_received(_get())
        await asyncio.sleep(0.05)
        protocol.connection_lost(None)
        return transport.calls

    calls = asyncio.run(run())
    assert len(seen["before the body"]) == 1
    assert seen["before the body"][0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert calls[1:] == [b"late"]


def test_head_requests_and_100_continue_are_not_held() -> None:
    head = asyncio.run(_serve_one(_json_app, _get(method="HEAD"))).calls
    assert len(head) == 1 and head[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert head[0].endswith(b"\r\n\r\n")  # no body on a HEAD response

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def run() -> list[bytes]:
        protocol, transport = _connect(echo)
        extra = "Content-Length: 2\r\nExpect: 100-continue\r\n"
        protocol.data_received(_get(method="POST", extra=extra))
        await asyncio.sleep(0.02)
        first = list(transport.calls)  # the app waits for the body: 100 Continue went out
        protocol.data_received(b"hi")
        await asyncio.sleep(0.02)
        protocol.connection_lost(None)
        assert first == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        return transport.calls

    calls = asyncio.run(run())
    assert len(calls) == 2 and calls[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert calls[1].endswith(b"\r\n\r\nhi")


def test_a_closing_response_sends_everything_before_it_closes() -> None:
    transport = asyncio.run(_serve_one(_json_app, _get(extra="Connection: close\r\n")))
    assert len(transport.calls) == 1 and transport.calls[0].endswith(b'{"ok":true}')
    assert b"connection: close" in transport.calls[0] and transport.closed
