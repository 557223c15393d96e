"""The interface of an in-process engine (transformers, llama.cpp) for one loaded model.

Contract
--------
- :meth:`Engine.check` looks at the model files and options without reading the weights
  (blocking, quick: call it in a thread) and raises
  :class:`~turnout.exceptions.InvalidRequest` with a clear message for files it cannot use
  (missing, corrupt, unsupported architecture, pickle weights) or a quantization it cannot do.
- :meth:`Engine.load` runs the checks, then reads the model files (blocking work goes to a
  thread), reporting its stages to ``progress`` (:class:`LoadProgress`). :meth:`Engine.unload`
  frees the memory; requests still running finish or fail with ``UpstreamUnavailable``.
- :meth:`Engine.stream_chat` yields OpenAI ``chat.completion.chunk`` objects built with
  :class:`~turnout.backends.local.chunks.ChunkBuilder`: role, content..., finish, usage.
  It honours ``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``top_p``,
  ``stop`` and ``seed`` (or documents what it ignores) and never blocks the event loop.
- Cancellation (the request's task being cancelled, e.g. the client went away) must free
  the request's slot in the engine at once; :meth:`Engine.stats` shows it (``active``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.backends.base import BackendRequest, Chunk, RequestContext, Result
from turnout.backends.local.progress import LoadProgress
from turnout.exceptions import NotSupported

__all__ = ["Engine", "EngineStats"]


@dataclass(slots=True)
class EngineStats:
    #: requests generating now
    active: int = 0
    #: requests waiting for a slot
    queued: int = 0
    #: bytes of memory the loaded weights take (0 when unknown)
    memory_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """One loaded local model."""

    #: ``transformers`` or ``llama_cpp``
    kind: str = ""

    def __init__(
        self,
        name: str,
        path: Path,
        options: dict[str, Any] | None = None,
        *,
        quantization: str = "none",
        progress: LoadProgress | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.options = dict(options or {})
        #: ``none``, ``int8`` or ``int4``; engines that cannot quantize refuse the others
        self.quantization = quantization
        self.progress = progress or LoadProgress(name)

    def check(self) -> None:
        """Quick checks of the files and options, no weights read (blocking; see above)."""

    @abstractmethod
    async def load(self) -> None:
        """Load the model; InvalidRequest when the files cannot be used."""

    @abstractmethod
    async def unload(self) -> None:
        """Free the model."""

    @abstractmethod
    def stream_chat(self, request: BackendRequest, ctx: RequestContext) -> AsyncIterator[Chunk]:
        """Generate a chat response as chunks (see the module docstring)."""

    async def embed(self, request: BackendRequest, ctx: RequestContext) -> Result:
        raise NotSupported(f"Local model {self.name!r} does not serve embeddings.")

    def stats(self) -> EngineStats:
        return EngineStats()
