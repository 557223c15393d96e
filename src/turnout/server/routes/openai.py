"""OpenAI-compatible front door: /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/models. Each route parses, calls the inference service and renders; nothing else."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import orjson

from turnout.backends.base import Chunk, RequestContext, Result
from turnout.exceptions import TurnoutError
from turnout.gateway import Gateway
from turnout.policies.roles import INFERENCE
from turnout.router.router import Route
from turnout.server.errors import openai_sse_error
from turnout.server.http import HttpRequest, JsonResponse, LastFrame, SseResponse
from turnout.server.routes import RouteSpec
from turnout.services.inference import ChunkStream

log = logging.getLogger("turnout.server")

_DONE = b"data: [DONE]\n\n"
_STARTED = int(time.time())


def _context(gw: Gateway, req: HttpRequest) -> RequestContext:
    ctx = gw.context(req.request_id)
    ctx.sse_passthrough = True  # _sse forwards frames as they are
    ctx.principal = req.principal
    ctx.admission = req.admission
    ctx.header = req.header
    ctx.caller = req.caller
    return ctx


def _routing_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    if ctx.served_by is None:
        return []
    headers = [
        # a passthrough model name is the caller's text: keep it one valid header value
        (b"x-turnout-deployment", quote(ctx.served_by, safe="/:@+").encode()),
        (b"x-turnout-attempts", str(ctx.attempts).encode()),
    ]
    if ctx.privacy is not None:
        found = ",".join(sorted(ctx.privacy_categories))
        headers.append((b"x-turnout-privacy", f"{ctx.privacy}; categories={found}".encode()))
    return headers


def _render(result: Result | ChunkStream, ctx: RequestContext) -> JsonResponse | SseResponse:
    if isinstance(result, ChunkStream):
        return SseResponse(_sse(result), _routing_headers(ctx))
    return JsonResponse(result.json(), headers=_routing_headers(ctx))


async def _sse(stream: ChunkStream) -> AsyncIterator[bytes]:
    """``data: {chunk}`` frames, then ``[DONE]``; a failure mid-stream ends with an error
    event instead (the status line has already gone out). Frames of chunks that arrived
    together leave together, in one write; the trailing usage chunk only if it was asked for.

    The backend's chunks are iterated here directly (``stream.rest``), not through the
    stream's own iterator: one async-generator step less per chunk, the largest part of what
    a streamed request costs beyond a JSON one.
    """
    pending: list[bytes] = []
    include_usage = stream.include_usage
    error: BaseException | None = None
    try:
        chunk = stream.take_head()
        if chunk is not None:
            _frame(chunk, pending, include_usage)
            if pending and not chunk.more:
                yield b"".join(pending)
                pending.clear()
        async for chunk in stream.rest:
            stream.saw(chunk)
            _frame(chunk, pending, include_usage)
            if pending and not chunk.more:
                yield b"".join(pending)
                pending.clear()
    except TurnoutError as exc:
        error = exc
        pending.append(openai_sse_error(exc))
        yield LastFrame(b"".join(pending))
        return
    except Exception as exc:
        error = exc
        log.exception("stream %s failed", stream.ctx.request_id)
        pending.append(openai_sse_error(TurnoutError("The stream failed inside the gateway.")))
        yield LastFrame(b"".join(pending))
        return
    except BaseException as exc:  # cancelled, or closed by the server (the client left)
        error = exc
        raise
    finally:
        await stream.finish(error)
    pending.append(_DONE)
    yield LastFrame(b"".join(pending))


def _frame(chunk: Chunk, pending: list[bytes], include_usage: bool) -> None:
    """Add the chunk's SSE frames to ``pending``: as they are when the backend framed them
    (sse_passthrough), none for the trailing usage chunk unless the client asked for it."""
    if chunk.frames is not None:
        pending.append(chunk.frames)
    elif include_usage or not chunk.usage_only:
        pending += (b"data: ", chunk.json(), b"\n\n")


async def chat_completions(gw: Gateway, req: HttpRequest) -> JsonResponse | SseResponse:
    ctx = _context(gw, req)
    return _render(await gw.inference.chat(req.parsed, ctx), ctx)


async def completions(gw: Gateway, req: HttpRequest) -> JsonResponse | SseResponse:
    ctx = _context(gw, req)
    return _render(await gw.inference.completion(req.parsed, ctx), ctx)


async def embeddings(gw: Gateway, req: HttpRequest) -> JsonResponse | SseResponse:
    ctx = _context(gw, req)
    return _render(await gw.inference.embed(req.parsed, ctx), ctx)


def _model_object(route: Route) -> dict[str, object]:
    model: dict[str, object] = {
        "id": route.name,
        "object": "model",
        "created": _STARTED,
        "owned_by": "turnout",
    }
    if route.description:  # turnout's extension, e.g. the demo model's label
        model["description"] = route.description
    return model


async def list_models(gw: Gateway, req: HttpRequest) -> JsonResponse:
    """The public models; for a key with an allow-list, only those it may use."""
    caller = req.caller
    data = [
        _model_object(route)
        for route in gw.router.routes.values()
        if caller is None or caller.may_use(route.name)
    ]
    return JsonResponse(orjson.dumps({"object": "list", "data": data}))


async def retrieve_model(gw: Gateway, req: HttpRequest) -> JsonResponse:
    name = req.path.removeprefix("/v1/models/")
    caller = req.caller
    if caller is not None and not caller.may_use(name):
        raise caller.model_not_found(name, gw.router.routes)
    return JsonResponse(orjson.dumps(_model_object(gw.router.resolve(name))))


ROUTES = (
    RouteSpec("POST", "/v1/chat/completions", chat_completions, body=True, permission=INFERENCE),
    RouteSpec("POST", "/v1/completions", completions, body=True, permission=INFERENCE),
    RouteSpec("POST", "/v1/embeddings", embeddings, body=True, permission=INFERENCE),
    RouteSpec("GET", "/v1/models", list_models, permission=INFERENCE),
    RouteSpec("GET", "/v1/models/*", retrieve_model, permission=INFERENCE),
)
