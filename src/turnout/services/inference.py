"""The inference service: validate → route → backend → account, for every front door.

Front doors hand over the caller's parsed JSON object and a :class:`RequestContext`; they get
back a :class:`Result` (a whole response) or a :class:`ChunkStream` (already primed with its
first chunk, so routing and fallback are over before the front door commits to a status).
No web framework is imported here: library mode and gRPC call the same methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.backends.base import Backend, BackendRequest, Chunk, RequestContext, Result, Usage
from turnout.exceptions import BudgetExceeded, InvalidRequest, ModelNotFound, SensitiveDataBlocked
from turnout.protocol.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    PredictRequest,
    StreamOptions,
    validate,
)
from turnout.router.router import Route, Router, Target
from turnout.services.accounting import Accountant
from turnout.telemetry.records import RequestRecord

if TYPE_CHECKING:
    from turnout.policies.limits import RateLimitPolicy
    from turnout.policies.privacy import Detector

__all__ = ["ChunkStream", "InferenceService"]

_PREDICT_OWN_FIELDS = frozenset({"input", "system", "model", "stream", "stream_options"})

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
        #: told how the stream ended (the router's in-flight count and health)
        self.on_end: Callable[[BaseException | None], None] | None = None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._iterate()

    def take_head(self) -> Chunk | None:
        """The first chunk (already received), once; for consumers that iterate ``rest``
        themselves (the SSE front door: one async-generator layer less per chunk), calling
        :meth:`saw` for every chunk and :meth:`finish` at the end, however it ends."""
        head, self.head = self.head, None
        if head is not None:
            self.saw(head)
        return head

    def saw(self, chunk: Chunk) -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage

    async def _iterate(self) -> AsyncIterator[Chunk]:
        error: BaseException | None = None
        try:
            head = self.take_head()
            if head is not None:
                yield head
            async for chunk in self.rest:
                self.saw(chunk)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self.finish(error)

    async def finish(self, error: BaseException | None) -> None:
        """Record the stream's end (idempotent): close ``rest``, account for it."""
        if self._finished:
            return
        self._finished = True
        try:
            await _aclose(self.rest)
        finally:
            if self.on_end is not None:
                self.on_end(error)
            self.accountant.finish(self.record, self.ctx, usage=self.usage, error=error)

    async def aclose(self) -> None:
        """Release the stream if it was not iterated to its end (recorded as cancelled)."""
        await self.finish(GeneratorExit())


@dataclass(slots=True)
class _Call:
    """A validated request, ready to route."""

    model: str
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False


