"""Admin API for local models: list, deploy (load) and unload, master key required."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from turnout.backends.local.registry import LocalRegistry
from turnout.config import LocalModelConfig
from turnout.exceptions import InvalidRequest, ModelNotFound, NotSupported
from turnout.gateway import Gateway
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.routes import RouteSpec

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=_NAME)
    path: str = Field(min_length=1, max_length=4096)
    engine: str = "transformers"
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


def _registry(gw: Gateway) -> LocalRegistry:
    if gw.local is None:
        raise NotSupported(
            "Local models are off: add a local: section to the configuration (model_dirs, "
            "models) to deploy models at runtime."
        )
    return gw.local


def _state(gw: Gateway, name: str) -> dict[str, Any]:
    for state in _registry(gw).states():
        if state.name == name:
            return asdict(state)
    raise ModelNotFound(f"No local model named {name!r}.")


async def list_local(gw: Gateway, req: HttpRequest) -> JsonResponse:
    data = [asdict(s) for s in _registry(gw).states()]
    return JsonResponse(orjson.dumps({"object": "list", "data": data}))


async def deploy(gw: Gateway, req: HttpRequest) -> JsonResponse:
    registry = _registry(gw)
    try:
        spec = DeployRequest.model_validate(req.parsed)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param) from None
    if spec.engine not in ("transformers", "llama_cpp"):
        raise InvalidRequest("engine must be 'transformers' or 'llama_cpp'.", param="engine")
    if spec.name in gw.router.routes and spec.name not in registry.specs:
        raise InvalidRequest(f"{spec.name!r} is already a public model name.", param="name")
    model = LocalModelConfig(
        engine=spec.engine,  # type: ignore[arg-type]
        path=spec.path,
        description=spec.description,
        options=spec.options,
    )
    await registry.deploy(spec.name, model)
    gw.router.add_local(spec.name, spec.description)
    return JsonResponse(orjson.dumps(_state(gw, spec.name)), status=201)


async def unload(gw: Gateway, req: HttpRequest) -> JsonResponse:
    name = req.path.removeprefix("/admin/models/")
    registry = _registry(gw)
    if name not in registry.specs:
        raise ModelNotFound(f"No local model named {name!r}.")
    was_loaded = await registry.unload(name)
    return JsonResponse(orjson.dumps({"name": name, "unloaded": was_loaded}))


ROUTES = (
    RouteSpec("GET", "/admin/models", list_local),
    RouteSpec("POST", "/admin/models", deploy, body=True),
    RouteSpec("DELETE", "/admin/models/*", unload),
)
