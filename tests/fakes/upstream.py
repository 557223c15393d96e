"""A fake OpenAI-compatible upstream that speaks OpenAI's real wire format.

It is a real aiohttp server on 127.0.0.1 (free port) running in a background thread with its
own event loop, so sync and async tests can both use it.

Behaviour is deterministic:

* chat / completions reply ``"echo: <last user message>"``; one token = one whitespace-separated
  word; ``max_tokens`` / ``max_completion_tokens`` cap the number of words (finish_reason
  "length"); ``n`` gives n identical choices;
* usage counts words: prompt_tokens = words in all message contents (or in the prompt),
  completion_tokens = words emitted over all choices;
* embeddings are :func:`fake_embedding` vectors (values k/1024, exact in float32), as floats or,
  with ``encoding_format: base64``, little-endian float32 bytes in base64, like OpenAI.

Optional transport features: ``FakeUpstream(ssl_context=...)`` serves HTTPS (``base_url`` is
then ``https://...``); setting ``compression`` to "gzip" or "deflate" compresses every JSON and
SSE response of a request whose Accept-Encoding allows it (``RecordedRequest.content_encoding``
says what was sent); ``reset()`` turns it off again.

Latency, like a hosted API's (off by default; ``reset()`` turns it off again):
``first_byte_delay`` seconds before answering any POST, and ``token_delay`` seconds between
two SSE events of a stream (or per output token before a JSON chat answer).

``GET /health`` answers 200 ``{"status": "ok"}`` (the health endpoint of vLLM and
llama-server); ``healthy_from`` / ``unhealthy_from`` (``time.monotonic()`` values) make it
answer 503 before / from that moment.

Run as a process (an engine server for the supervisor's tests): ``python -m tests.fakes --port
P`` from the repository root; ``--help`` lists the options (a slow start, a health endpoint that
fails for a while or from some point on, exiting after N requests, ignoring SIGTERM).

Faults are scripted per request: :meth:`FakeUpstream.enqueue` makes the next matching
request(s) misbehave, :meth:`FakeUpstream.failing` makes every matching request misbehave
while the ``with`` block is open. Every request is recorded (:class:`RecordedRequest`), and
a client that goes away while a response is in progress sets ``RecordedRequest.disconnected``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web
from aiohttp.web import ContentCoding

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
DEFAULT_EMBEDDING_DIMENSIONS = 8
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class ErrorStatus:
    """Answer with this HTTP status and an OpenAI-style error body."""

    status: int
    message: str | None = None
    type: str | None = None
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def rate_limited(retry_after: int = 7) -> ErrorStatus:
    """429 with a ``Retry-After`` header, as OpenAI sends it."""
    return ErrorStatus(429, headers={"Retry-After": str(retry_after)})


@dataclass(frozen=True)
class Html:
    """An HTML page instead of JSON (a captive proxy, a load balancer error page...)."""

    status: int = 200
    body: str = "<html><head><title>Oops</title></head><body><h1>Bad Gateway</h1></body></html>"


@dataclass(frozen=True)
class Hang:
    """Never answer (no headers) until the client goes away."""


@dataclass(frozen=True)
class SlowFirstByte:
    """Sleep ``delay`` seconds before sending anything, then answer normally."""

    delay: float


@dataclass(frozen=True)
class ResetMidStream:
    """Send ``after_chunks`` SSE events (or half the JSON body), then reset the TCP connection.

    ``rst=True`` sends a real TCP RST (SO_LINGER 0); ``rst=False`` just closes the socket
    (FIN) in the middle of the chunked body.
    """

    after_chunks: int = 2
    rst: bool = True


@dataclass(frozen=True)
class EndlessStream:
    """A 200 SSE stream that emits a content chunk every ``interval`` seconds, forever."""

    interval: float = 0.05


Fault = ErrorStatus | Html | Hang | SlowFirstByte | ResetMidStream | EndlessStream

_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request (fake upstream).", None),
    401: ("invalid_request_error", "Incorrect API key provided: sk-****.", "invalid_api_key"),
    403: ("invalid_request_error", "You are not allowed to do this.", None),
    404: (
        "invalid_request_error",
        "The model does not exist or you do not have access to it.",
        "model_not_found",
    ),
    429: ("requests", "Rate limit reached for requests (fake upstream).", "rate_limit_exceeded"),
    500: (
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The engine is currently overloaded, please try again later.", None),
}


# ------------------------------------------------------------------ deterministic model


def words(text: str) -> list[str]:
    return text.split()


def content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def reply_tokens(text: str) -> list[str]:
    """The fake model's answer to ``text``, as tokens: ``["echo:", *words(text)]``."""
    return ["echo:", *words(text)]


