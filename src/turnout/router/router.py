"""Public model names to deployments, and the attempt loop with fallback.

A public name (``chat``) maps to one or more deployments (backend + upstream model). A name
``BACKEND/MODEL`` reaches ``MODEL`` on ``BACKEND`` directly when that backend allows it.
One deployment is picked by weight; on a retryable failure before anything was sent to the
client, the next deployments are tried in order, all within the request's deadline.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from turnout.backends.base import Backend, Chunk, RequestContext
from turnout.config import LOCAL_BACKEND, Config
from turnout.exceptions import BackendError, ContextLengthExceeded, ModelNotFound

__all__ = ["Route", "Router", "Target"]

T = TypeVar("T")
_MAX_DYNAMIC_ROUTES = 4096
DEMO_NOTICE = "turnout demo model: random weights, it writes nonsense"


@dataclass(frozen=True, slots=True)
class Target:
    backend: Backend
    model: str
    weight: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.backend.name}/{self.model}"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
    description: str = ""

    def plan(self) -> tuple[Target, ...]:
        """The order of attempts: one target drawn by weight, then the others in order."""
        if len(self.targets) == 1:
            return self.targets
        live = [t for t in self.targets if t.weight > 0]
        if not live:
            return self.targets
        first = random.choices(live, weights=[t.weight for t in live])[0]  # noqa: S311
        return (first, *(t for t in self.targets if t is not first))


class Router:
    def __init__(self, config: Config, backends: dict[str, Backend]) -> None:
        self.backends = backends
        self.routes: dict[str, Route] = {
            name: Route(
                name,
                tuple(Target(backends[d.backend], d.model, d.weight) for d in model.deployments),
                model.description,
            )
            for name, model in config.models.items()
        }
        local = backends.get(LOCAL_BACKEND)
        if local is not None:  # every local model is reachable under its own name
            for name in sorted(config.local_names):
                if name not in self.routes:
                    spec = config.local.models.get(name)
                    description = spec.description if spec else DEMO_NOTICE
                    self.routes[name] = Route(name, (Target(local, name),), description)
        self._passthrough = {name for name, spec in config.backends.items() if spec.passthrough}
        self._dynamic: dict[str, Route] = {}

    def add_local(self, name: str, description: str = "") -> None:
        """Make a local model deployed at runtime reachable under its own name."""
        local = self.backends.get(LOCAL_BACKEND)
        if local is not None and name not in self.routes:
            self.routes[name] = Route(name, (Target(local, name),), description)

    def resolve(self, name: str) -> Route:
        """The route for a public model name; ModelNotFound says what exists."""
        route = self.routes.get(name) or self._dynamic.get(name)
        if route is not None:
            return route
        prefix, _, model = name.partition("/")
        if model and prefix in self._passthrough:
            route = Route(name, (Target(self.backends[prefix], model),))
            if len(self._dynamic) < _MAX_DYNAMIC_ROUTES:
                self._dynamic[name] = route
            return route
        raise ModelNotFound(self._not_found_message(name))

    def _not_found_message(self, name: str) -> str:
        known = sorted(self.routes)
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        hint = f" Available: {shown}." if known else " No models are configured."
        if self._passthrough:
            hint += (
                f" Or name BACKEND/MODEL with a backend of: {', '.join(sorted(self._passthrough))}."
            )
        return f"The model '{name}' does not exist or you do not have access to it.{hint}"

    async def call(
        self, route: Route, ctx: RequestContext, op: Callable[[Target], Awaitable[T]]
    ) -> tuple[T, Target]:
        """Run ``op`` on the route's targets in plan order until one succeeds."""
        plan = route.plan()
        for attempt, target in enumerate(plan, 1):
            ctx.attempts = attempt
            ctx.backend, ctx.upstream_model = target.backend.name, target.model
            try:
                return await op(target), target
            except BackendError as exc:
                if attempt == len(plan) or not _may_fall_back(exc):
                    raise
                ctx.remaining()  # a passed deadline ends the chain
        raise AssertionError("unreachable: a route has at least one target")

    async def open_stream(
        self,
        route: Route,
        ctx: RequestContext,
        op: Callable[[Target], AsyncIterator[Chunk]],
    ) -> tuple[Chunk | None, AsyncIterator[Chunk], Target]:
        """Start a stream and wait for its first chunk, falling back until one arrives.

        After the first chunk the stream is committed: later failures reach the caller."""

        async def first(target: Target) -> tuple[Chunk | None, AsyncIterator[Chunk]]:
            stream = op(target)
            try:
                head = await anext(stream)
            except StopAsyncIteration:
                return None, stream
            except BaseException:
                await _aclose(stream)
                raise
            return head, stream

        (head, stream), target = await self.call(route, ctx, first)
        return head, stream, target


def _may_fall_back(exc: BackendError) -> bool:
    return exc.retryable or isinstance(exc, ContextLengthExceeded)


async def _aclose(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