class InferenceService:
    def __init__(
        self,
        router: Router,
        accountant: Accountant,
        default_model: str | None,
        limits: RateLimitPolicy | None = None,
        privacy: Detector | None = None,
    ) -> None:
        self.router = router
        self.accountant = accountant
        self.default_model = default_model
        #: finds sensitive data for models whose privacy policy is not ``allow``
        self.privacy = privacy
        #: reserves each request's tokens before the backend call (accounting settles them)
        self.limits = limits

    async def chat(self, body: Any, ctx: RequestContext) -> Result | ChunkStream:
        return await self._run("chat", body, ctx)

    async def completion(self, body: Any, ctx: RequestContext) -> Result | ChunkStream:
        return await self._run("completion", body, ctx)

    async def embed(self, body: Any, ctx: RequestContext) -> Result:
        result = await self._run("embedding", body, ctx)
        assert isinstance(result, Result)
        return result

    async def predict(self, body: Any, ctx: RequestContext) -> dict[str, Any]:
        """``{"input": ...}`` → ``{"result": ..., "model": ..., "usage": ...}``."""
        result = await self._run("predict", body, ctx)
        assert isinstance(result, Result)
        return _predict_response(result, self._predict_model(body))

    async def _run(self, endpoint: str, body: Any, ctx: RequestContext) -> Result | ChunkStream:
        """Validate, route, call, and account for the request whatever happens."""
        record = self.accountant.begin(ctx, endpoint, _requested_model(body))
        try:
            call = self._prepare(endpoint, body)
            record.model, record.stream = call.model, call.stream
            route = self._resolve(call.model, ctx)
            if self.limits is not None:
                await self.limits.reserve(ctx, call.body)
            local_only = self._apply_privacy(route, call, ctx)
            if call.stream:
                return await self._open_stream(endpoint, call, route, record, ctx, local_only)
            result, _ = await self.router.call(
                route,
                ctx,
                lambda t: _CALLS[endpoint](t.backend, _request(call.body, t), ctx),
                body=call.body,
                local_only=local_only,
            )
        except BaseException as exc:
            self.accountant.finish(record, ctx, error=exc)
            raise
        self.accountant.finish(record, ctx, usage=result.usage)
        return result

    def _resolve(self, model: str, ctx: RequestContext) -> Route:
        """The route for ``model`` if the caller's key may use it and has budget left.

        A model outside the key's allow-list is "not found", exactly like an unknown one, and
        the message names only models the key may use."""
        key = ctx.caller.key if ctx.caller is not None else None
        if key is None:
            return self.router.resolve(model)
        caller = key.caller
        if not caller.may_use(model):
            raise caller.model_not_found(model, self.router.routes)
        try:
            route = self.router.resolve(model)
        except ModelNotFound:
            if key.allowed_models is None:
                raise
            raise caller.model_not_found(model, self.router.routes) from None
        if key.over_budget:
            raise BudgetExceeded(
                f"The API key {key.prefix} has spent ${key.total_spent:.4f} of its "
                f"${key.budget:.2f} budget; ask an admin to raise it "
                f"(turnout keys update {key.prefix} --budget AMOUNT)."
            )
        return route

    def _apply_privacy(self, route: Route, call: _Call, ctx: RequestContext) -> bool:
        """Scan the request when the model's privacy policy asks for it and apply the
        policy: redact the findings, refuse the request, or keep it local (returns True)."""
        policy = route.privacy
        if policy == "allow" or self.privacy is None:
            return False
        if policy == "redact":
            call.body, found = self.privacy.redact_request(call.body)
        else:
            found = self.privacy.scan_request(call.body)
        if not found:
            return False
        ctx.privacy, ctx.privacy_categories = policy, found
        self.accountant.metrics.count_privacy(policy, found)
        if policy == "block":
            raise SensitiveDataBlocked(
                f"The request carries sensitive data ({', '.join(sorted(found))}) and model "
                f"{route.name!r} does not accept it (privacy policy 'block'). Remove it from "
                "the messages and send the request again."
            )
        return policy == "local"

    def _prepare(self, endpoint: str, body: Any) -> _Call:
        if endpoint == "chat":
            chat = validate(ChatCompletionRequest, body)
            return _Call(chat.model, body, bool(chat.stream), _usage(chat.stream_options))
        if endpoint == "completion":
            comp = validate(CompletionRequest, body)
            return _Call(comp.model, body, bool(comp.stream), _usage(comp.stream_options))
        if endpoint == "embedding":
            return _Call(validate(EmbeddingRequest, body).model, body)
        return self._prepare_predict(body)

    def _prepare_predict(self, body: Any) -> _Call:
        req = validate(PredictRequest, body)
        model = self._predict_model(body)
        messages = [{"role": "system", "content": req.system}] if req.system else []
        messages.append({"role": "user", "content": req.input})
        chat_body = {k: v for k, v in body.items() if k not in _PREDICT_OWN_FIELDS}
        chat_body.update(model=model, messages=messages)
        return _Call(model, chat_body)

    def _predict_model(self, body: dict[str, Any]) -> str:
        model = body.get("model") or self.default_model
        if not model:
            raise InvalidRequest(
                'No model given and no default model configured; pass "model" or set '
                "default_model in the configuration.",
                param="model",
            )
        return str(model)

    async def _open_stream(
        self,
        endpoint: str,
        call: _Call,
        route: Route,
        record: RequestRecord,
        ctx: RequestContext,
        local_only: bool,
    ) -> ChunkStream:
        opener = _STREAMS[endpoint]
        head, rest, target = await self.router.open_stream(
            route,
            ctx,
            lambda t: opener(t.backend, _request(call.body, t), ctx),
            body=call.body,
            local_only=local_only,
            hold=True,
        )
        self.accountant.first_token(record, ctx)
        stream = ChunkStream(head, rest, target, record, ctx, self.accountant, call.include_usage)
        stream.on_end = lambda error: self.router.stream_ended(route, target, ctx, error)
        return stream


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
    out.pop("session_id", None)  # turnout's own field (sticky routing), not the upstream's
    return BackendRequest(out)


def _usage(options: StreamOptions | None) -> bool:
    return bool(options and options.include_usage)


def _requested_model(body: Any) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model[:256] if isinstance(model, str) else ""


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
