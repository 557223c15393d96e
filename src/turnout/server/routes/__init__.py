"""The route table: every endpoint, its method, the permission it needs, whether it takes a
JSON body, and the audit action it records.

Every route declares its permission (``permission=``, one of :mod:`turnout.policies.roles`);
a route without one cannot be built. The server checks it for every request in one place
(``turnout.server.access``), and docs/security.md shows the table a test walks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from turnout.policies.roles import PERMISSIONS, PUBLIC

if TYPE_CHECKING:
    from turnout.gateway import Gateway
    from turnout.server.http import HttpRequest, JsonResponse, SseResponse

__all__ = ["PREFIX_ROUTES", "ROUTES", "RouteSpec", "all_routes"]

Handler = Callable[["Gateway", "HttpRequest"], Awaitable["JsonResponse | SseResponse"]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    #: the body is a JSON object, parsed before the handler runs (``request.parsed``)
    body: bool = False
    #: what the caller's role must allow (turnout.policies.roles); required
    permission: str = field(kw_only=True)
    #: the audit action this route records (e.g. ``key.create``), with its outcome; None:
    #: not audited (reads)
    audit: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.permission not in PERMISSIONS:
            raise ValueError(
                f"{self.method} {self.path}: unknown permission {self.permission!r}; use one of "
                f"{', '.join(PERMISSIONS)}"
            )

    @property
    def auth(self) -> bool:
        """Whether the route needs a key."""
        return self.permission != PUBLIC


def all_routes() -> list[RouteSpec]:
    from turnout.server.routes import admin, governance, keys, openai, ops, predict, routing

    return [
        *openai.ROUTES,
        *predict.ROUTES,
        *ops.ROUTES,
        *admin.ROUTES,
        *routing.ROUTES,
        *keys.ROUTES,
        *governance.ROUTES,
    ]


def _table() -> tuple[dict[str, dict[str, RouteSpec]], list[tuple[str, dict[str, RouteSpec]]]]:
    exact: dict[str, dict[str, RouteSpec]] = {}
    prefixed: dict[str, dict[str, RouteSpec]] = {}
    for spec in all_routes():
        if spec.path.endswith("/*"):
            prefixed.setdefault(spec.path[:-1], {})[spec.method] = spec
        else:
            exact.setdefault(spec.path, {})[spec.method] = spec
    return exact, list(prefixed.items())


ROUTES, PREFIX_ROUTES = _table()
