"""A small client for a running gateway's OpenAI-compatible API, timed for ``turnout compare``.

Built on turnout's own HTTP/1.1 client (:mod:`turnout.http.client`): one pool, keep-alive,
the SSE decoder of the backends. Failures become the gateway's error hierarchy at this
boundary (the same conversion the OpenAI-compatible backend uses), so that both kinds of
target report errors by the same codes.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any

import orjson

from turnout.advisor.metrics import Outcome
from turnout.advisor.timing import StreamClock
from turnout.backends.base import Usage
from turnout.backends.errors import client_errors, status_error
from turnout.exceptions import TurnoutError, UpstreamError, UpstreamInvalidResponse
from turnout.http.client import Endpoint, Pool, Response
from turnout.http.sse import SSEDecoder

__all__ = ["GatewayClient"]

_NAME = "gateway"
_MAX_ERROR_BODY = 64 * 1024


class GatewayClient:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` of one gateway."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 600.0) -> None:
        base = url.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        self.timeout = timeout
        self._chat = Endpoint.parse(self.base + "/chat/completions")
        self._models = Endpoint.parse(self.base + "/models")
        headers = "Content-Type: application/json\r\nUser-Agent: turnout-compare\r\n"
        if api_key:
            headers += f"Authorization: Bearer {api_key}\r\n"
        self._headers = headers.encode("latin-1")
        self._pool = Pool(self._chat, max_connections=4096)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def models(self) -> list[str]:
        """The public model names the gateway serves. Raises TurnoutError."""
        raw = await self._request(self._models, b"GET", b"", read_all=True)
        try:
            data = orjson.loads(raw)["data"]
            return [str(m["id"]) for m in data]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise UpstreamInvalidResponse(
                f"{self.base}/models did not answer with a model list; is it a turnout "
                "gateway (or another OpenAI-compatible server)?"
            ) from exc

    async def chat(self, body: dict[str, Any], stream: bool) -> Outcome:
        """Send one chat request and time it; failures are an Outcome with an error code."""
        clock = StreamClock()
        deployment: str | None = None
        try:
            resp = await self._request(self._chat, b"POST", orjson.dumps(body), read_all=False)
            deployment = resp.headers.get("x-turnout-deployment")
            if stream:
                await _read_stream(resp, clock)
            else:
                with client_errors(_NAME, self._chat.host):
                    raw = await resp.read()
                clock.whole(_usage(orjson.loads(raw)))
        except TurnoutError as exc:
            return clock.failed(exc.code, deployment)
        except orjson.JSONDecodeError:
            return clock.failed(UpstreamInvalidResponse.code, deployment)
        return clock.done(deployment)

    async def _request(
        self, endpoint: Endpoint, method: bytes, body: bytes, *, read_all: bool
    ) -> Any:
        head = (
            method
            + b" "
            + endpoint.target
            + b" HTTP/1.1\r\nHost: "
            + endpoint.host_header
            + b"\r\n"
            + self._headers
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        deadline = asyncio.get_running_loop().time() + self.timeout
        with client_errors(_NAME, endpoint.host):
            resp = await self._pool.request(
                head, body, deadline=deadline, read_timeout=self.timeout
            )
            if resp.status >= 400:
                raw = await resp.read()
                raise status_error(_NAME, resp.status, raw[:_MAX_ERROR_BODY], resp.headers)
            if read_all:
                return await resp.read()
        return resp


async def _read_stream(resp: Response, clock: StreamClock) -> None:
    if resp.content_type != "text/event-stream":
        resp.close()
        raise UpstreamInvalidResponse("the gateway did not answer the stream with SSE")
    decoder = SSEDecoder()
    async with aclosing(resp.iter_chunks()) as chunks:
        with client_errors(_NAME, "gateway"):
            async for data in chunks:
                for payload in decoder.feed(data):
                    if payload == b"[DONE]":
                        return
                    event = orjson.loads(payload)
                    if "error" in event:
                        raise _stream_error(event["error"])
                    clock.chunk(event, time.perf_counter())


def _stream_error(error: Any) -> UpstreamError:
    """The error event a gateway sends when a stream fails after it started."""
    fields = error if isinstance(error, dict) else {}
    code = fields.get("code")
    return UpstreamError(str(fields.get("message")), code=str(code) if code else None)


def _usage(data: Any) -> Usage | None:
    return Usage.from_dict(data.get("usage")) if isinstance(data, dict) else None
