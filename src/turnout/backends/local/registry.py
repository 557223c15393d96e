"""The local model registry: which local models exist, which are loaded, and for how long.

Models load on first use (or ahead of time with :meth:`LocalRegistry.load`, at start-up with
``preload``), stay loaded while used, are unloaded after ``keep_alive`` idle seconds (``-1``:
never), and at most ``max_loaded`` are loaded at once (the least recently used goes first).
Loading happens once per model even when many requests ask at the same time.

While a model loads, its :class:`~turnout.backends.local.progress.LoadProgress` is in its state
(``status: loading``, ``progress``); a load that failed leaves ``status: failed`` and the error
until the model loads or is deployed again, or is unloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.backends.local.engine import Engine, EngineStats
from turnout.backends.local.files import resolve_model_path
from turnout.backends.local.hub import download_from_hub, is_hub_ref, parse_ref
from turnout.backends.local.progress import LoadProgress
from turnout.config import LocalConfig, LocalModelConfig
from turnout.exceptions import InvalidRequest, ModelNotFound, TurnoutError

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
    #: ``loaded``, ``loading``, ``not_loaded`` (loads on first use) or ``failed``
    status: str = "not_loaded"
    quantization: str = "none"
    #: while loading: stage, done, total, unit, fraction, elapsed
    progress: dict[str, Any] | None = None
    #: after a failed load: message, type, code, param, status (as the API would answer)
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Failure:
    spec: LocalModelConfig
    error: dict[str, Any]


class LocalRegistry:
    def __init__(self, config: LocalConfig, data_dir: Path) -> None:
        self.config = config
        self.roots = [Path(d).expanduser() for d in config.model_dirs] or [data_dir / "models"]
        self.specs: dict[str, LocalModelConfig] = dict(config.models)
        self.demo_names: set[str] = set()
        self._engines: dict[str, Engine] = {}
        self._last_used: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loading: dict[str, LoadProgress] = {}
        self._failures: dict[str, _Failure] = {}
        #: specs of background deploys, until they end
        self._pending: dict[str, LocalModelConfig] = {}
        self._deploys: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    def add(self, name: str, spec: LocalModelConfig, *, demo: bool = False) -> None:
        self.specs[name] = spec
        if demo:
            self.demo_names.add(name)

    def known(self, name: str) -> bool:
        """Registered, or the last attempt to deploy it failed (its state says why)."""
        return name in self.specs or name in self._failures or name in self._pending

    async def check(self, spec: LocalModelConfig) -> None:
        """The quick checks of a deploy, before anything is downloaded or loaded: a valid Hub
        id, or a local path inside the model directories whose files the engine can use."""
        if is_hub_ref(spec.path):
            parse_ref(spec.path, engine=spec.engine)
            return
        path = resolve_model_path(spec.path, self.roots)
        engine = _engine(spec.engine)("check", path, spec.options, quantization=spec.quantization)
        await asyncio.to_thread(engine.check)

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
                self._failures.pop(name, None)  # the caller has the error; no state is left
            else:
                self.specs[name] = previous
            raise

    def deploy_in_background(
        self, name: str, spec: LocalModelConfig, on_loaded: Callable[[], None]
    ) -> None:
        """:meth:`deploy` as a task: its state shows ``loading`` at once, then ``loaded``
        (``on_loaded`` is called) or ``failed``."""
        if name in self._loading:
            raise InvalidRequest(f"{name!r} is loading already; wait for it.", param="name")
        self._failures.pop(name, None)
        self._pending[name] = spec
        self._loading[name] = LoadProgress(name)
        task = asyncio.create_task(self._deploy_task(name, spec, on_loaded), name=f"deploy-{name}")
        self._deploys.add(task)
        task.add_done_callback(self._deploys.discard)

    async def _deploy_task(
        self, name: str, spec: LocalModelConfig, on_loaded: Callable[[], None]
    ) -> None:
        try:
            await self.deploy(name, spec)
        except TurnoutError as exc:
            self._failures[name] = _Failure(spec, _error(exc))
            log.warning("deploying %s failed: %s", name, exc.message)
        except Exception as exc:
            self._failures[name] = _Failure(spec, _error(exc))
            log.exception("deploying %s failed", name)
        else:
            on_loaded()
        finally:
            self._loading.pop(name, None)
            self._pending.pop(name, None)

    async def start(self) -> None:
        if self.config.keep_alive >= 0:
            self._reaper = asyncio.create_task(self._reap(), name="turnout-keep-alive")
        for name, spec in list(self.specs.items()):
            if spec.preload:
                with contextlib.suppress(TurnoutError):  # logged; its state says why
                    await self.load(name)

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
            progress = self._loading.setdefault(name, LoadProgress(name))
            try:
                engine = await self._open(name, spec, progress)
            except BaseException as exc:
                progress.finish(error=str(exc) or type(exc).__name__)
                if not isinstance(exc, asyncio.CancelledError):
                    self._failures[name] = _Failure(spec, _error(exc))
                raise
            finally:
                self._loading.pop(name, None)
            progress.finish()
            self._failures.pop(name, None)
            self._engines[name] = engine
            self._last_used[name] = time.monotonic()
            return engine

    async def _open(self, name: str, spec: LocalModelConfig, progress: LoadProgress) -> Engine:
        if is_hub_ref(spec.path):
            parse_ref(spec.path, engine=spec.engine)  # a bad id is refused before any work
            raw = str(
                await asyncio.to_thread(
                    download_from_hub,
                    spec.path,
                    self.roots[0],
                    engine=spec.engine,
                    progress=progress,
                )
            )
        else:
            raw = spec.path
        path = resolve_model_path(raw, self.roots)
        await self._make_room()
        engine = _engine(spec.engine)(
            name, path, spec.options, quantization=spec.quantization, progress=progress
        )
        await engine.load()
        return engine

    async def unload(self, name: str) -> bool:
        self._failures.pop(name, None)
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
        names = sorted({*self.specs, *self._failures, *self._pending})
        return [self._state(name) for name in names]

    def _state(self, name: str) -> ModelState:
        failure = self._failures.get(name)
        spec = self._pending.get(name) or self.specs.get(name)
        spec = spec or (failure.spec if failure else None)
        assert spec is not None
        engine = self._engines.get(name)
        progress = self._loading.get(name)
        used = self._last_used.get(name)
        if engine is not None:
            status = "loaded"
        elif progress is not None:
            status = "loading"
        else:
            status = "failed" if failure is not None else "not_loaded"
        return ModelState(
            name=name,
            engine=spec.engine,
            path=spec.path,
            loaded=engine is not None,
            demo=name in self.demo_names,
            stats=engine.stats() if engine else EngineStats(),
            idle_seconds=None if used is None else time.monotonic() - used,
            status=status,
            quantization=spec.quantization,
            progress=progress.snapshot() if progress is not None else None,
            error=failure.error if failure is not None and status == "failed" else None,
        )

    async def aclose(self) -> None:
        for task in list(self._deploys):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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


def _error(exc: BaseException) -> dict[str, Any]:
    """A failed load, as the API would have answered it."""
    if isinstance(exc, TurnoutError):
        return {
            "message": exc.message,
            "type": exc.type,
            "code": exc.code,
            "param": exc.param,
            "status": exc.status,
        }
    return {
        "message": f"{type(exc).__name__}: {exc}",
        "type": "api_error",
        "code": "internal_error",
        "param": None,
        "status": 500,
    }
