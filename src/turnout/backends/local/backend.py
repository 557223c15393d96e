"""The built-in backend ``local``: in-process models behind the same interface as any API."""

from __future__ import annotations

from collections.abc import AsyncIterator

from turnout.backends.base import (
    Backend,
    BackendRequest,
    Capabilities,
    Chunk,
    RequestContext,
    Result,
)
from turnout.backends.local.registry import LocalRegistry

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """Routes each request to the loaded engine of its model (loading it on first use)."""

    capabilities = Capabilities(embeddings=True)
    local = True

    def __init__(self, name: str, registry: LocalRegistry) -> None:
        super().__init__(name)
        self.registry = registry

    async def stream_chat(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        engine = await self.registry.get(request.model)
        async for chunk in engine.stream_chat(request, ctx):
            yield chunk

    async def embed(self, request: BackendRequest, ctx: RequestContext) -> Result:
        engine = await self.registry.get(request.model)
        return await engine.embed(request, ctx)

    async def list_models(self) -> list[str]:
        return sorted(self.registry.specs)

    async def start(self) -> None:
        await self.registry.start()

    async def aclose(self) -> None:
        await self.registry.aclose()
