"""Server-sent events: split a byte stream into the ``data`` payloads of its events."""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed bytes as they arrive; get back the ``data`` payload of every complete event.

    Multi-line ``data`` fields are joined with ``\\n``; comments, ``event:``, ``id:`` and
    ``retry:`` fields are dropped. LF, CRLF and CR line endings, and events split anywhere
    across chunks, are handled."""

    __slots__ = ("_buf", "_cr")

    def __init__(self) -> None:
        self._buf = b""  # the start of an event, line endings already LF
        self._cr = False  # the last chunk ended with a CR: a LF first in the next one is its pair

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr and chunk:
            self._cr = False
            if chunk[0] == 10:  # b"\n"
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk[-1] == 13  # b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk if self._buf else chunk
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
        rest, self._buf, self._cr = self._buf.strip(b"\n"), b"", False
        payload = _data(rest) if rest else None
        return [payload] if payload is not None else []


def _data(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the common case: one data line
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(parts) if parts else None
