"""turnout.protocol.openai.validate: strict types, the offending parameter named, extras kept."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.exceptions import InvalidRequest
from turnout.protocol.openai import (
    MAX_TOKENS_LIMIT,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    PredictRequest,
    validate,
)

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": USER, **fields}


def invalid(schema: Any, body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate(schema, body)
    err = info.value
    assert (err.status, err.type) == (400, "invalid_request_error")
    return err


@pytest.mark.parametrize("body", [[], "x", None, 5, [USER]])
def test_body_must_be_an_object(body: Any) -> None:
    err = invalid(ChatCompletionRequest, body)
    assert err.code == "invalid_json"
    assert err.param is None
    assert err.message == "The request body must be a JSON object."


@pytest.mark.parametrize(
    ("body", "param", "missing"),
    [
        ({"model": "m"}, "messages", True),
        ({"messages": USER}, "model", True),
        (chat(messages=[]), "messages", False),
        (chat(messages=[{"content": "x"}]), "messages[0].role", True),
        (chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", False),
        (chat(messages=[*USER, {"role": "user", "content": 5}]), "messages[1].content", False),
        (chat(messages=["hi"]), "messages[0]", False),
        (
            chat(messages=[{"role": "assistant", "tool_calls": ["x"]}]),
            "messages[0].tool_calls[0]",
            False,
        ),
        (
            chat(messages=[{"role": "tool", "content": "r", "tool_call_id": 7}]),
            "messages[0].tool_call_id",
            False,
        ),
        (chat(model=""), "model", False),
        (chat(model=5), "model", False),
        (chat(model="x" * 257), "model", False),
        (chat(temperature="hot"), "temperature", False),
        (chat(temperature=2.5), "temperature", False),
        (chat(top_p=1.5), "top_p", False),
        (chat(frequency_penalty=-3), "frequency_penalty", False),
        (chat(max_tokens=0), "max_tokens", False),
        (chat(max_tokens=MAX_TOKENS_LIMIT + 1), "max_tokens", False),
        (chat(max_completion_tokens=-1), "max_completion_tokens", False),
        (chat(n=0), "n", False),
        (chat(stop=5), "stop", False),
        (chat(stream="true"), "stream", False),
        (chat(stream_options={"include_usage": "yes"}), "stream_options.include_usage", False),
        (chat(logit_bias={"50256": "x"}), "logit_bias.50256", False),
        (chat(metadata={"team": 1}), "metadata.team", False),
        (chat(tools={"type": "function"}), "tools", False),
        (chat(tool_choice=5), "tool_choice", False),
        (chat(response_format="json"), "response_format", False),
        (chat(top_logprobs=21), "top_logprobs", False),
        (chat(user=5), "user", False),
    ],
)
def test_chat_errors_name_the_parameter(body: dict[str, Any], param: str, missing: bool) -> None:
    err = invalid(ChatCompletionRequest, body)
    assert err.param == param
    assert err.code == "invalid_parameter"
    if missing:
        assert err.message == f"Missing required parameter: '{param}'."
    else:
        assert err.message.startswith(f"Invalid value for '{param}': ")
        assert err.message.endswith(".")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_tokens", "5"),
        ("max_tokens", True),
        ("max_tokens", 5.0),
        ("n", True),
        ("seed", "5"),
        ("top_logprobs", False),
        ("temperature", "0.5"),
        ("logprobs", 1),
        ("logprobs", "true"),
        ("stream", 1),
        ("parallel_tool_calls", "false"),
    ],
)
def test_no_coercion(name: str, value: Any) -> None:
    """The caller's JSON is what travels upstream, so it must already have the right type."""
    err = invalid(ChatCompletionRequest, chat(**{name: value}))
    assert err.param == name


