"""A real :class:`~turnout.backends.base.Backend` whose answers are scripted per call."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from turnout.backends.base import Backend, BackendRequest, Chunk, RequestContext, Usage
from turnout.exceptions import BackendError


@dataclass(frozen=True)
class MidStream:
    """Send ``text`` as chunks, then fail with ``error`` before the stream is complete."""

    text: str
    error: BackendError


Output = str | BackendError | MidStream


class ScriptedBackend(Backend):
    """Each call takes the next enqueued output: a reply text (streamed word by word, then
    a finish chunk and a usage chunk), an error raised before the first chunk, or a
    :class:`MidStream` failure. With nothing enqueued it answers ``"<name>:<model>"``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.script: deque[Output] = deque()
        #: the upstream model of every call, in order
        self.calls: list[str] = []
        #: streams that ended early: failed mid-stream or closed by the consumer
        self.unfinished = 0

    def enqueue(self, *outputs: Output) -> ScriptedBackend:
        self.script.extend(outputs)
        return self

    async def stream_chat(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        self.calls.append(request.model)
        output = self.script.popleft() if self.script else f"{self.name}:{request.model}"
        if isinstance(output, BackendError):
            raise output
        text = output.text if isinstance(output, MidStream) else output
        words = text.split(" ")
        finished = False
        try:
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                yield Chunk(data=_chunk(request.model, {"content": piece}, None))
            if isinstance(output, MidStream):
                raise output.error
            yield Chunk(data=_chunk(request.model, {}, "stop"))
            usage = Usage(prompt_tokens=3, completion_tokens=len(words))
            data = _chunk(request.model, None, None)
            data["usage"] = usage.as_dict()
            finished = True
            yield Chunk(data=data, usage=usage)
        finally:
            if not finished:
                self.unfinished += 1


def _chunk(model: str, delta: dict[str, str] | None, finish: str | None) -> dict[str, object]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": choices,
    }
