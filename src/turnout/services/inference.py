"""The inference service: validate → route → backend → account, for every front door.

Front doors hand over the caller's parsed JSON object and a :class:`RequestContext`; they get
back a :class:`Result` (a whole response) or a :class:`ChunkStream` (already primed with its
first chunk, so routing and fallback are over before the front door commits to a status).
No web framework is imported here: library mode and gRPC call the same methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from turnout.backends.base import Backend, BackendRequest, Chunk, RequestContext, Result, Usage
from turnout.exceptions import InvalidRequest
from turnout.protocol.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    PredictRequest,
    StreamOptions,
    validate,
)
from turnout.router.router import Router, Target
from turnout.services.accounting import Accountant
from turnout.telemetry.records import RequestRecord

__all__ = ["ChunkStream", "InferenceService"]

_PREDICT_OWN_FIELDS = frozenset({"input", "system", "model"})

CallOp = Callable[[Backend, BackendRequest, RequestContext], Awaitable[Result]]
StreamOp = Callable[[Backend, BackendRequest, RequestContext], AsyncIterator[Chunk]]


class ChunkStream:
    """A committed stream: iterate it once. Usage is recorded when it ends, however it ends.

    Every chunk is passed on, the trailing usage-only one too: whether the caller sees it
    (``include_usage``) is the front door's business."""

    def __init__(
        self,
        head: Chunk | None,
        rest: AsyncIterator[Chunk],
        target: Target,
        record: RequestRecord,
        ctx: RequestContext,
        accountant: Accountant,
        include_usage: bool,
    ) -> None:
        self.head = head
        self.rest = rest
        self.target = target
        self.record = record
        self.ctx = ctx
        self.accountant = accountant
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self._finished = False

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Chunk]:
        error: BaseException | None = None
        try:
            if self.head is not None:
                head, self.head = self.head, None
                if head.usage is not None:
                    self.usage = head.usage
                yield head
            async for chunk in self.rest:
                if chunk.usage is not None:
                    self.usage = chunk.usage
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._finish(error)

    async def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        await _aclose(self.rest)
        self.accountant.finish(self.record, self.ctx, usage=self.usage, error=error)

    async def aclose(self) -> None:
        """Release the stream if it was not iterated to its end (recorded as cancelled)."""
        await self._finish(GeneratorExit())


class InferenceService:
    def __init__(self, router: Router, accountant: Accountant, default_model: str | None) -> None:
        self.router = router
        self.accountant = accountant
        self.default_model = default_model

    async def chat(self, body: Any, ctx: RequestContext) -> Result | ChunkStream:
        req = validate(ChatCompletionRequest, body)
        return await self._run(
            "chat", body, req.model, bool(req.stream), _include_usage(req.stream_options), ctx
        )

    async def completion(self, body: Any, ctx: RequestContext) -> Result | ChunkStream:
        req = validate(CompletionRequest, body)
        return await self._run(
            "completion",
            body,
            req.model,
            bool(req.stream),
            _include_usage(req.stream_options),
            ctx,
        )

    async def embed(self, body: Any, ctx: RequestContext) -> Result:
        req = validate(EmbeddingRequest, body)
        result = await self._run("embedding", body, req.model, False, False, ctx)
        assert isinstance(result, Result)
        return result

    async def predict(self, body: Any, ctx: RequestContext) -> dict[str, Any]:
        """``{"input": ...}`` → ``{"result": ..., "model": ..., "usage": ...}``."""
        req = validate(PredictRequest, body)
        model = req.model or self.default_model
        if not model:
            raise InvalidRequest(
                'No model given and no default model configured; pass "model" or set '
                "default_model in the configuration.",
                param="model",
            )
        messages = [{"role": "system", "content": req.system}] if req.system else []
        messages.append({"role": "user", "content": req.input})
        chat_body = {k: v for k, v in body.items() if k not in _PREDICT_OWN_FIELDS}
        chat_body.update(model=model, messages=messages)
        chat_body.pop("stream", None)
        result = await self._run("predict", chat_body, model, False, False, ctx)
        assert isinstance(result, Result)
        return _predict_response(result, model)

    async def _run(
        self,
        endpoint: str,
        body: dict[str, Any],
        model: str,
        stream: bool,
        include_usage: bool,
        ctx: RequestContext,
    ) -> Result | ChunkStream:
        route = self.router.resolve(model)
        record = self.accountant.begin(ctx, endpoint, model, stream)
        try:
            if stream:
                return await self._open_stream(endpoint, body, route, record, ctx, include_usage)
            result, target = await self.router.call(
                route, ctx, lambda t: _CALLS[endpoint](t.backend, _request(body, t), ctx)
            )
        except BaseException as exc:
            self.accountant.finish(record, ctx, error=exc)
            raise
        _note_target(record, target)
        self.accountant.finish(record, ctx, usage=result.usage)
        return result

    async def _open_stream(
        self,
        endpoint: str,
        body: dict[str, Any],
        route: Any,
        record: RequestRecord,
        ctx: RequestContext,
        include_usage: bool,
    ) -> ChunkStream:
        opener = _STREAMS[endpoint]
        head, rest, target = await self.router.open_stream(
            route, ctx, lambda t: opener(t.backend, _request(body, t), ctx)
        )
        _note_target(record, target)
        self.accountant.first_token(record, ctx)
        return ChunkStream(head, rest, target, record, ctx, self.accountant, include_usage)


_CALLS: dict[str, CallOp] = {
    "chat": lambda b, r, c: b.chat(r, c),
    "predict": lambda b, r, c: b.chat(r, c),
    "completion": lambda b, r, c: b.completion(r, c),
    "embedding": lambda b, r, c: b.embed(r, c),
}
_STREAMS: dict[str, StreamOp] = {
    "chat": lambda b, r, c: b.stream_chat(r, c),
    "completion": lambda b, r, c: b.stream_completion(r, c),
}


def _request(body: dict[str, Any], target: Target) -> BackendRequest:
    out = dict(body)
    out["model"] = target.model
    return BackendRequest(out)


def _note_target(record: RequestRecord, target: Target) -> None:
    record.backend = target.backend.name
    record.upstream_model = target.model


def _include_usage(options: StreamOptions | None) -> bool:
    return bool(options and options.include_usage)


def _predict_response(result: Result, model: str) -> dict[str, Any]:
    choices = result.data.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") or {}
    usage = result.usage or Usage()
    return {
        "id": result.data.get("id"),
        "result": message.get("content") or "",
        "model": model,
        "finish_reason": first.get("finish_reason"),
        "usage": usage.as_dict(),
    }


async def _aclose(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