def test_valid_values_at_the_limits_pass() -> None:
    req = validate(
        ChatCompletionRequest,
        chat(
            temperature=2,  # an int is a valid number
            top_p=0,
            max_tokens=MAX_TOKENS_LIMIT,
            n=128,
            stop=["a"] * 16,
            frequency_penalty=-2,
            presence_penalty=2.0,
            seed=-1,
            stream=False,
            stream_options={"include_usage": True},
            messages=[
                {"role": "system", "content": "s"},
                {"role": "developer", "content": "d"},
                {"role": "user", "content": [{"type": "text", "text": "t"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "content": "r", "tool_call_id": "c1"},
            ],
        ),
    )
    assert req.temperature == 2 and req.max_tokens == MAX_TOKENS_LIMIT
    assert req.stream_options is not None and req.stream_options.include_usage is True
    assert [m.role for m in req.messages] == ["system", "developer", "user", "assistant", "tool"]


def test_unknown_fields_are_allowed_and_kept() -> None:
    body = chat(reasoning_effort="low", vendor={"x": [1, 2]})
    body["messages"] = [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}]
    req = validate(ChatCompletionRequest, body)
    assert req.model_extra == {"reasoning_effort": "low", "vendor": {"x": [1, 2]}}
    assert req.messages[0].model_extra == {"cache_control": {"type": "ephemeral"}}


def test_dict_key_named_like_a_type_is_kept_in_the_param() -> None:
    assert invalid(ChatCompletionRequest, chat(metadata={"str": 1})).param == "metadata.str"


def test_stop_list_too_long_says_why() -> None:
    err = invalid(ChatCompletionRequest, chat(stop=["a"] * 17))
    assert err.param == "stop"
    assert "16" in err.message


@pytest.mark.parametrize(
    ("schema", "body", "param"),
    [
        (CompletionRequest, {"model": "m"}, "prompt"),
        (CompletionRequest, {"model": "m", "prompt": 5}, "prompt"),
        (CompletionRequest, {"model": "m", "prompt": "p", "best_of": 21}, "best_of"),
        (CompletionRequest, {"model": "m", "prompt": "p", "logprobs": True}, "logprobs"),
        (CompletionRequest, {"model": "m", "prompt": "p", "echo": "yes"}, "echo"),
        (EmbeddingRequest, {"model": "m"}, "input"),
        (EmbeddingRequest, {"model": "m", "input": ""}, "input"),
        (EmbeddingRequest, {"model": "m", "input": []}, "input"),
        (EmbeddingRequest, {"input": "x"}, "model"),
        (
            EmbeddingRequest,
            {"model": "m", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        (EmbeddingRequest, {"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        (PredictRequest, {}, "input"),
        (PredictRequest, {"input": ""}, "input"),
        (PredictRequest, {"input": 5}, "input"),
        (PredictRequest, {"input": "x", "max_tokens": "5"}, "max_tokens"),
        (PredictRequest, {"input": "x", "model": ""}, "model"),
        (PredictRequest, {"input": "x", "system": 1}, "system"),
    ],
)
def test_other_schemas_name_the_parameter(schema: Any, body: dict[str, Any], param: str) -> None:
    assert invalid(schema, body).param == param


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (CompletionRequest, {"model": "m", "prompt": "p"}),
        (CompletionRequest, {"model": "m", "prompt": ["a", "b"]}),
        (CompletionRequest, {"model": "m", "prompt": [1, 2, 3]}),
        (CompletionRequest, {"model": "m", "prompt": [[1, 2], [3]], "suffix": "s"}),
        (EmbeddingRequest, {"model": "m", "input": "x", "encoding_format": "base64"}),
        (EmbeddingRequest, {"model": "m", "input": ["a", "b"], "dimensions": 8}),
        (EmbeddingRequest, {"model": "m", "input": [1, 2]}),
        (EmbeddingRequest, {"model": "m", "input": [[1, 2]]}),
        (PredictRequest, {"input": "x", "extra": {"anything": True}}),
    ],
)
def test_other_schemas_accept_valid_bodies(schema: Any, body: dict[str, Any]) -> None:
    assert isinstance(validate(schema, body), schema)
