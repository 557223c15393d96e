"""The OpenAI-compatible backend: OpenAI itself and every service or engine server that speaks
its wire format (Azure, DeepSeek, Qwen, Qianfan, Mistral, Groq, OpenRouter, vLLM, Ollama,
llama.cpp server, TGI, ...; see :mod:`turnout.backends.presets`).

One connection pool per backend, opened at start-up (:mod:`turnout.http.client`); keep-alive,
compressed responses, connect and read (between-bytes) timeouts plus the request's overall
deadline. Streams pass through event by event: each SSE ``data:`` payload travels on as the
same bytes, parsed only when it carries usage.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import orjson

from turnout.backends.base import (
    Backend,
    BackendRequest,
    Capabilities,
    Chunk,
    RequestContext,
    Result,
    Usage,
)
from turnout.backends.errors import client_errors, scrub, status_error
from turnout.backends.presets import get_preset
from turnout.backends.supervisor import Supervisor
from turnout.config import BackendConfig
from turnout.exceptions import (
    BackendError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamUnavailable,
)
from turnout.http.client import Endpoint, Pool, Response
from turnout.http.sse import SSEDecoder

__all__ = ["OpenAICompatBackend"]

_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_FINISH_MARKERS = (b'"finish_reason":"', b'"finish_reason": "')
_MAX_ERROR_TEXT = 1000
_MAX_ERROR_BODY = 64 * 1024


class OpenAICompatBackend(Backend):
    capabilities = Capabilities(completions=True, embeddings=True)

    def __init__(self, name: str, config: BackendConfig) -> None:
        super().__init__(name)
        self.config = config
        self.preset = get_preset(config.preset)
        self.local = config.local if config.local is not None else self.preset.local
        self.stream_usage = (
            config.stream_usage if config.stream_usage is not None else self.preset.stream_usage
        )
        self._base = config.resolved_base_url or ""
        self._endpoint = Endpoint.parse(self._base + "/")
        self._host = self._endpoint.host
        self._drop = self.preset.drop_fields
        self._timeouts = config.timeout
        self._headers = _header_block(self._default_headers())
        #: never repeated from an upstream's error text (see backends.errors.scrub)
        self._secrets = _credentials(config)
        self._heads: dict[tuple[str, str, str], bytes] = {}
        self._pool: Pool | None = None
        #: runs the engine server behind base_url when the config has ``launch:``
        self.supervisor: Supervisor | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._pool = Pool(
            self._endpoint,
            max_connections=self.config.max_connections,
            connect_timeout=self._timeouts.connect,
            ssl_context=self._tls_context() if self._endpoint.scheme == "https" else None,
        )
        if self.config.launch is not None:
            # returns at once: until the engine is healthy, requests fail fast with 503
            self.supervisor = Supervisor(
                self.name,
                self.config.launch,
                self._base,
                ssl_context=self._tls_context() if self._endpoint.scheme == "https" else None,
            )
            await self.supervisor.start()

    def _tls_context(self) -> ssl.SSLContext:
        """The system's trust store (plus tls_ca_file); TLS 1.2 at least."""
        context = ssl.create_default_context()
        if self.config.tls_ca_file:
            context.load_verify_locations(cafile=os.path.expanduser(self.config.tls_ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        if self.supervisor is not None:
            await self.supervisor.aclose()

    def _default_headers(self) -> dict[str, str]:
        headers = {
            "User-Agent": "turnout/0.1",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        }
        headers.update(self.preset.extra_headers)
        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        if key and self.preset.auth == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif key and self.preset.auth == "api-key":
            headers["api-key"] = key
        headers.update(self.config.headers)
        return headers

    def _head(self, method: str, path: str, model: str) -> bytes:
        """Request line and fixed headers for ``path`` (``chat/completions``, ...), cached."""
        key = (method, path, model)
        head = self._heads.get(key)
        if head is None:
            url = Endpoint.parse(self._build_url(path, model))
            head = (
                f"{method} ".encode()
                + url.target
                + b" HTTP/1.1\r\nHost: "
                + url.host_header
                + b"\r\n"
                + self._headers
            )
            if len(self._heads) < 4096:
                self._heads[key] = head
        return head

    def _build_url(self, path: str, model: str) -> str:
        if not self.preset.azure_deployments:
            return f"{self._base}/{path}"
        if self.config.api_version:
            return (
                f"{self._base}/openai/deployments/{self._segment(model)}/{path}"
                f"?api-version={self.config.api_version}"
            )
        return f"{self._base}/openai/v1/{path}"

    def _segment(self, model: str) -> str:
        """``model`` as one URL path segment: nothing in it may change the path, the query or
        the host (it may come from a caller's ``BACKEND/MODEL`` name)."""
        if model in ("", ".", ".."):
            raise UpstreamBadRequest(
                f"Backend {self.name!r}: {model!r} cannot name an Azure deployment; use the "
                "deployment's name.",
                backend=self.name,
            )
        return quote(model, safe="")

    # -- the interface ----------------------------------------------------------------------

    async def chat(self, request: BackendRequest, ctx: RequestContext) -> Result:
        return await self._call("chat/completions", request, ctx, expect="choices")

    def stream_chat(self, request: BackendRequest, ctx: RequestContext) -> AsyncIterator[Chunk]:
        return self._stream("chat/completions", request, ctx)

    async def completion(self, request: BackendRequest, ctx: RequestContext) -> Result:
        return await self._call("completions", request, ctx, expect="choices")

    def stream_completion(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        return self._stream("completions", request, ctx)

    async def embed(self, request: BackendRequest, ctx: RequestContext) -> Result:
        return await self._call("embeddings", request, ctx, expect="data")

    async def list_models(self) -> list[str]:
        ctx = RequestContext("list-models", asyncio.get_running_loop().time() + 10)
        raw = await self._send(self._head("GET", "models", ""), b"", ctx, read_all=True)
        data = _parse_object(raw, "data", self.name)
        return [str(m.get("id")) for m in data["data"] if isinstance(m, dict)]

    async def check_health(self) -> None:
        supervisor = self.supervisor
        if supervisor is not None and supervisor.state != "healthy":
            status = supervisor.status()
            raise UpstreamUnavailable(
                f"Backend {self.name!r}: its engine server is {status.state} "
                f"(restarts: {status.restarts}, last exit code: {status.last_exit_code}).",
                backend=self.name,
            )
        await self.list_models()

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(
        self, path: str, request: BackendRequest, ctx: RequestContext, *, expect: str
    ) -> Result:
        body = self._prepare(request.body, stream=False)
        raw = await self._send(self._head("POST", path, request.model), body, ctx, read_all=True)
        data = _parse_object(raw, expect, self.name)
        return Result(data=data, usage=Usage.from_dict(data.get("usage")), raw=raw)

    async def _send(self, head: bytes, body: bytes, ctx: RequestContext, *, read_all: bool) -> Any:
        """Send one request; the whole body (``read_all``) or the open Response."""
        pool = self._pool
        if pool is None:
            raise UpstreamUnavailable(f"Backend {self.name!r} is not started.", backend=self.name)
        deadline = min(ctx.deadline, asyncio.get_running_loop().time() + self._timeouts.total)
        data = head + b"Content-Length: %d\r\n\r\n" % len(body)
        with client_errors(self.name, self._host):
            resp = await pool.request(
                data, body, deadline=deadline, read_timeout=self._timeouts.read
            )
            if resp.status >= 400:
                raw = await resp.read()
                raise status_error(
                    self.name, resp.status, raw[:_MAX_ERROR_BODY], resp.headers, self._secrets
                )
            if read_all:
                return await resp.read()
        return resp

    async def _stream(
        self, path: str, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        body = self._prepare(request.body, stream=True)
        resp: Response = await self._send(
            self._head("POST", path, request.model), body, ctx, read_all=False
        )
        finished = False
        try:
            if resp.content_type != "text/event-stream":
                raise UpstreamInvalidResponse(
                    f"Backend {self.name!r} answered a stream request with "
                    f"{resp.content_type or 'no content type'}, not an event stream.",
                    backend=self.name,
                )
            decoder = SSEDecoder()
            # closed at once on [DONE]: a generator left to the garbage collector costs the
            # event loop a wake-up through its finalizer hook
            # for a consumer that forwards SSE as it is, the plain events of one read travel as
            # one framed chunk: the per-event work in every layer above is most of what a
            # streamed request costs beyond a JSON one (docs/benchmarks.md)
            batch = ctx.sse_passthrough
            frames: list[bytes] = []
            async with aclosing(resp.iter_chunks()) as chunks:
                with client_errors(self.name, self._host):
                    async for data in chunks:
                        payloads = decoder.feed(data)
                        last = len(payloads) - 1
                        for i, payload in enumerate(payloads):
                            if payload == b"[DONE]":
                                finished = True
                                if frames:
                                    yield Chunk.framed(b"".join(frames), False)
                                return
                            if _FINISH_MARKERS[0] in payload or _FINISH_MARKERS[1] in payload:
                                finished = True
                            if batch and _plain(payload):
                                frames += (b"data: ", payload, b"\n\n")
                                continue
                            if frames:
                                yield Chunk.framed(b"".join(frames), True)
                                frames.clear()
                            chunk = self._chunk(payload)
                            chunk.more = i < last
                            yield chunk
                        if frames:
                            yield Chunk.framed(b"".join(frames), False)
                            frames.clear()
                    for payload in decoder.close():  # a last event without its blank line
                        if payload == b"[DONE]":
                            finished = True
                            return
                        if _FINISH_MARKERS[0] in payload or _FINISH_MARKERS[1] in payload:
                            finished = True
                        yield self._chunk(payload)
        finally:
            resp.close()
        if not finished:
            raise UpstreamUnavailable(
                f"Backend {self.name!r} ended the stream before it was complete.",
                backend=self.name,
            )

    def _chunk(self, payload: bytes) -> Chunk:
        if payload.startswith(b'{"error"'):
            raise _stream_error(_loads(payload, self.name), self.name, self._secrets)
        if _USAGE_MARKERS[0] in payload or _USAGE_MARKERS[1] in payload:
            data = _loads(payload, self.name)
            return Chunk(raw=payload, data=data, usage=Usage.from_dict(data.get("usage")))
        return Chunk(raw=payload)

    def _prepare(self, body: dict[str, Any], *, stream: bool) -> bytes:
        if stream:
            body = dict(body)
            body["stream"] = True
            if self.stream_usage:
                options = dict(body.get("stream_options") or {})
                options["include_usage"] = True
                body["stream_options"] = options
        if self._drop:
            body = {k: v for k, v in body.items() if k not in self._drop}
        return orjson.dumps(body)


def _plain(payload: bytes) -> bool:
    """An event with neither usage nor an error in it (it may travel framed, unparsed)."""
    return (
        not payload.startswith(b'{"error"')
        and _USAGE_MARKERS[0] not in payload
        and _USAGE_MARKERS[1] not in payload
    )


def _header_block(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} contains a line break or NUL; fix the config")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    return b"".join(lines)


def _stream_error(data: dict[str, Any], backend: str, secrets: tuple[str, ...]) -> BackendError:
    err = data.get("error")
    message = scrub(str(err.get("message") if isinstance(err, dict) else err), secrets)
    return UpstreamError(
        f"Backend {backend!r} reported an error mid-stream: {message[:_MAX_ERROR_TEXT]}",
        backend=backend,
    )


_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie")


def _credentials(config: BackendConfig) -> tuple[str, ...]:
    """The api_key and the values of configured headers whose names say they are secret."""
    found = [config.api_key.get_secret_value()] if config.api_key else []
    for name, value in config.headers.items():
        if any(word in name.lower() for word in _SECRET_HEADER_WORDS):
            found.append(value.removeprefix("Bearer ").strip())
    return tuple(secret for secret in found if len(secret) >= 4)


def _loads(raw: bytes, backend: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamInvalidResponse(
            f"Backend {backend!r} returned a response that is not JSON.", backend=backend
        ) from None


def _parse_object(raw: bytes, expect: str, backend: str) -> dict[str, Any]:
    data = _loads(raw, backend)
    if not isinstance(data, dict) or not isinstance(data.get(expect), list):
        raise UpstreamInvalidResponse(
            f"Backend {backend!r} returned JSON without the expected '{expect}' list.",
            backend=backend,
        )
    return data
