"""The local model registry: which local models exist, which are loaded, and for how long.

Models load on first use (or ahead of time with :meth:`LocalRegistry.load`), stay loaded
while used, are unloaded after ``keep_alive`` idle seconds (``-1``: never), and at most
``max_loaded`` are loaded at once (the least recently used goes first). Loading happens
once per model even when many requests ask at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from turnout.backends.local.engine import Engine, EngineStats
from turnout.backends.local.files import resolve_model_path
from turnout.backends.local.hub import download_from_hub, is_hub_ref, parse_ref
from turnout.config import LocalConfig, LocalModelConfig
from turnout.exceptions import ModelNotFound

__all__ = ["LocalRegistry", "ModelState"]

log = logging.getLogger("turnout.local")


@dataclass(slots=True)
class ModelState:
    name: str
    engine: str
    path: str
    loaded: bool
    demo: bool
    stats: EngineStats
    idle_seconds: float | None


class LocalRegistry:
    def __init__(self, config: LocalConfig, data_dir: Path) -> None:
        self.config = config
        self.roots = [Path(d).expanduser() for d in config.model_dirs] or [data_dir / "models"]
        self.specs: dict[str, LocalModelConfig] = dict(config.models)
        self.demo_names: set[str] = set()
        self._engines: dict[str, Engine] = {}
        self._last_used: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None

    def add(self, name: str, spec: LocalModelConfig, *, demo: bool = False) -> None:
        self.specs[name] = spec
        if demo:
            self.demo_names.add(name)

    async def deploy(self, name: str, spec: LocalModelConfig) -> Engine:
        """Register ``name`` (replacing an earlier registration) and load it now. A model
        that fails to load is not registered."""
        previous = self.specs.get(name)
        if previous is not None and previous != spec:
            await self.unload(name)
        self.specs[name] = spec
        try:
            return await self.load(name)
        except BaseException:
            if previous is None:
                self.specs.pop(name, None)
            else:
                self.specs[name] = previous
            raise

    async def start(self) -> None:
        if self.config.keep_alive >= 0:
            self._reaper = asyncio.create_task(self._reap(), name="turnout-keep-alive")

    async def get(self, name: str) -> Engine:
        """The loaded engine of ``name``, loading it first if needed."""
        engine = self._engines.get(name)
        if engine is None:
            engine = await self.load(name)
        self._last_used[name] = time.monotonic()
        return engine

    async def load(self, name: str) -> Engine:
        spec = self.specs.get(name)
        if spec is None:
            raise ModelNotFound(f"No local model named {name!r}.")
        async with self._locks.setdefault(name, asyncio.Lock()):
            engine = self._engines.get(name)
            if engine is not None:
                return engine
            if is_hub_ref(spec.path):
                parse_ref(spec.path)  # a bad id is refused before any work
                raw = str(await asyncio.to_thread(download_from_hub, spec.path, self.roots[0]))
            else:
                raw = spec.path
            path = resolve_model_path(raw, self.roots)
            await self._make_room()
            engine = _engine(spec.engine)(name, path, spec.options)
            started = time.monotonic()
            await engine.load()
            log.info("loaded %s (%s) in %.1f s", name, spec.engine, time.monotonic() - started)
            self._engines[name] = engine
            self._last_used[name] = time.monotonic()
            return engine

    async def unload(self, name: str) -> bool:
        engine = self._engines.pop(name, None)
        self._last_used.pop(name, None)
        if engine is None:
            return False
        await engine.unload()
        log.info("unloaded %s", name)
        return True

    async def _make_room(self) -> None:
        while len(self._engines) >= self.config.max_loaded:
            oldest = min(self._engines, key=lambda n: self._last_used.get(n, 0.0))
            await self.unload(oldest)

    async def _reap(self) -> None:
        keep = self.config.keep_alive
        while True:
            await asyncio.sleep(min(max(keep / 4, 0.05), 30.0))
            now = time.monotonic()
            for name, engine in list(self._engines.items()):
                idle = now - self._last_used.get(name, now)
                if idle >= keep and engine.stats().active == 0:
                    await self.unload(name)

    def states(self) -> list[ModelState]:
        now = time.monotonic()
        out = []
        for name, spec in sorted(self.specs.items()):
            engine = self._engines.get(name)
            used = self._last_used.get(name)
            out.append(
                ModelState(
                    name=name,
                    engine=spec.engine,
                    path=spec.path,
                    loaded=engine is not None,
                    demo=name in self.demo_names,
                    stats=engine.stats() if engine else EngineStats(),
                    idle_seconds=None if used is None else now - used,
                )
            )
        return out

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for name in list(self._engines):
            await self.unload(name)


_ENGINES = {
    "transformers": ("turnout.backends.local.transformers_engine", "TransformersEngine"),
    "llama_cpp": ("turnout.backends.local.llama_cpp_engine", "LlamaCppEngine"),
}


def _engine(kind: str) -> type[Engine]:
    """The engine class, imported only when a model needs it (heavy optional extras)."""
    module_name, class_name = _ENGINES[kind]
    engine: type[Engine] = getattr(importlib.import_module(module_name), class_name)
    return engine
