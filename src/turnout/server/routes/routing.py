"""Admin API for routing: public models with their deployments' weights and state, runtime
weight changes (canary and gray releases without a restart), and recent routing events."""

from __future__ import annotations

import orjson

from turnout.exceptions import InvalidRequest
from turnout.gateway import Gateway
from turnout.policies.roles import CONFIG_READ, CONFIG_WRITE
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.routes import RouteSpec


async def list_routes(gw: Gateway, req: HttpRequest) -> JsonResponse:
    body = {"object": "list", "data": gw.router.describe(), "events": list(gw.router.events)}
    return JsonResponse(orjson.dumps(body))


async def show_route(gw: Gateway, req: HttpRequest) -> JsonResponse:
    name = req.path.removeprefix("/admin/routes/")
    return JsonResponse(orjson.dumps(gw.router.describe_route(gw.router.resolve(name))))


async def change_route(gw: Gateway, req: HttpRequest) -> JsonResponse:
    """``{"weights": {"backend/model": weight, ...}}``; deployments not named keep theirs."""
    name = req.path.removeprefix("/admin/routes/")
    body = req.parsed
    weights = body.get("weights")
    unknown = set(body) - {"weights"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidRequest(
            f"Unknown field {field!r}; send " + '{"weights": {"backend/model": weight}}.',
            param=field,
        )
    if not isinstance(weights, dict) or not weights:
        raise InvalidRequest(
            'Send {"weights": {"backend/model": weight, ...}} with at least one deployment.',
            param="weights",
        )
    req.audit_details = {"weights": weights}
    route = gw.router.set_weights(name, weights, actor=req.principal)
    return JsonResponse(orjson.dumps(gw.router.describe_route(route)))


ROUTES = (
    RouteSpec("GET", "/admin/routes", list_routes, permission=CONFIG_READ),
    RouteSpec("GET", "/admin/routes/*", show_route, permission=CONFIG_READ),
    RouteSpec(
        "PATCH",
        "/admin/routes/*",
        change_route,
        body=True,
        permission=CONFIG_WRITE,
        audit="route.weights",
    ),
)