def fake_embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """Deterministic vector for ``text``; every value is k/1024 with |k| <= 1000."""
    values = []
    for i in range(dimensions):
        digest = hashlib.sha256(f"{i}:{text}".encode()).digest()
        values.append((int.from_bytes(digest[:2], "big") % 2001 - 1000) / 1024)
    return values


def _cap(tokens: list[str], limit: Any) -> tuple[list[str], str]:
    if isinstance(limit, int) and not isinstance(limit, bool) and len(tokens) > limit:
        return tokens[:limit], "length"
    return tokens, "stop"


def _pieces(tokens: list[str]) -> list[str]:
    """Token deltas whose concatenation is ``" ".join(tokens)``."""
    return [tok if i == 0 else " " + tok for i, tok in enumerate(tokens)]


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: Any = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _positive_int(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadRequest(f"Invalid '{name}': expected an integer >= 1, got {value!r}.", name)


def _model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter", "model")
    return model


# ------------------------------------------------------------------------ recording


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the parsed JSON body, or None
    fault: Fault | None
    status: int | None = None  # status the fake answered with (None: no headers sent)
    response_usage: dict[str, Any] | None = None  # usage the fake reported, if any
    chunks_sent: int = 0  # SSE data events sent (including [DONE])
    disconnected: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    server_reset: bool = False  # the fake itself cut the connection (ResetMidStream)
    content_encoding: str | None = None  # the response was compressed (FakeUpstream.compression)
    received: float = field(default_factory=time.monotonic)  # when it arrived (monotonic)
    target: str = ""  # the request target as sent: path (percent-encoded as it came) and query

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


def _norm_path(path: str | None) -> str | None:
    if path is None or path == "*" or path.startswith("/v1/") or path == "/v1":
        return path
    return "/v1" + (path if path.startswith("/") else "/" + path)


# -------------------------------------------------------------------------- server


class FakeUpstream:
    """The fake server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = DEFAULT_MODELS,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.models = models
        self.ssl_context = ssl_context
        #: "gzip" or "deflate": compress responses for clients that accept it (see module doc)
        self.compression: str | None = None
        #: seconds before answering a POST, and between SSE events (see module doc)
        self.first_byte_delay = 0.0
        self.token_delay = 0.0
        self.port = 0
        self._bind_port = port
        #: GET /health answers 503 before this time.monotonic() value / from this one on
        self.healthy_from: float | None = None
        self.unhealthy_from: float | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: list[tuple[str | None, Fault]] = []
        self._sticky: tuple[str | None, Fault] | None = None
        self._requests: list[RecordedRequest] = []
        self._disconnects = 0
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # ---- lifecycle

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client (or a gateway backend) uses as ``base_url``."""
        return f"{self.url}/v1"

    def start(self) -> FakeUpstream:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, name="fake-upstream", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_server(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop_server(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run_loop(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _start_server(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client disconnect cancels the handler task, which is how
        # the fake observes it even while it is not writing (Hang, SlowFirstByte).
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=2.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._bind_port, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop_server(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    # ---- scripting

    def enqueue(self, *faults: Fault, path: str | None = None) -> None:
        """The next ``len(faults)`` requests get these faults, in order; then back to normal.

        ``path`` (e.g. "/v1/chat/completions" or "/chat/completions") restricts which requests
        consume them; by default any POST does (GET /v1/models never consumes a fault unless
        ``path`` names it); ``"*"`` matches every request, GET /v1/models and /health included.
        """
        with self._lock:
            self._queue.extend((_norm_path(path), fault) for fault in faults)

    @contextlib.contextmanager
    def failing(self, fault: Fault, *, path: str | None = None) -> Iterator[None]:
        """Every matching request gets ``fault`` while the block runs (robust to retries)."""
        with self._lock:
            self._sticky = (_norm_path(path), fault)
        try:
            yield
        finally:
            with self._lock:
                self._sticky = None

    def reset(self) -> None:
        """Forget queued faults and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._sticky = None
            self._requests.clear()
            self._disconnects = 0
        self.compression = None
        self.first_byte_delay = self.token_delay = 0.0

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._queue)

    # ---- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        wanted = _norm_path(path)
        return [
            r
            for r in self.requests
            if r.path == wanted and (method is None or r.method == method.upper())
        ]

    def last_request(self, path: str | None = None) -> RecordedRequest:
        found = self.requests if path is None else self.requests_to(path)
        assert found, (
            f"the fake upstream received no request{'' if path is None else ' to ' + path}"
        )
        return found[-1]

    def wait_for_request(self, path: str | None = None, timeout: float = 5.0) -> RecordedRequest:
        """Wait until a request (to ``path``) has been received; return the latest one."""
        wanted = _norm_path(path)

        def found() -> list[RecordedRequest]:
            return [r for r in self._requests if wanted is None or r.path == wanted]

        with self._changed:
            if not self._changed.wait_for(found, timeout=timeout):
                raise AssertionError(f"no request to {path or 'any path'} within {timeout} s")
            return found()[-1]

    @property
    def disconnect_count(self) -> int:
        with self._lock:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 5.0) -> RecordedRequest:
        """Wait until some client went away mid-response (since the last reset)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._disconnects > 0, timeout=timeout):
                raise AssertionError(f"the fake upstream saw no disconnect within {timeout} s")
            return next(r for r in self._requests if r.disconnected.is_set())

    # ---- request handling

    def _take_fault(self, method: str, path: str) -> Fault | None:
        def matches(want: str | None) -> bool:
            if want == "*":
                return True
            return path == want if want is not None else method == "POST"

        with self._lock:
            if self._sticky is not None and matches(self._sticky[0]):
                return self._sticky[1]
            for i, (want, fault) in enumerate(self._queue):
                if matches(want):
                    del self._queue[i]
                    return fault
        return None

    def _record(self, rec: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(rec)
            self._changed.notify_all()

    def _note_disconnect(self, rec: RecordedRequest) -> None:
        with self._changed:
            if not rec.disconnected.is_set():
                rec.disconnected.set()
                self._disconnects += 1
            self._changed.notify_all()

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):08d}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
            fault=self._take_fault(request.method, request.path),
            target=request.raw_path,
        )
        self._record(rec)
        try:
            return await self._respond(request, rec)
        except asyncio.CancelledError:
            if not rec.server_reset:
                self._note_disconnect(rec)
            raise
        except ConnectionResetError:
            # A write found the client gone before aiohttp noticed; end quietly like a cancel.
            self._note_disconnect(rec)
            raise asyncio.CancelledError from None
        finally:
            rec.finished.set()

    async def _respond(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        fault = rec.fault
        if isinstance(fault, ErrorStatus):
            type_, message, code = _DEFAULT_ERRORS.get(
                fault.status, ("server_error", "Error", None)
            )
            return self._json(
                rec,
                _error_body(
                    fault.message or message, fault.type or type_, None, fault.code or code
                ),
                status=fault.status,
                headers=fault.headers,
            )
        if isinstance(fault, Html):
            rec.status = fault.status
            return web.Response(status=fault.status, text=fault.body, content_type="text/html")
        if isinstance(fault, Hang):
            await self._wait_until_stopped()
            return self._json(rec, _error_body("fake upstream shutting down"), status=503)
        if isinstance(fault, SlowFirstByte):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_until_stopped(), timeout=fault.delay)
        if isinstance(fault, EndlessStream):
            return await self._endless_stream(request, rec, fault)

        if self.first_byte_delay and request.method == "POST":
            await asyncio.sleep(self.first_byte_delay)
        route = (request.method, request.path)
        if rec.json is None and request.method == "POST":
            return self._json(
                rec,
                _error_body(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly.)"
                ),
                status=400,
            )
        try:
            if route == ("POST", "/v1/chat/completions"):
                return await self._chat(request, rec)
            if route == ("POST", "/v1/completions"):
                return await self._completions(request, rec)
            if route == ("POST", "/v1/embeddings"):
                return await self._embeddings(request, rec)
            if route == ("GET", "/health"):
                return self._health(rec)
            if route == ("GET", "/v1/models"):
                return self._json(rec, self._models_list())
            if request.method == "GET" and request.path.startswith("/v1/models/"):
                return self._retrieve_model(rec, request.path.removeprefix("/v1/models/"))
        except _BadRequest as exc:
            return self._json(rec, _error_body(exc.message, param=exc.param), status=400)
        return self._json(
            rec,
            _error_body(f"Invalid URL ({request.method} {request.path})"),
            status=404,
        )

    def _health(self, rec: RecordedRequest) -> web.Response:
        now = time.monotonic()
        down = (self.healthy_from is not None and now < self.healthy_from) or (
            self.unhealthy_from is not None and now >= self.unhealthy_from
        )
        if down:
            return self._json(rec, {"status": "unavailable"}, status=503)
        return self._json(rec, {"status": "ok"})

    async def _wait_until_stopped(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()

    def _json(
        self,
        rec: RecordedRequest,
        payload: dict[str, Any],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        rec.status = status
        if isinstance(payload.get("usage"), dict):
            rec.response_usage = payload["usage"]
        resp = web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            headers={**self._openai_headers(), **(headers or {})},
        )
        self._maybe_compress(rec, resp)
        return resp

    def _maybe_compress(self, rec: RecordedRequest, resp: web.StreamResponse) -> None:
        """Compress ``resp`` with ``self.compression`` if the client accepts that coding."""
        coding = self.compression
        if coding is None:
            return
        accepted = {
            part.split(";")[0].strip().lower()
            for part in rec.headers.get(hdrs.ACCEPT_ENCODING.lower(), "").split(",")
        }
        if coding in accepted:
            resp.enable_compression(force=ContentCoding(coding))
            rec.content_encoding = coding

    def _openai_headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_fake{next(self._ids):08d}", "openai-processing-ms": "1"}

    # ---- chat completions

    async def _chat(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        body = rec.json
        if not isinstance(body, dict):
            raise _BadRequest("The request body must be a JSON object.")
        model = _model_of(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array.", "messages")
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise _BadRequest("Each message must be an object with a 'role'.", "messages")
        for name in ("n", "max_tokens", "max_completion_tokens"):
            _positive_int(body, name)
        n = body.get("n") or 1
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        last_user = next(
            (content_text(m.get("content")) for m in reversed(messages) if m["role"] == "user"), ""
        )
        tokens, finish = _cap(reply_tokens(last_user), limit)
        prompt_tokens = sum(len(words(content_text(m.get("content")))) for m in messages)
        usage = _usage(prompt_tokens, len(tokens) * n)
        cid, created = self._next_id("chatcmpl"), int(time.time())

        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            base = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
            if include_usage:
                base["usage"] = None

            def chunk(index: int, delta: dict[str, Any], finish_reason: str | None) -> dict:
                choice = {
                    "index": index,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
                return {**base, "choices": [choice]}

            events: list[dict[str, Any]] = []
            for i in range(n):
                events.append(chunk(i, {"role": "assistant", "content": "", "refusal": None}, None))
            for piece in _pieces(tokens):
                events.extend(chunk(i, {"content": piece}, None) for i in range(n))
            events.extend(chunk(i, {}, finish) for i in range(n))
            if include_usage:
                events.append({**base, "choices": [], "usage": usage})
                rec.response_usage = usage
            return await self._sse(request, rec, events)

        if self.token_delay:
            await asyncio.sleep(self.token_delay * len(tokens) * n)
        message = {
            "role": "assistant",
            "content": " ".join(tokens),
            "refusal": None,
            "annotations": [],
        }
        payload = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        return await self._maybe_reset_json(request, rec, payload)

    # ---- legacy completions

    async def _completions(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        body = rec.json
        if not isinstance(body, dict):
            raise _BadRequest("The request body must be a JSON object.")
        model = _model_of(body)
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = prompt
        elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
            prompts = [" ".join(map(str, prompt))]
        else:
            raise _BadRequest("'prompt' must be a string or an array of strings.", "prompt")
        for name in ("n", "max_tokens"):
            _positive_int(body, name)
        n = body.get("n") or 1
        limit = body.get("max_tokens", 16)
        outputs = [_cap(reply_tokens(p), limit) for p in prompts for _ in range(n)]
        usage = _usage(sum(len(words(p)) for p in prompts), sum(len(toks) for toks, _ in outputs))
        usage.pop("completion_tokens_details")
        usage.pop("prompt_tokens_details")
        cid, created = self._next_id("cmpl"), int(time.time())
        base = {"id": cid, "object": "text_completion", "created": created, "model": model}

        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            extra = {"system_fingerprint": "fp_fake"}

            def chunk(index: int, text: str, finish_reason: str | None) -> dict:
                choice = {
                    "text": text,
                    "index": index,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
                return {**base, "choices": [choice], **extra}

            events = [
                chunk(i, piece, None)
                for i, (toks, _) in enumerate(outputs)
                for piece in _pieces(toks)
            ]
            events.extend(chunk(i, "", fin) for i, (_, fin) in enumerate(outputs))
            if include_usage:
                events.append({**base, "choices": [], "usage": usage, **extra})
                rec.response_usage = usage
            return await self._sse(request, rec, events)

        payload = {
            **base,
            "choices": [
                {"text": " ".join(toks), "index": i, "logprobs": None, "finish_reason": fin}
                for i, (toks, fin) in enumerate(outputs)
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return await self._maybe_reset_json(request, rec, payload)

    # ---- embeddings

    async def _embeddings(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        body = rec.json
        if not isinstance(body, dict):
            raise _BadRequest("The request body must be a JSON object.")
        model = _model_of(body)
        raw = body.get("input")
        if isinstance(raw, str) and raw:
            texts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) and x for x in raw):
            texts = raw
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            texts = [" ".join(map(str, raw))]
        elif isinstance(raw, list) and raw and all(isinstance(x, list) and x for x in raw):
            texts = [" ".join(map(str, x)) for x in raw]
        else:
            raise _BadRequest("'input' must be a non-empty string or array.", "input")
        _positive_int(body, "dimensions")
        dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format")

        def encode(vector: list[float]) -> list[float] | str:
            if encoding == "float":
                return vector
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")

        prompt_tokens = sum(len(words(t)) for t in texts)
        payload = {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": encode(fake_embedding(t, dimensions)),
                }
                for i, t in enumerate(texts)
            ],
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
        return await self._maybe_reset_json(request, rec, payload)

    # ---- models

    def _model_object(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1686935002, "owned_by": "system"}

    def _models_list(self) -> dict[str, Any]:
        return {"object": "list", "data": [self._model_object(m) for m in self.models]}

    def _retrieve_model(self, rec: RecordedRequest, model_id: str) -> web.Response:
        if model_id in self.models:
            return self._json(rec, self._model_object(model_id))
        message = f"The model '{model_id}' does not exist"
        return self._json(
            rec, _error_body(message, param="model", code="model_not_found"), status=404
        )

    # ---- streaming machinery

    async def _start_sse(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, **self._openai_headers()})
        rec.status = 200
        self._maybe_compress(rec, resp)
        await resp.prepare(request)
        return resp

    async def _send_event(self, resp: web.StreamResponse, rec: RecordedRequest, data: Any) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        await resp.write(f"data: {text}\n\n".encode())
        rec.chunks_sent += 1

    async def _sse(
        self, request: web.Request, rec: RecordedRequest, events: list[dict[str, Any]]
    ) -> web.StreamResponse:
        resp = await self._start_sse(request, rec)
        reset = rec.fault if isinstance(rec.fault, ResetMidStream) else None
        for i, event in enumerate(events):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            if reset is not None and i >= reset.after_chunks:
                await self._reset(request, rec, reset)
            await self._send_event(resp, rec, event)
        if reset is not None:
            await self._reset(request, rec, reset)
        await self._send_event(resp, rec, "[DONE]")
        await resp.write_eof()
        return resp

    async def _maybe_reset_json(
        self, request: web.Request, rec: RecordedRequest, payload: dict[str, Any]
    ) -> web.StreamResponse:
        if not isinstance(rec.fault, ResetMidStream):
            return self._json(rec, payload)
        data = json.dumps(payload).encode()
        resp = web.StreamResponse(status=200, headers=self._openai_headers())
        resp.content_type = "application/json"
        resp.content_length = len(data)
        rec.status = 200
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        await self._reset(request, rec, rec.fault)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reset(
        self, request: web.Request, rec: RecordedRequest, fault: ResetMidStream
    ) -> None:
        """Cut the connection after what was written has left; never returns."""
        transport = request.transport
        assert transport is not None
        while transport.get_write_buffer_size() > 0 and not transport.is_closing():
            await asyncio.sleep(0.005)
        # Give the peer a moment to read what was sent: a RST can make the peer's kernel drop
        # data it has not read yet.
        await asyncio.sleep(0.05)
        sock = transport.get_extra_info("socket")
        if fault.rst and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rec.server_reset = True
        transport.abort()
        # connection_lost cancels this handler (handler_cancellation=True).
        await asyncio.Event().wait()

    async def _endless_stream(
        self, request: web.Request, rec: RecordedRequest, fault: EndlessStream
    ) -> web.StreamResponse:
        body = rec.json if isinstance(rec.json, dict) else {}
        base = {
            "id": self._next_id("chatcmpl"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any]) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            return {**base, "choices": [choice]}

        resp = await self._start_sse(request, rec)
        await self._send_event(resp, rec, chunk({"role": "assistant", "content": ""}))
        assert self._stopping is not None
        for i in itertools.count():
            await self._send_event(resp, rec, chunk({"content": "tick " if i else "tick"}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=fault.interval)
            if self._stopping.is_set():
                break
        return resp


# ------------------------------------------------------------------- as a process


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes``: the fake as a child process, like an engine server."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes", description="A fake OpenAI-compatible engine server."
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--startup-delay", type=float, default=0.0, help="seconds before listening")
    parser.add_argument("--wait-for-file", help="listen only once this file exists")
    parser.add_argument("--unhealthy-for", type=float, help="GET /health is 503 for S seconds")
    parser.add_argument("--healthy-for", type=float, help="then GET /health is 503 for good")
    parser.add_argument("--exit-after", type=int, help="exit after N requests (not /health)")
    parser.add_argument("--exit-code", type=int, default=0, help="with --exit-after")
    parser.add_argument("--pid-file", help="append the process id to this file at start")
    parser.add_argument("--ignore-sigterm", action="store_true", help="only SIGKILL stops it")
    args = parser.parse_args(argv)

    # a plain flag: Event.set() in a signal handler can deadlock with Event.wait() in progress
    stopping: list[int] = []

    def stop_wait(seconds: float) -> bool:
        """Sleep up to ``seconds``; whether SIGTERM came."""
        deadline = time.monotonic() + seconds
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.02, seconds))
        return bool(stopping)

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    if args.pid_file:
        with open(args.pid_file, "a") as file:
            file.write(f"{os.getpid()}\n")
    print(f"fake engine: starting, pid {os.getpid()}", flush=True)
    if stop_wait(args.startup_delay):
        return
    while args.wait_for_file and not os.path.exists(args.wait_for_file):
        if stop_wait(0.02):
            return
    server = FakeUpstream(port=args.port).start()
    now = time.monotonic()
    if args.unhealthy_for is not None:
        server.healthy_from = now + args.unhealthy_for
    if args.healthy_for is not None:
        server.unhealthy_from = (server.healthy_from or now) + args.healthy_for
    print(f"fake engine: listening on {server.url}", flush=True)

    def served() -> int:
        return sum(1 for r in server.requests if r.path != "/health" and r.finished.is_set())

    code = 0
    while not stop_wait(0.02):
        if args.exit_after is not None and served() >= args.exit_after:
            print(f"fake engine: served {args.exit_after} requests, exiting", flush=True)
            code = args.exit_code
            break
    server.stop()
    sys.exit(code)
