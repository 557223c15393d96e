"""The route table: every endpoint, its method, whether it needs a key and a JSON body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turnout.gateway import Gateway
    from turnout.server.http import HttpRequest, JsonResponse, SseResponse

__all__ = ["PREFIX_ROUTES", "ROUTES", "RouteSpec"]

Handler = Callable[["Gateway", "HttpRequest"], Awaitable["JsonResponse | SseResponse"]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    #: requires an API key
    auth: bool = True
    #: the body is a JSON object, parsed before the handler runs (``request.parsed``)
    body: bool = False


def _table() -> tuple[dict[str, dict[str, RouteSpec]], list[tuple[str, dict[str, RouteSpec]]]]:
    from turnout.server.routes import admin, openai, ops, predict, routing

    exact: dict[str, dict[str, RouteSpec]] = {}
    prefixed: dict[str, dict[str, RouteSpec]] = {}
    for spec in (*openai.ROUTES, *predict.ROUTES, *ops.ROUTES, *admin.ROUTES, *routing.ROUTES):
        if spec.path.endswith("/*"):
            prefixed.setdefault(spec.path[:-1], {})[spec.method] = spec
        else:
            exact.setdefault(spec.path, {})[spec.method] = spec
    return exact, list(prefixed.items())


ROUTES, PREFIX_ROUTES = _table()
