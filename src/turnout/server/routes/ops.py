"""Operations endpoints, open without a key: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from turnout.gateway import Gateway
from turnout.policies.roles import PUBLIC
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.routes import RouteSpec
from turnout.telemetry.metrics import CONTENT_TYPE_LATEST


async def healthz(gw: Gateway, req: HttpRequest) -> JsonResponse:
    """The process is alive and answering."""
    return JsonResponse(b'{"status":"ok"}')


async def readyz(gw: Gateway, req: HttpRequest) -> JsonResponse:
    """The gateway has started its backends and can take traffic."""
    if gw.started:
        return JsonResponse(b'{"status":"ready"}')
    return JsonResponse(b'{"status":"starting"}', status=503)


async def metrics(gw: Gateway, req: HttpRequest) -> JsonResponse:
    return JsonResponse(gw.metrics.render(), content_type=CONTENT_TYPE_LATEST.encode())


ROUTES = (
    RouteSpec("GET", "/healthz", healthz, permission=PUBLIC),
    RouteSpec("GET", "/readyz", readyz, permission=PUBLIC),
    RouteSpec("GET", "/metrics", metrics, permission=PUBLIC),
)
