"""The gateway object: configuration turned into backends, a router and services.

The HTTP server, library mode (:func:`turnout.predict`) and future front doors all hold one
:class:`Gateway`; nothing in here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from turnout.backends.base import Backend, RequestContext, Usage
from turnout.backends.local.backend import LocalBackend
from turnout.backends.local.registry import LocalRegistry
from turnout.backends.openai_compat import OpenAICompatBackend
from turnout.config import (
    DEMO_GGUF_NAME,
    DEMO_NAME,
    LOCAL_BACKEND,
    BackendConfig,
    Config,
    LocalModelConfig,
    load_config,
)
from turnout.policies.keys import KeyRing
from turnout.policies.limits import build_policy
from turnout.policies.limits.build import rule_of
from turnout.policies.privacy import Detector
from turnout.router.router import Router
from turnout.services.accounting import Accountant
from turnout.services.audit import AuditEvent, AuditTrail
from turnout.services.inference import InferenceService
from turnout.services.key_sync import KeySync
from turnout.services.keys import KeyService
from turnout.storage.db import Database
from turnout.storage.writer import RequestLogWriter
from turnout.telemetry.metrics import Metrics

__all__ = ["Gateway"]

log = logging.getLogger("turnout")


def build_backend(name: str, spec: BackendConfig) -> Backend:
    """The backend object for one configured backend (one place per backend type)."""
    if spec.type == "openai_compat":
        return OpenAICompatBackend(name, spec)
    raise AssertionError(f"unhandled backend type {spec.type!r}")  # config validation forbids


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        #: keys, the request log and the audit trail; migrated by start()
        self.database = Database.from_config(config)
        self.request_log: RequestLogWriter | None = None
        if config.server.log_requests:
            self.request_log = RequestLogWriter(
                self.database,
                spool_dir=config.data_path / "spool",
                on_drop=self.metrics.dropped_log_records.inc,
            )
        self.backends = {name: build_backend(name, b) for name, b in config.backends.items()}
        self.local: LocalRegistry | None = None
        if config.local_names:
            self.local = LocalRegistry(config.local, config.data_path)
            self.backends[LOCAL_BACKEND] = LocalBackend(LOCAL_BACKEND, self.local)
        self.router = Router(config, self.backends, self.metrics)
        #: rate limits; the server admits each request's client IP, the service its tokens
        self.limits = build_policy(config.limits, self.metrics)
        #: API keys in memory (what the server authenticates against), kept in step with the
        #: database by key_sync; the audit trail of admin actions
        self.keys = KeyRing()
        self.audit = AuditTrail(self.database)
        per_key = config.limits.per_key
        self.key_sync = KeySync(
            self.database,
            self.keys,
            self.audit,
            self.limits,
            interval=config.keys.refresh_interval,
            default_rule=rule_of(per_key) if per_key else None,
        )
        self.key_service = KeyService(self.key_sync)
        self.router.on_event = self._routing_event
        self._unpriced: set[tuple[str, str]] = set()
        accountant = Accountant(
            self.metrics,
            self.request_log,
            self.limits,
            pricer=self.cost,
            charge=self.key_sync.charge,
        )
        self.inference = InferenceService(
            self.router,
            accountant,
            default_model=self.default_model,
            limits=self.limits,
            privacy=Detector(config.privacy),
        )
        self.started = False

    @classmethod
    def from_config(cls, path: str | None = None) -> Gateway:
        return cls(load_config(path))

    @property
    def default_model(self) -> str | None:
        """``default_model`` from the configuration, else the only model there is."""
        if self.config.default_model:
            return self.config.default_model
        if len(self.router.routes) == 1:
            return next(iter(self.router.routes))
        return None

    @property
    def request_timeout(self) -> float:
        """The overall deadline of a request: the longest total timeout of any backend."""
        totals = [b.timeout.total for b in self.config.backends.values()]
        return max(totals, default=600.0)

    def context(self, request_id: str) -> RequestContext:
        return RequestContext.create(request_id, self.request_timeout)

    def cost(self, backend: str, model: str, usage: Usage) -> float | None:
        """US dollars for ``usage`` on a deployment: 0 on the operator's own hardware, the
        price table's otherwise; None (and one warning) when no price is known."""
        found = self.backends.get(backend)
        if found is not None and found.local:
            return 0.0
        price = self.router.prices.lookup(backend, model)
        if price is not None:
            return price.cost(usage.prompt_tokens, usage.completion_tokens)
        if (backend, model) not in self._unpriced and len(self._unpriced) < 1000:
            self._unpriced.add((backend, model))
            log.warning(
                "no price for %s/%s: its requests cost 0 toward budgets; add it under prices:",
                backend,
                model,
            )
        return None

    def _routing_event(self, event: dict[str, Any]) -> None:
        """Router events that no admin request carried (canary rollbacks) go to the audit
        trail with the actor "system"."""
        if event.get("event") != "canary_rolled_back":
            return
        details = {k: v for k, v in event.items() if k not in ("event", "model", "time")}
        self.audit.record_soon(
            AuditEvent("system", "route.rollback", event.get("model"), "ok", None, details)
        )

    async def start(self) -> None:
        await self.database.migrate()
        await self.key_sync.start()
        if self.local is not None and self.config.demo_enabled:
            await self._prepare_demo(self.local)
        for backend in self.backends.values():
            await backend.start()
        await self.router.start()
        if self.request_log is not None:
            await self.request_log.start()
        await self.limits.start()
        self.started = True

    async def _prepare_demo(self, registry: LocalRegistry) -> None:
        """Generate the demo model if it is not there yet, register it and load it."""
        from turnout.backends.local.demo_model import GGUF_FILE, ensure_demo_model

        try:
            path = await asyncio.to_thread(ensure_demo_model, registry.roots[0] / DEMO_NAME)
        except ImportError:
            log.warning(
                "the demo model needs the transformers extra: pip install 'turnout[transformers]'"
            )
            return
        registry.add(DEMO_NAME, LocalModelConfig(path=str(path)), demo=True)
        await registry.load(DEMO_NAME)
        gguf = path / GGUF_FILE
        if DEMO_GGUF_NAME in self.config.local_names and gguf.is_file():
            spec = LocalModelConfig(engine="llama_cpp", path=str(gguf))
            registry.add(DEMO_GGUF_NAME, spec, demo=True)
            await registry.load(DEMO_GGUF_NAME)

    async def aclose(self) -> None:
        self.started = False
        await self.router.aclose()
        for backend in self.backends.values():
            try:
                await backend.aclose()
            except Exception:
                log.exception("closing backend %s failed", backend.name)
        if self.request_log is not None:
            await self.request_log.aclose()
        await self.key_sync.aclose()
        await self.audit.aclose()
        await self.database.aclose()
        await self.limits.aclose()
        self.metrics.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def predict(self, text: str, *, model: str | None = None, **params: Any) -> str:
        """Send ``text`` as one user message and return the reply's text."""
        body: dict[str, Any] = {"input": text, **params}
        if model is not None:
            body["model"] = model
        ctx = self.context(f"lib-{id(body):x}")
        return str((await self.inference.predict(body, ctx))["result"])
