"""The simple predict API: ``POST /api/v1/predict`` with ``{"input": "..."}``."""

from __future__ import annotations

import orjson

from turnout.gateway import Gateway
from turnout.policies.roles import INFERENCE
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.routes import RouteSpec


async def predict(gw: Gateway, req: HttpRequest) -> JsonResponse:
    ctx = gw.context(req.request_id)
    ctx.principal = req.principal
    ctx.admission = req.admission
    ctx.header = req.header
    ctx.caller = req.caller
    return JsonResponse(orjson.dumps(await gw.inference.predict(req.parsed, ctx)))


ROUTES = (RouteSpec("POST", "/api/v1/predict", predict, body=True, permission=INFERENCE),)
