"""The OpenAI-compatible backend: OpenAI itself and every service or engine server that speaks
its wire format (Azure, DeepSeek, Qwen, Qianfan, Mistral, Groq, OpenRouter, vLLM, Ollama,
llama.cpp server, TGI, ...; see :mod:`turnout.backends.presets`).

One pooled aiohttp session per backend, created at start-up; keep-alive and compressed
responses; connect and read (between-bytes) timeouts plus the request's overall deadline.
Streams pass through event by event: each SSE ``data:`` payload travels on as the same bytes.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
from yarl import URL

from turnout.backends.base import (
    Backend,
    BackendRequest,
    Capabilities,
    Chunk,
    RequestContext,
    Result,
    Usage,
)
from turnout.backends.presets import get_preset
from turnout.config import BackendConfig
from turnout.exceptions import (
    BackendError,
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["OpenAICompatBackend", "parse_retry_after"]

_JSON = "application/json"
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_FINISH_MARKERS = (b'"finish_reason":"', b'"finish_reason": "')
_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too many tokens")
_MAX_ERROR_TEXT = 1000


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
        base = config.resolved_base_url or ""
        self._base = base
        self._host = URL(base).host or base
        self._drop = self.preset.drop_fields
        self._timeouts = config.timeout
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections,
            keepalive_timeout=30,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._default_headers(),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self._timeouts.connect,
                sock_read=self._timeouts.read,
            ),
            skip_auto_headers=("User-Agent",),
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _default_headers(self) -> dict[str, str]:
        headers = {"User-Agent": "turnout/0.1", "Content-Type": _JSON, "Accept": _JSON}
        headers.update(self.preset.extra_headers)
        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        if key and self.preset.auth == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif key and self.preset.auth == "api-key":
            headers["api-key"] = key
        headers.update(self.config.headers)
        return headers

    def _url(self, path: str, model: str) -> URL:
        """The endpoint URL for ``path`` (``chat/completions``, ...); cached per model."""
        key = f"{path}\0{model}"
        url = self._urls.get(key)
        if url is None:
            url = URL(self._build_url(path, model))
            if len(self._urls) < 4096:
                self._urls[key] = url
        return url

    def _build_url(self, path: str, model: str) -> str:
        if not self.preset.azure_deployments:
            return f"{self._base}/{path}"
        if self.config.api_version:
            return (
                f"{self._base}/openai/deployments/{model}/{path}"
                f"?api-version={self.config.api_version}"
            )
        return f"{self._base}/openai/v1/{path}"

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
        with self._errors():
            async with self._session_or_fail().get(
                self._url("models", ""), timeout=self._timeout(ctx)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._status_error(resp.status, raw, resp.headers)
        data = _parse_object(raw, "data", self.name)
        return [str(m.get("id")) for m in data["data"] if isinstance(m, dict)]

    async def check_health(self) -> None:
        await self.list_models()

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(
        self, path: str, request: BackendRequest, ctx: RequestContext, *, expect: str
    ) -> Result:
        body = self._prepare(request.body, stream=False)
        with self._errors():
            async with self._session_or_fail().post(
                self._url(path, request.model), data=body, timeout=self._timeout(ctx)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._status_error(resp.status, raw, resp.headers)
        data = _parse_object(raw, expect, self.name)
        return Result(data=data, usage=Usage.from_dict(data.get("usage")), raw=raw)

    async def _stream(
        self, path: str, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        body = self._prepare(request.body, stream=True)
        finished = False
        with self._errors():
            async with self._session_or_fail().post(
                self._url(path, request.model), data=body, timeout=self._timeout(ctx)
            ) as resp:
                if resp.status >= 400:
                    raise self._status_error(resp.status, await resp.read(), resp.headers)
                if not resp.content_type.startswith("text/event-stream"):
                    raise UpstreamInvalidResponse(
                        f"Backend {self.name!r} answered a stream request with "
                        f"{resp.content_type or 'no content type'}, not an event stream.",
                        backend=self.name,
                    )
                try:
                    async for payload in _sse_payloads(resp.content):
                        if payload == b"[DONE]":
                            finished = True
                            break
                        if _FINISH_MARKERS[0] in payload or _FINISH_MARKERS[1] in payload:
                            finished = True
                        yield self._chunk(payload)
                finally:
                    if not finished:
                        resp.close()  # drop the connection: stops the upstream generating
        if not finished:
            raise UpstreamUnavailable(
                f"Backend {self.name!r} ended the stream before it was complete.",
                backend=self.name,
            )

    def _chunk(self, payload: bytes) -> Chunk:
        if payload.startswith(b'{"error"'):
            data = _loads(payload, self.name)
            raise _stream_error(data, self.name)
        usage = None
        if _USAGE_MARKERS[0] in payload or _USAGE_MARKERS[1] in payload:
            data = _loads(payload, self.name)
            usage = Usage.from_dict(data.get("usage"))
            return Chunk(raw=payload, data=data, usage=usage)
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

    def _timeout(self, ctx: RequestContext) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=min(ctx.remaining(), self._timeouts.total),
            sock_connect=self._timeouts.connect,
            sock_read=self._timeouts.read,
        )

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamUnavailable(f"Backend {self.name!r} is not started.", backend=self.name)
        return self._session

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Convert aiohttp and OS errors into the gateway's hierarchy."""
        try:
            yield
        except BackendError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"Backend {self.name!r} ({self._host}) did not answer in time.", backend=self.name
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnavailable(
                f"Cannot connect to backend {self.name!r} ({self._host}).", backend=self.name
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(
                f"The connection to backend {self.name!r} ({self._host}) failed: "
                f"{type(exc).__name__}.",
                backend=self.name,
            ) from exc

    def _status_error(self, status: int, raw: bytes, headers: Any) -> BackendError:
        return status_error(self.name, status, raw, headers)


def status_error(backend: str, status: int, raw: bytes, headers: Any) -> BackendError:
    """Map an upstream HTTP error status (and its body) to the gateway's hierarchy."""
    message, code = _error_text(raw)
    where = f"Backend {backend!r}"
    if status in (401, 403):
        return UpstreamAuthError(
            f"{where} refused the gateway's credentials (HTTP {status}); check the api_key "
            f"of backends.{backend} in the configuration.",
            backend=backend,
        )
    if status == 429:
        return UpstreamRateLimited(
            f"{where} is rate limiting requests: {message or 'HTTP 429'}",
            backend=backend,
            retry_after=parse_retry_after(headers),
        )
    if status == 404:
        return UpstreamNotFound(f"{where}: {message or 'not found (HTTP 404)'}", backend=backend)
    if status in (408, 504):
        return UpstreamTimeout(f"{where} timed out (HTTP {status}).", backend=backend)
    if status == 503 or status == 529:
        return UpstreamUnavailable(
            f"{where} is unavailable (HTTP {status}).",
            backend=backend,
            retry_after=parse_retry_after(headers),
        )
    if 400 <= status < 500:
        lowered = (message or "").lower()
        if code == "context_length_exceeded" or any(h in lowered for h in _CONTEXT_HINTS):
            return ContextLengthExceeded(message or "Context length exceeded.", backend=backend)
        return UpstreamBadRequest(
            message or f"{where} rejected the request (HTTP {status}).", backend=backend
        )
    return UpstreamError(f"{where} failed (HTTP {status}).", backend=backend)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(raw: bytes) -> tuple[str | None, str | None]:
    """The upstream's own error message and code, if its body says them in JSON."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        msg, code = err.get("message"), err.get("code")
        return (str(msg)[:_MAX_ERROR_TEXT] if msg else None, str(code) if code else None)
    if isinstance(err, str):
        return err[:_MAX_ERROR_TEXT], None
    return None, None


def _stream_error(data: dict[str, Any], backend: str) -> BackendError:
    err = data.get("error")
    message = err.get("message") if isinstance(err, dict) else err
    return UpstreamError(
        f"Backend {backend!r} reported an error mid-stream: {str(message)[:_MAX_ERROR_TEXT]}",
        backend=backend,
    )


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


async def _sse_payloads(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield the ``data`` payload of each server-sent event, as bytes."""
    parts: list[bytes] = []
    async for line in stream:
        line = line.rstrip(b"\r\n")
        if not line:
            if parts:
                yield parts[0] if len(parts) == 1 else b"\n".join(parts)
                parts = []
            continue
        if line.startswith(b"data:"):
            parts.append(line[6:] if line[5:6] == b" " else line[5:])
        # comments (":"), "event:", "id:" and "retry:" lines carry nothing we need
    if parts:
        yield b"\n".join(parts)
