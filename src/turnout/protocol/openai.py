"""OpenAI wire schemas for requests, fields in the order of the official API reference.

Requests are validated (types and ranges) but forwarded as the caller's own JSON object, so
fields turnout does not know pass through to the backend untouched (``extra="allow"``).
Validation is strict: ``"temperature": "hot"`` or ``"max_tokens": "5"`` is an error, not a
coercion, because the original value is what travels upstream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from turnout.exceptions import InvalidRequest

__all__ = [
    "MAX_TOKENS_LIMIT",
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "Message",
    "PredictRequest",
    "StreamOptions",
    "validate",
]

#: no model produces more tokens than this in one response; larger values are mistakes
MAX_TOKENS_LIMIT = 1 << 20

_Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)]
_Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
_Stop = str | Annotated[list[str], Field(max_length=16)]
M = TypeVar("M", bound=BaseModel)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ChatCompletionRequest(_Open):
    messages: Annotated[list[Message], Field(min_length=1)]
    model: Annotated[str, Field(min_length=1, max_length=256)]
    frequency_penalty: _Penalty | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: _Tokens | None = None
    max_tokens: _Tokens | None = None
    metadata: dict[str, str] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    parallel_tool_calls: bool | None = None
    presence_penalty: _Penalty | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    stop: _Stop | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    user: str | None = None


class CompletionRequest(_Open):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    prompt: str | list[str] | list[int] | list[list[int]]
    best_of: Annotated[int, Field(ge=1, le=20)] | None = None
    echo: bool | None = None
    frequency_penalty: _Penalty | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    max_tokens: _Tokens | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    presence_penalty: _Penalty | None = None
    seed: int | None = None
    stop: _Stop | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    user: str | None = None


class EmbeddingRequest(_Open):
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=2048)]
    )
    model: Annotated[str, Field(min_length=1, max_length=256)]
    dimensions: Annotated[int, Field(ge=1, le=65536)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None


class PredictRequest(_Open):
    """turnout's simple API: ``{"input": "..."}`` in, ``{"result": "..."}`` out."""

    input: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    system: str | None = None
    max_tokens: _Tokens | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    stop: _Stop | None = None
    seed: int | None = None


def validate(schema: type[M], body: Any) -> M:
    """Validate a parsed JSON body; raise InvalidRequest naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        raise _to_invalid(exc, body) from None


def _to_invalid(exc: ValidationError, body: dict[str, Any]) -> InvalidRequest:
    errors = exc.errors(include_url=False, include_input=False)
    param = _param(errors[0], body)
    # a union field reports one error per branch: prefer the one that says more than
    # "wrong type" (e.g. a list that is too long rather than "should be a string")
    same = [e for e in errors if _param(e, body) == param]
    err = next((e for e in same if not e["type"].endswith("_type")), same[0])
    if err["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param)


def _param(err: Any, body: dict[str, Any]) -> str:
    """The error's location as the caller wrote it, ('messages', 0, 'role') ->
    'messages[0].role'. Parts that are not in the caller's JSON are pydantic's names for
    union branches ('str', 'list[str]') and are skipped; a missing field is kept."""
    loc: tuple[int | str, ...] = err["loc"]
    node: Any = body
    out = ""
    for i, part in enumerate(loc):
        found, child = _step(node, part)
        if found:
            node = child
        elif not (i == len(loc) - 1 and err["type"] == "missing"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _step(node: Any, part: int | str) -> tuple[bool, Any]:
    """(True, child) when ``part`` is a key or an index of ``node`` in the caller's JSON."""
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None
