"""The interface of an in-process engine (transformers, llama.cpp) for one loaded model.

Contract
--------
- :meth:`Engine.load` reads the model files (blocking work goes to a thread) and raises
  :class:`~turnout.exceptions.InvalidRequest` with a clear message for files it cannot use
  (missing, corrupt, unsupported architecture, pickle weights). :meth:`Engine.unload`
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

    def __init__(self, name: str, path: Path, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.path = path
        self.options = dict(options or {})

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
