"""Server-sent events: split a byte stream into the ``data`` payloads of its events."""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed bytes as they arrive; get back the ``data`` payload of every complete event.

    Multi-line ``data`` fields are joined with ``\\n``; comments, ``event:``, ``id:`` and
    ``retry:`` fields are dropped. LF, CRLF and CR line endings, and events split anywhere
    across chunks, are handled."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = _normalise(buf)
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            payload = _data(buf[start:end])
            if payload is not None:
                out.append(payload)
            start = end + 2
        self._buf = buf[start:] if start else buf
        return out

    def close(self) -> list[bytes]:
        """Payloads of a last event the stream did not terminate with a blank line."""
        rest, self._buf = self._buf.strip(b"\n"), b""
        payload = _data(rest) if rest else None
        return [payload] if payload is not None else []


def _normalise(buf: bytes) -> bytes:
    """CRLF and CR to LF, keeping a trailing CR that may be the first half of a CRLF."""
    tail = b"\r" if buf.endswith(b"\r") else b""
    body = buf[:-1] if tail else buf
    return body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def _data(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the common case: one data line
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(parts) if parts else None
