"""The backend interface: what hosted APIs and local engines both implement.

Contract
--------
A backend must implement one method, :meth:`Backend.stream_chat`: given an OpenAI-format chat
request whose ``model`` is already the backend's own model name, yield the response as
``chat.completion.chunk`` objects (:class:`Chunk`), the last one carrying ``usage`` when the
backend knows it. Everything else is optional: :meth:`Backend.chat` collects the stream by
default; completions, embeddings, model listing and health checks raise
:class:`~turnout.exceptions.NotSupported` or do nothing unless overridden.

Rules every backend follows:

- Raise only :class:`~turnout.exceptions.BackendError` subclasses (converted at the boundary,
  ``raise ... from exc``), so the router can decide to retry or fall back.
- Respect ``ctx.deadline`` (an absolute ``loop.time()``); past it, raise ``UpstreamTimeout``.
- Cancellation is the stop signal: when the client goes away the calling task is cancelled,
  and the backend must let ``CancelledError`` through after closing its upstream connection or
  freeing its engine slot (``try/finally``). Nothing else will tell it.
- The backend owns its resources: :meth:`start` opens them (pools, engines), :meth:`aclose`
  releases them; neither is called twice.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from turnout.exceptions import NotSupported, UpstreamTimeout
from turnout.protocol.merge import ChunkAccumulator

if TYPE_CHECKING:
    from turnout.policies.keys import Caller
    from turnout.policies.limits import Admission

__all__ = [
    "Backend",
    "BackendRequest",
    "Capabilities",
    "Chunk",
    "RequestContext",
    "Result",
    "Usage",
]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_dict(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        prompt = data.get("prompt_tokens") or data.get("input_tokens") or 0
        completion = data.get("completion_tokens") or data.get("output_tokens") or 0
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        return cls(prompt, completion)

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class RequestContext:
    """What travels with one request through every layer."""

    request_id: str
    #: absolute deadline on the event loop's clock (``loop.time()``)
    deadline: float
    #: the caller's identity (key prefix, role) once auth has run
    principal: str = "anonymous"
    #: ``time.perf_counter()`` when the request arrived
    t0: float = 0.0
    #: how many deployments were tried (set by the router)
    attempts: int = 0
    #: the deployment tried last, then the one that served (set by the router)
    backend: str | None = None
    upstream_model: str | None = None
    #: free-form annotations for logs
    annotations: dict[str, Any] = field(default_factory=dict)
    #: one entry per try, for the request log (set by the router)
    tries: list[dict[str, Any]] = field(default_factory=list)
    #: the caller's request headers by lower-case name (None outside HTTP)
    header: Callable[[bytes], bytes | None] | None = None
    #: what the privacy policy did, and the categories it found (set by the service)
    privacy: str | None = None
    privacy_categories: frozenset[str] = frozenset()
    #: the request's rate-limit state (subjects, token reservations), set by the front door
    admission: Admission | None = None
    #: the authenticated caller (its API key: allow-list, budget); None: library mode
    caller: Caller | None = None
    #: the consumer forwards OpenAI SSE frames as they are (the SSE front door): a backend
    #: that holds them may pass the events of one network read as one :class:`Chunk` with
    #: ``frames`` (events carrying usage or an error always come as chunks of their own)
    sse_passthrough: bool = False

    @classmethod
    def create(cls, request_id: str, timeout: float) -> RequestContext:
        loop = asyncio.get_running_loop()
        return cls(request_id, loop.time() + timeout, t0=time.perf_counter())

    @property
    def served_by(self) -> str | None:
        """``backend/model`` of the deployment tried last."""
        return f"{self.backend}/{self.upstream_model}" if self.backend else None

    def remaining(self) -> float:
        """Seconds left before the deadline; raises UpstreamTimeout when none are."""
        left = self.deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise UpstreamTimeout("The request deadline passed before the backend answered.")
        return left


class Chunk:
    """One streamed event in OpenAI format (``chat.completion.chunk`` or ``text_completion``).

    Backends that already hold the JSON bytes (an OpenAI-compatible upstream) pass them as
    ``raw`` and they travel to an OpenAI client untouched; ``data`` parses them only when some
    layer needs the fields. Engines that build chunks pass ``data``.
    """

    __slots__ = ("_data", "frames", "more", "raw", "usage")

    def __init__(
        self,
        raw: bytes | None = None,
        data: dict[str, Any] | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.raw = raw
        self._data = data
        self.usage = usage
        #: another chunk is already available: a front door may hold this one back and
        #: send both in one write (never set by engines that produce tokens one by one)
        self.more = False
        #: several events, framed (``data: ...\\n\\n`` each), for a consumer that asked for
        #: them (``RequestContext.sse_passthrough``); such a chunk has no ``raw``/``data``
        self.frames: bytes | None = None

    @classmethod
    def framed(cls, frames: bytes, more: bool) -> Chunk:
        chunk = cls()
        chunk.frames, chunk.more = frames, more
        return chunk

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = orjson.loads(self.raw or b"{}")
        return self._data

    def json(self) -> bytes:
        if self.raw is None:
            self.raw = orjson.dumps(self._data)
        return self.raw

    @property
    def usage_only(self) -> bool:
        """The trailing usage chunk (``choices: []``) of ``include_usage`` streams."""
        return self.usage is not None and not self.data.get("choices")


@dataclass(slots=True)
class Result:
    """A whole (non-streamed) response in OpenAI format, raw bytes kept when available."""

    data: dict[str, Any]
    usage: Usage | None = None
    raw: bytes | None = None

    def json(self) -> bytes:
        if self.raw is None:
            self.raw = orjson.dumps(self.data)
        return self.raw


@dataclass(slots=True)
class BackendRequest:
    """A request for one backend (chat, completion or embedding).

    ``body`` is the OpenAI JSON object to send, with ``model`` set to the backend's model."""

    body: dict[str, Any]
    include_usage: bool = False

    @property
    def model(self) -> str:
        return str(self.body["model"])


