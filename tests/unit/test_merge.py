"""turnout.protocol.merge.ChunkAccumulator: a stream of chunks back into one chat.completion."""

from __future__ import annotations

from typing import Any

from turnout.protocol.merge import ChunkAccumulator


def chunk(*choices: dict[str, Any], **top: Any) -> dict[str, Any]:
    base = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": list(choices),
    }
    base.update(top)
    return base


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "finish_reason": finish, "logprobs": None}


def collect(*chunks: dict[str, Any]) -> dict[str, Any]:
    acc = ChunkAccumulator()
    for c in chunks:
        acc.add(c)
    return acc.result()


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_content_is_concatenated_with_usage_and_finish_reason() -> None:
    result = collect(
        chunk(delta(role="assistant", content="")),
        chunk(delta(content="Hello")),
        chunk(delta(content=", ")),
        chunk(delta(content="world")),
        chunk(delta(finish="length")),
        chunk(usage=USAGE),  # the include_usage chunk: choices == []
    )
    assert result == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, world", "refusal": None},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": USAGE,
    }


def test_two_choices_interleaved() -> None:
    result = collect(
        chunk(delta(1, role="assistant", content="B1")),
        chunk(delta(0, role="assistant", content="A1")),
        chunk(delta(0, content=" A2"), delta(1, content=" B2")),
        chunk(delta(1, finish="length")),
        chunk(delta(0, finish="stop")),
    )
    choices = result["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert [c["message"]["content"] for c in choices] == ["A1 A2", "B1 B2"]
    assert [c["finish_reason"] for c in choices] == ["stop", "length"]
    assert "usage" not in result


def test_tool_call_deltas_are_merged_by_index() -> None:
    result = collect(
        chunk(delta(role="assistant", content=None)),
        chunk(
            delta(
                tool_calls=[
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ]
            )
        ),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city":'}}])),
        chunk(
            delta(
                tool_calls=[
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz"'},
                    },
                ]
            )
        ),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": ' "Paris"}'}}])),
        chunk(delta(tool_calls=[{"index": 1, "function": {"arguments": ': "CET"}'}}])),
        chunk(delta(finish="tool_calls")),
    )
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None  # tool calls and no text: content is null, as OpenAI
    assert message["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
        },
    ]


def test_text_and_tool_calls_together() -> None:
    result = collect(
        chunk(delta(content="Let me check.")),
        chunk(
            delta(
                tool_calls=[{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]
            )
        ),
        chunk(delta(finish="tool_calls")),
    )
    message = result["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert len(message["tool_calls"]) == 1


def test_refusal_and_logprobs_are_collected() -> None:
    lp1 = {"token": "No", "logprob": -0.1, "bytes": [78, 111], "top_logprobs": []}
    lp2 = {"token": ".", "logprob": -0.2, "bytes": [46], "top_logprobs": []}
    result = collect(
        chunk({**delta(refusal="No"), "logprobs": {"content": [lp1]}}),
        chunk({**delta(refusal="."), "logprobs": {"content": [lp2]}}),
        chunk(delta(finish="stop")),
    )
    choice = result["choices"][0]
    assert choice["message"]["refusal"] == "No."
    assert choice["message"]["content"] == ""
    assert choice["logprobs"] == {"content": [lp1, lp2]}


def test_the_last_usage_wins_and_null_usage_is_ignored() -> None:
    result = collect(
        chunk(delta(content="x"), usage={"prompt_tokens": 1, "completion_tokens": 1}),
        chunk(delta(finish="stop"), usage=None),
        chunk(usage=USAGE),
    )
    assert result["usage"] == USAGE


def test_first_id_model_and_created_are_kept() -> None:
    result = collect(
        chunk(delta(content="a"), id="first", model="m1", created=1),
        chunk(delta(content="b"), id="second", model="m2", created=2),
    )
    assert (result["id"], result["model"], result["created"]) == ("first", "m1", 1)


def test_no_finish_reason_defaults_to_stop() -> None:
    assert collect(chunk(delta(content="x")))["choices"][0]["finish_reason"] == "stop"


def test_empty_stream() -> None:
    result = ChunkAccumulator().result()
    assert result["choices"] == []
    assert result["object"] == "chat.completion"
    assert result["id"] == "chatcmpl-turnout"
    assert isinstance(result["created"], int) and result["created"] > 1_600_000_000
    assert "usage" not in result
