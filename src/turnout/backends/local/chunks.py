"""Building OpenAI ``chat.completion.chunk`` objects for engines that generate tokens themselves.

Every local engine yields the same sequence for one request: a role chunk, content chunks as
text is decoded, a chunk with the ``finish_reason``, and a usage chunk (``choices: []``) —
exactly what an OpenAI upstream sends with ``include_usage``, so the layers above treat
local and hosted streams alike.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from typing import Any

from turnout.backends.base import Chunk, Usage
from turnout.exceptions import InvalidRequest

__all__ = [
    "ChunkBuilder",
    "encode_embedding",
    "held_back",
    "room_for_output",
    "short_error",
    "stop_position",
]


class ChunkBuilder:
    """Chunks of one response: fixed id, creation time and model name."""

    __slots__ = ("created", "id", "model", "object")

    def __init__(self, model: str, *, kind: str = "chat.completion.chunk") -> None:
        prefix = "chatcmpl" if kind == "chat.completion.chunk" else "cmpl"
        self.id = f"{prefix}-{os.urandom(12).hex()}"
        self.created = int(time.time())
        self.model = model
        self.object = kind

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }

    def role(self, index: int = 0) -> Chunk:
        delta = {"role": "assistant", "content": ""}
        return Chunk(data=self._chunk([_choice(index, delta, None)]))

    def content(self, text: str, index: int = 0) -> Chunk:
        return Chunk(data=self._chunk([_choice(index, {"content": text}, None)]))

    def finish(self, reason: str, index: int = 0) -> Chunk:
        return Chunk(data=self._chunk([_choice(index, {}, reason)]))

    def usage(self, prompt_tokens: int, completion_tokens: int) -> Chunk:
        usage = Usage(prompt_tokens, completion_tokens)
        return Chunk(data=self._chunk([], usage=usage.as_dict()), usage=usage)


def _choice(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def stop_position(text: str, stops: list[str]) -> int:
    """Where the first stop sequence starts in ``text``, or -1."""
    positions = [p for p in (text.find(s) for s in stops if s) if p >= 0]
    return min(positions) if positions else -1


def held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` could be the beginning of a stop sequence
    (they wait until the next tokens show whether it is one)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def encode_embedding(vector: list[float], base64_format: bool) -> list[float] | str:
    """OpenAI's ``encoding_format``: floats, or little-endian float32 bytes in base64."""
    if not base64_format:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def short_error(exc: BaseException) -> str:
    """The first line of an engine library's error, for a message a caller can read."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def room_for_output(name: str, prompt_tokens: int, context: int) -> int:
    """Tokens left for the answer in a ``context``-token window; InvalidRequest
    (context_length_exceeded) when the prompt leaves none."""
    room = context - prompt_tokens
    if room <= 0:
        raise InvalidRequest(
            f"The prompt has {prompt_tokens} tokens; {name!r} takes at most {context - 1} "
            f"(its context is {context}).",
            param="messages",
            code="context_length_exceeded",
        )
    return room
