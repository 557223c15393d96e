"""Curl-level HTTP helpers on the standard library (no client-side magic, no retries)."""

from __future__ import annotations

import http.client
import json as jsonlib
import select
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

_NOTHING: Any = object()


@dataclass
class RawResponse:
    status: int
    headers: Message  # case-insensitive .get()
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.hostname and parts.port, url
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), path


def _encode(data: bytes | str | None, json: Any, headers: dict[str, str]) -> bytes | None:
    if json is not _NOTHING:
        headers.setdefault("Content-Type", "application/json")
        return jsonlib.dumps(json).encode()
    if isinstance(data, str):
        return data.encode()
    return data


def request(
    method: str,
    url: str,
    data: bytes | str | None = None,
    *,
    json: Any = _NOTHING,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> RawResponse:
    """Send one request and read the whole response (raises on a truncated body)."""
    hdrs = dict(headers or {})
    body = _encode(data, json, hdrs)
    conn, path = _connection(url, timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return RawResponse(resp.status, resp.msg, resp.read())
    finally:
        conn.close()


@contextmanager
def open_stream(
    method: str,
    url: str,
    *,
    json: Any = _NOTHING,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[http.client.HTTPResponse]:
    """Send a request and yield the response unread (``readline()`` it); closing the
    ``with`` block closes the TCP connection, whatever was read."""
    hdrs = dict(headers or {})
    body = _encode(None, json, hdrs)
    conn, path = _connection(url, timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        yield conn.getresponse()
    finally:
        conn.close()


def sse_data(body: bytes) -> list[str]:
    """The ``data`` of each server-sent event in ``body``, in order."""
    events = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [
            line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")
        ]
        if lines:
            events.append(b"\n".join(lines).decode())
    return events


def send_large_body(
    url: str,
    *,
    prefix: bytes,
    filler_size: int,
    suffix: bytes,
    headers: Mapping[str, str],
    chunked: bool = False,
    timeout: float = 30.0,
) -> RawResponse:
    """POST ``prefix + b"x" * filler_size + suffix`` over a raw socket.

    It stops sending as soon as the server answers (a server may reply 413 before reading the
    body) or closes, then reads the response. ``chunked`` sends it with
    ``Transfer-Encoding: chunked`` instead of a ``Content-Length``.
    """
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    total = len(prefix) + filler_size + len(suffix)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    piece = 64 * 1024

    def pieces() -> Iterator[bytes]:
        yield prefix
        left = filler_size
        while left > 0:
            size = min(piece, left)
            yield b"x" * size
            left -= size
        yield suffix

    def frame(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for data in pieces():
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:  # the server answered (or closed) early: stop sending
                    break
                sock.sendall(frame(data))
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading; its answer may still be waiting for us
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return RawResponse(resp.status, resp.msg, resp.read())
