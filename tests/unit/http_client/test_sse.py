"""turnout.http.sse.SSEDecoder: the same events whatever the chunking and line endings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnout.http.sse import SSEDecoder


def decode(*chunks: bytes) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def reference(stream: bytes) -> list[bytes]:
    """The data payloads of ``stream`` read whole, line by line (the close() semantics: a
    last event without its blank line still counts)."""
    out: list[bytes] = []
    data: list[bytes] | None = None
    for line in re.split(rb"\r\n|\r|\n", stream):
        if not line:
            if data is not None:
                out.append(b"\n".join(data))
            data = None
        elif line.startswith(b"data:"):
            value = line[5:]
            data = [*(data or []), value[1:] if value.startswith(b" ") else value]
    if data is not None:
        out.append(b"\n".join(data))
    return out


OPENAI_STREAM = (
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    b"event: message\nid: 7\nretry: 1000\n"
    b'data: {"choices":[{"delta":{"content":" world"}}]}\n\n'
    b"data: first line\ndata:second line\ndata:  indented\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    b'{"choices":[{"delta":{"role":"assistant","content":""}}]}',
    b'{"choices":[{"delta":{"content":"Hello"}}]}',
    b'{"choices":[{"delta":{"content":" world"}}]}',
    b"first line\nsecond line\n indented",
    b"[DONE]",
]


def test_whole_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(OPENAI_STREAM) == EXPECTED
    assert decoder.close() == []
    assert reference(OPENAI_STREAM) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_split_into_three_chunks(ending: bytes) -> None:
    stream = OPENAI_STREAM.replace(b"\n", ending)
    n = len(stream)
    for i in range(n + 1):
        for j in range(i, n + 1, 3):
            assert decode(stream[:i], stream[i:j], stream[j:]) == EXPECTED, (i, j)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_byte_by_byte(ending: bytes) -> None:
    stream = OPENAI_STREAM.replace(b"\n", ending)
    decoder = SSEDecoder()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == EXPECTED, "every event is out as soon as its blank line is in"
    assert decoder.close() == []


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [b"a"]
    assert decoder.feed(b"\ndata: b\r\n\r") == [b"b"]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: c\r\ndata: d\r") == []
    assert decoder.feed(b"\n\r\n") == [b"c\nd"]
    assert decoder.close() == []


def test_cr_line_endings_dispatch_without_waiting_for_more() -> None:
    """A blank line made of a CR at the end of a chunk ends the event there and then: a CR
    needs no LF after it."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [b"a"]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [b"b"]
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: c\r\r") == [b"c"]


def test_close_returns_a_last_event_without_its_blank_line() -> None:
    for tail in (b"data: last", b"data: last\n", b"data: last\r\n", b"data: last\r"):
        decoder = SSEDecoder()
        assert decoder.feed(b"data: one\n\n" + tail) == [b"one"]
        assert decoder.close() == [b"last"], tail
        assert decoder.close() == []


def test_fields_other_than_data_and_comments() -> None:
    assert decode(b": comment only\n\n") == []
    assert decode(b"event: ping\nid: 1\n\n") == []
    assert decode(b"id: 1\ndata: x\nevent: e\n: note\ndata: y\n\n") == [b"x\ny"]
    assert decode(b"data\n\n") == [], "a bare 'data' line is not a data line here"
    assert decode(b"data:\n\n") == [b""]
    assert decode(b"data:no-space\n\n") == [b"no-space"]
    assert decode(b"\n\n\ndata: after blank lines\n\n\n\n") == [b"after blank lines"]
    assert decode(b"") == []


def test_binary_safe_payloads() -> None:
    payload = "données: 你好 🚀".encode()
    assert decode(b"data: " + payload + b"\n\n") == [payload]


# ---------------------------------------------------------------- arbitrary streams

LINE = st.one_of(
    st.builds(lambda v: b"data: " + v, st.binary(max_size=12)),
    st.builds(lambda v: b"data:" + v, st.binary(max_size=12)),
    st.sampled_from([b"", b"", b": ping", b"event: delta", b"id: 42", b"retry: 5", b"data"]),
).map(lambda line: line.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    lines = draw(st.lists(LINE, max_size=25))
    endings = draw(
        st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=len(lines), max_size=len(lines))
    )
    stream = b"".join(line + end for line, end in zip(lines, endings, strict=True))
    stream += draw(LINE)  # maybe an unterminated last line
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return stream, chunks


@settings(max_examples=400, deadline=None, database=None)
@given(streams())
def test_any_chunking_gives_the_events_of_the_whole_stream(
    case: tuple[bytes, list[bytes]],
) -> None:
    stream, chunks = case
    assert decode(*chunks) == reference(stream)
