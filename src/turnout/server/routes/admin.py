"""Admin API for local models: list, deploy (load) and unload, master key required.

``POST /admin/models`` checks the request and the model files first (a bad deploy is a 4xx and
changes nothing), then loads the model and answers 201 with its state. With ``?wait=false`` it
answers 202 at once (state ``loading``) and loads in the background; ``GET /admin/models`` then
shows the load's ``progress``, and ``status`` ends as ``loaded`` or ``failed`` (with ``error``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar
from urllib.parse import parse_qs

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from turnout.backends.local.registry import LocalRegistry
from turnout.config import LocalModelConfig
from turnout.exceptions import InvalidRequest, ModelNotFound, NotSupported
from turnout.gateway import Gateway
from turnout.policies.roles import CONFIG_READ, CONFIG_WRITE
from turnout.server.http import HttpRequest, JsonResponse
from turnout.server.routes import RouteSpec

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_M = TypeVar("_M", bound=BaseModel)


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=_NAME)
    path: str = Field(min_length=1, max_length=4096)
    engine: str = "transformers"
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    quantization: str = "none"


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
    spec = _parse(DeployRequest, req.parsed)
    if spec.engine not in ("transformers", "llama_cpp"):
        raise InvalidRequest("engine must be 'transformers' or 'llama_cpp'.", param="engine")
    if spec.name in gw.router.routes and spec.name not in registry.specs:
        raise InvalidRequest(f"{spec.name!r} is already a public model name.", param="name")
    model = _parse(LocalModelConfig, spec.model_dump(exclude={"name"}))
    await registry.check(model)
    if _wait(req):
        await registry.deploy(spec.name, model)
        gw.router.add_local(spec.name, spec.description)
        return JsonResponse(orjson.dumps(_state(gw, spec.name)), status=201)
    registry.deploy_in_background(
        spec.name, model, lambda: gw.router.add_local(spec.name, spec.description)
    )
    return JsonResponse(orjson.dumps(_state(gw, spec.name)), status=202)


def _parse(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"Invalid value for '{param}': {message}.", param=param) from None


def _wait(req: HttpRequest) -> bool:
    query = parse_qs(req.scope.get("query_string", b"").decode("latin-1"))
    value = query.get("wait", ["true"])[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest("wait must be true or false.", param="wait")
    return value in ("true", "1")


async def unload(gw: Gateway, req: HttpRequest) -> JsonResponse:
    name = req.path.removeprefix("/admin/models/")
    registry = _registry(gw)
    if not registry.known(name):
        raise ModelNotFound(f"No local model named {name!r}.")
    was_loaded = await registry.unload(name)
    return JsonResponse(orjson.dumps({"name": name, "unloaded": was_loaded}))


ROUTES = (
    RouteSpec("GET", "/admin/models", list_local, permission=CONFIG_READ),
    RouteSpec(
        "POST", "/admin/models", deploy, body=True, permission=CONFIG_WRITE, audit="model.deploy"
    ),
    RouteSpec("DELETE", "/admin/models/*", unload, permission=CONFIG_WRITE, audit="model.unload"),
)