@dataclass(frozen=True, slots=True)
class Capabilities:
    chat: bool = True
    streaming: bool = True
    completions: bool = False
    embeddings: bool = False
    tools: bool = True
    json_mode: bool = True
    max_context: int | None = None


class Backend(ABC):
    """Base class of every backend; see the module docstring for the contract."""

    capabilities = Capabilities()
    #: runs on the operator's own hardware (privacy routing may send sensitive data here)
    local = False

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def stream_chat(self, request: BackendRequest, ctx: RequestContext) -> AsyncIterator[Chunk]:
        """Yield the response as OpenAI ``chat.completion.chunk`` objects."""

    async def chat(self, request: BackendRequest, ctx: RequestContext) -> Result:
        """The whole response; by default collected from :meth:`stream_chat`."""
        acc = ChunkAccumulator()
        async for chunk in self.stream_chat(request, ctx):
            acc.add(chunk.data)
            if chunk.usage is not None:
                acc.usage = chunk.usage.as_dict()
        data = acc.result()
        return Result(data=data, usage=Usage.from_dict(data.get("usage")))

    def stream_completion(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        """Legacy text completions, streamed (``text_completion`` objects)."""
        raise NotSupported(f"Backend {self.name!r} does not serve /v1/completions.")

    async def completion(self, request: BackendRequest, ctx: RequestContext) -> Result:
        raise NotSupported(f"Backend {self.name!r} does not serve /v1/completions.")

    async def embed(self, request: BackendRequest, ctx: RequestContext) -> Result:
        raise NotSupported(f"Backend {self.name!r} does not serve embeddings.")

    async def list_models(self) -> list[str]:
        """Model names the backend itself offers (empty when it cannot tell)."""
        return []

    async def check_health(self) -> None:
        """Raise a BackendError when the backend cannot serve; return when it can."""

    async def start(self) -> None:
        """Open pools, load engines. Called once before the first request."""

    async def aclose(self) -> None:
        """Release everything :meth:`start` opened."""
