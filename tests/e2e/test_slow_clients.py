"""Slow and oversized clients against the real gateway, over raw sockets: headers sent a
byte at a time, a body trickled after its headers, a connection that says nothing, headers
over the size limit, JSON nested too deep. Each gets its answer (or the door) in bounded time,
and the gateway keeps serving everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.support import MASTER_KEY, UPSTREAM_KEY, Gateway, backend, deployment, run_gateway
from tests.fakes import FakeUpstream

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
#: the limits are kept to within this much (the body deadline's timer runs every 0.25 s here)
SLACK = 1.5


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    config = {
        "server": {
            "header_timeout": HEADER_TIMEOUT,
            "body_timeout": BODY_TIMEOUT,
            "max_header_bytes": 8192,
            "max_json_depth": 32,
        },
        "backends": {"fake": backend(upstream_server.base_url, "env:FAKE_UPSTREAM_KEY")},
        "models": {"chat": deployment("fake", "gpt-4o-mini")},
    }
    workdir = tmp_path_factory.mktemp("slow-clients")
    with run_gateway(workdir, config=config, env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


def connect(gw: Gateway) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def head(body_length: int, extra: str = "") -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {body_length}\r\n{extra}\r\n"
    ).encode()


def read_all(sock: socket.socket) -> bytes:
    """Everything until the gateway closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def trickle(sock: socket.socket, data: bytes, every: float, until: float) -> bool:
    """Send ``data`` a byte at a time; False when the gateway closed the connection first."""
    for byte in data:
        if time.monotonic() > until:
            return True
        try:
            sock.send(bytes([byte]))
        except OSError:
            return False
        time.sleep(every)
    return True


def assert_closed_with(response: bytes, status: int, code: str) -> None:
    assert response.startswith(f"HTTP/1.1 {status} ".encode()), response[:300]
    assert b"connection: close" in response.lower()
    assert f'"code":"{code}"'.encode() in response


def test_a_trickled_body_gets_408_and_the_connection_closed(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(head(1000) + b'{"model": "chat",')
        started = time.monotonic()
        trickle(sock, b" " * 1000, every=0.1, until=started + BODY_TIMEOUT + SLACK + 1)
        response = read_all(sock)
    elapsed = time.monotonic() - started
    assert_closed_with(response, 408, "request_timeout")
    assert b"server.body_timeout" in response
    assert BODY_TIMEOUT - 0.1 <= elapsed < BODY_TIMEOUT + SLACK + 1


def test_headers_then_silence_gets_408(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(head(100))
        started = time.monotonic()
        response = read_all(sock)
    assert_closed_with(response, 408, "request_timeout")
    assert time.monotonic() - started < BODY_TIMEOUT + SLACK


def test_headers_sent_a_byte_at_a_time_get_408(gateway: Gateway) -> None:
    """uvicorn alone would wait for these headers forever (docs/security.md)."""
    with connect(gateway) as sock:
        started = time.monotonic()
        still_open = trickle(sock, head(2), every=0.05, until=started + HEADER_TIMEOUT + SLACK)
        response = read_all(sock)
    elapsed = time.monotonic() - started
    assert not still_open or response  # closed while still sending, or answered
    assert_closed_with(response, 408, "request_timeout")
    assert b"server.header_timeout" in response
    assert HEADER_TIMEOUT - 0.1 <= elapsed < HEADER_TIMEOUT + SLACK


def test_a_connection_that_never_speaks_is_closed(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
    assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - started < HEADER_TIMEOUT + SLACK


@pytest.mark.parametrize("pieces", [1, 40])
def test_headers_over_the_limit_get_431(gateway: Gateway, pieces: int) -> None:
    """In one chunk, or spread over many (the limit counts across chunks)."""
    request = head(2, extra=f"X-Padding: {'a' * 10000}\r\n") + b"{}"
    with connect(gateway) as sock:
        size = -(-len(request) // pieces)
        for i in range(0, len(request), size):
            try:
                sock.sendall(request[i : i + size])
            except OSError:
                break
            time.sleep(0.01)
        response = read_all(sock)
    assert_closed_with(response, 431, "headers_too_large")
    assert b"server.max_header_bytes" in response


def test_headers_under_the_limit_pass(gateway: Gateway) -> None:
    resp = gateway.post(
        "/v1/chat/completions",
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Padding": "a" * 4000},
    )
    assert resp.status == 200, resp.text


def test_json_nested_too_deep_is_400(gateway: Gateway) -> None:
    deep = "[" * 33 + "]" * 33
    resp = gateway.post("/v1/chat/completions", data=f'{{"model": "chat", "x": {deep}}}')
    assert resp.status == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_json"
    assert "more than 32 levels" in error["message"]


def test_everyone_else_is_served_meanwhile(gateway: Gateway) -> None:
    """Ten slow connections do not hold up a normal request."""
    slow = [connect(gateway) for _ in range(10)]
    try:
        for sock in slow:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        with gateway.client() as client:
            reply = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
        assert reply.choices[0].message.content == "echo: hi"
        assert time.monotonic() - started < HEADER_TIMEOUT
    finally:
        for sock in slow:
            sock.close()
