"""Stream endings the OpenAI-compatible backend must accept: a last event whose blank line
never came (some servers close right after ``data: [DONE]``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from turnout.backends.base import BackendRequest, RequestContext
from turnout.backends.openai_compat import OpenAICompatBackend
from turnout.config import BackendConfig
from turnout.exceptions import UpstreamUnavailable

CHUNK = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'  # noqa: E501
FINISH = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'  # noqa: E501


async def serve(body: bytes) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(body)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def contents(body: bytes) -> list[str]:
    async for url in serve(body):
        backend = OpenAICompatBackend("b", BackendConfig(base_url=url))
        await backend.start()
        try:
            request = BackendRequest({"model": "m", "messages": []})
            ctx = RequestContext.create("t", 10)
            return [
                c.data["choices"][0]["delta"].get("content", "")
                async for c in backend.stream_chat(request, ctx)
                if c.data["choices"]
            ]
        finally:
            await backend.aclose()
    raise AssertionError("unreachable")


async def test_done_without_its_blank_line_ends_the_stream() -> None:
    assert await contents(CHUNK + b"data: [DONE]") == ["hi"]


async def test_finish_event_without_its_blank_line_completes_the_stream() -> None:
    assert await contents(CHUNK + FINISH) == ["hi", ""]


async def test_a_stream_cut_before_its_end_is_an_error() -> None:
    with pytest.raises(UpstreamUnavailable, match="before it was complete"):
        await contents(CHUNK)


USAGE = b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'  # noqa: E501


async def chunks(body: bytes, *, passthrough: bool) -> list[tuple[bytes | None, bool, int | None]]:
    """(frames, more, completion tokens) of every chunk the backend yields."""
    async for url in serve(body):
        backend = OpenAICompatBackend("b", BackendConfig(base_url=url))
        await backend.start()
        try:
            request = BackendRequest({"model": "m", "messages": [], "stream": True})
            ctx = RequestContext.create("t", 10)
            ctx.sse_passthrough = passthrough
            return [
                (c.frames, c.more, c.usage.completion_tokens if c.usage else None)
                async for c in backend.stream_chat(request, ctx)
            ]
        finally:
            await backend.aclose()
    raise AssertionError("unreachable")


async def test_a_passthrough_consumer_gets_the_events_of_a_read_as_one_framed_chunk() -> None:
    # the SSE front door forwards frames as they are: the plain events of one read travel
    # as one chunk (no per-event work above the backend); usage comes as a chunk of its own
    body = CHUNK + CHUNK + FINISH + b"\n\n" + USAGE + b"data: [DONE]\n\n"
    assert await chunks(body, passthrough=True) == [
        (CHUNK + CHUNK + FINISH + b"\n\n", True, None),
        (None, True, 2),  # more: [DONE] came in the same read
    ]
    plain = await chunks(body, passthrough=False)
    assert [(frames, usage) for frames, _, usage in plain] == [(None, None)] * 3 + [(None, 2)]
