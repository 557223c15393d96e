"""Where a comparison sends its requests: public model names of a gateway, either one run
in-process from a configuration or one already running, reached over HTTP.

A :class:`Source` is opened once, hands out one :class:`Target` per model name, and tells
for each deployment that served a request whether it runs on the operator's own hardware
and what its tokens cost.
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any

from turnout.advisor.client import GatewayClient
from turnout.advisor.metrics import Outcome
from turnout.advisor.timing import StreamClock
from turnout.backends.base import Result
from turnout.config import LOCAL_BACKEND, Config
from turnout.exceptions import ModelNotFound, TurnoutError
from turnout.gateway import Gateway
from turnout.pricing import Price, PriceTable

__all__ = ["GatewaySource", "RemoteSource", "Source", "Target"]

_ids = itertools.count(1)


class Target(ABC):
    """One public model name; :meth:`send` times one request and never raises for a failed
    request (the failure is part of the measurement)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def send(self, body: dict[str, Any], stream: bool) -> Outcome:
        """Send ``body`` (the workload's request, ``model`` not set) and time it."""


class Source(ABC):
    def __init__(self, prices: PriceTable, local: Collection[str] = ()) -> None:
        self.prices = prices
        #: target names the user declared local (``--local``)
        self.declared_local = frozenset(local)

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def target(self, model: str) -> Target:
        """The target for ``model``; raises ModelNotFound when there is no such model."""

    @abstractmethod
    def local_backend(self, backend: str) -> bool:
        """Whether the backend runs on the operator's own hardware."""

    def is_local(self, target: str, deployment: str | None) -> bool:
        if target in self.declared_local:
            return True
        backend = (deployment or "").partition("/")[0]
        return bool(backend) and self.local_backend(backend)

    def price(self, deployment: str | None) -> Price | None:
        """The token price of ``backend/model``, None when unknown or local."""
        if not deployment:
            return None
        backend, _, model = deployment.partition("/")
        if self.local_backend(backend):
            return None
        return self.prices.lookup(backend, model)


# ------------------------------------------------------------------------------ in-process


class GatewaySource(Source):
    """A gateway built from a configuration, in this process (no request log is written:
    benchmark traffic is not the gateway's traffic)."""

    def __init__(self, config: Config, local: Collection[str] = ()) -> None:
        server = config.server.model_copy(update={"log_requests": False})
        self.gateway = Gateway(config.model_copy(update={"server": server}))
        super().__init__(self.gateway.router.prices, local)

    async def start(self) -> None:
        await self.gateway.start()

    async def aclose(self) -> None:
        await self.gateway.aclose()

    async def target(self, model: str) -> Target:
        self.gateway.router.resolve(model)  # raises ModelNotFound, naming the known models
        return _InProcessTarget(model, self.gateway)

    def local_backend(self, backend: str) -> bool:
        found = self.gateway.backends.get(backend)
        return found.local if found is not None else backend == LOCAL_BACKEND


class _InProcessTarget(Target):
    def __init__(self, name: str, gateway: Gateway) -> None:
        super().__init__(name)
        self.gateway = gateway

    async def send(self, body: dict[str, Any], stream: bool) -> Outcome:
        request = _with_model(body, self.name, stream)
        ctx = self.gateway.context(f"compare-{next(_ids)}")
        clock = StreamClock()
        try:
            result = await self.gateway.inference.chat(request, ctx)
            if isinstance(result, Result):
                clock.whole(result.usage)
            else:
                async for chunk in result:
                    clock.chunk(chunk.data, time.perf_counter())
        except TurnoutError as exc:
            return clock.failed(exc.code, ctx.served_by)
        except Exception as exc:  # a bug below; measured as a failure, not a crash
            return clock.failed(type(exc).__name__, ctx.served_by)
        return clock.done(ctx.served_by)


# ---------------------------------------------------------------------------------- remote


class RemoteSource(Source):
    """A running gateway: its public model names over the OpenAI wire format. Its response
    header ``x-turnout-deployment`` names the deployment; deployments on the backend
    ``local`` (in-process engines) and targets named with ``--local`` count as local."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        prices: PriceTable,
        local: Collection[str] = (),
        timeout: float = 600.0,
    ) -> None:
        super().__init__(prices, local)
        self.client = GatewayClient(url, api_key, timeout=timeout)
        self._models: list[str] = []

    async def start(self) -> None:
        self._models = await self.client.models()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def target(self, model: str) -> Target:
        if model not in self._models:
            raise ModelNotFound(
                f"{self.client.base} serves no model {model!r}; it serves: "
                f"{', '.join(self._models) or '(none)'}"
            )
        return _RemoteTarget(model, self.client)

    def local_backend(self, backend: str) -> bool:
        return backend == LOCAL_BACKEND


class _RemoteTarget(Target):
    def __init__(self, name: str, client: GatewayClient) -> None:
        super().__init__(name)
        self.client = client

    async def send(self, body: dict[str, Any], stream: bool) -> Outcome:
        return await self.client.chat(_with_model(body, self.name, stream), stream)


def _with_model(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    out = dict(body)
    out["model"] = model
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out
