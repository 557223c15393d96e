"""The llama.cpp engine over the demo model's GGUF export: streaming, limits, stop sequences,
seeds, the per-model queue, cancellation, unloading and bad files."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from turnout.backends.base import BackendRequest, Chunk, RequestContext
from turnout.exceptions import (
    InvalidRequest,
    NotSupported,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from turnout.protocol.merge import ChunkAccumulator

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python (extra 'llama') is not installed; `make test` builds it",
)
pytest.importorskip("gguf", reason="the 'gguf' package (extra 'llama') is not installed")
pytest.importorskip("transformers", reason="the demo model needs the 'transformers' extra")

from tests.local.test_gguf_export import demo_files
from turnout.backends.local.llama_cpp_engine import LlamaCppEngine

HELLO = [{"role": "user", "content": "Hello! Tell me about railway turnouts."}]
# A request that runs until it is cancelled, unloaded or out of time: no token limit, the
# end-of-generation tokens banned (llama.cpp ends on <|eot_id|>, the EOS, and on
# <|end_of_text|>: ids 4 and 1 of the demo vocabulary), and a long context (the default
# engine below has 32768 tokens: seconds of generation even on a fast CPU).
EOT = 4
NO_END = {"1": -100, str(EOT): -100}
LONG: dict[str, Any] = {"max_tokens": 1_000_000, "logit_bias": NO_END}


@pytest.fixture(scope="session")
def demo_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_files(tmp_path_factory)[1]


@pytest.fixture(scope="session")
def demo_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_files(tmp_path_factory)[0]


@pytest.fixture
async def make_engine(demo_gguf: Path) -> AsyncIterator[Callable[..., Awaitable[LlamaCppEngine]]]:
    engines: list[LlamaCppEngine] = []

    async def make(**options: Any) -> LlamaCppEngine:
        engine = LlamaCppEngine("demo", demo_gguf, options)
        await engine.load()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.unload()


@pytest.fixture
async def engine(make_engine: Callable[..., Awaitable[LlamaCppEngine]]) -> LlamaCppEngine:
    return await make_engine(n_ctx=32768)


def ctx(timeout: float = 60.0) -> RequestContext:
    return RequestContext.create("req-test", timeout)


def request(**body: Any) -> BackendRequest:
    return BackendRequest({"model": "local-demo", "messages": HELLO, **body})


async def collect(engine: LlamaCppEngine, **body: Any) -> list[Chunk]:
    return [c async for c in engine.stream_chat(request(**body), ctx())]


async def complete(engine: LlamaCppEngine, **body: Any) -> dict[str, Any]:
    """The non-streamed response, collected from the stream as Backend.chat does."""
    acc = ChunkAccumulator()
    for chunk in await collect(engine, **body):
        acc.add(chunk.data)
    return acc.result()


def text_of(chunks: list[Chunk]) -> str:
    return "".join(
        c.data["choices"][0]["delta"].get("content") or "" for c in chunks if c.data["choices"]
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` on the event loop until it holds (fails after ``timeout``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.001)


def prompt_tokens(hf_dir: Path, messages: list[dict[str, Any]]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


# -- responses --------------------------------------------------------------------------------


async def test_streamed_chat_with_usage(engine: LlamaCppEngine, demo_hf: Path) -> None:
    chunks = await collect(engine, max_tokens=12, seed=3)
    first, *content, finish, usage = chunks
    assert first.data["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content and all(c.data["choices"][0]["delta"]["content"] for c in content)
    assert finish.data["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage.data["choices"] == [] and usage.usage is not None
    assert usage.usage.prompt_tokens == prompt_tokens(demo_hf, HELLO)
    assert 0 < usage.usage.completion_tokens <= 12
    assert usage.data["usage"]["total_tokens"] == usage.usage.total_tokens
    assert {c.data["id"] for c in chunks} == {first.data["id"]}
    assert all(c.data["model"] == "local-demo" for c in chunks)
    assert engine.stats().active == 0


async def test_collected_response(engine: LlamaCppEngine) -> None:
    result = await complete(engine, max_completion_tokens=9, seed=11)
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert result["usage"]["completion_tokens"] <= 9
    assert result["object"] == "chat.completion"


async def test_max_tokens_ends_with_length(engine: LlamaCppEngine) -> None:
    for limit in (1, 7, 40):
        chunks = await collect(engine, max_tokens=limit, seed=5)
        assert chunks[-2].data["choices"][0]["finish_reason"] == "length"
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == limit


async def test_stop_sequence_ends_the_text_before_it(engine: LlamaCppEngine) -> None:
    full = text_of(await collect(engine, max_tokens=40, seed=21))
    assert len(full) > 20
    stop = full[10:14]
    expected = full[: full.find(stop)]
    chunks = await collect(engine, max_tokens=40, seed=21, stop=["never-seen", stop])
    assert text_of(chunks) == expected
    assert chunks[-2].data["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens < 40
    # a single string works too
    assert text_of(await collect(engine, max_tokens=40, seed=21, stop=stop)) == expected


async def test_same_seed_same_text(engine: LlamaCppEngine) -> None:
    first = text_of(await collect(engine, max_tokens=24, seed=1234))
    again = text_of(await collect(engine, max_tokens=24, seed=1234))
    other = text_of(await collect(engine, max_tokens=24, seed=4321))
    assert first == again
    assert first != other
    greedy = text_of(await collect(engine, max_tokens=24, temperature=0))
    assert greedy == text_of(await collect(engine, max_tokens=24, temperature=0, seed=99))


async def test_invalid_parameters(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest) as info:
        await collect(engine, temperature=3)
    assert info.value.param == "temperature"
    with pytest.raises(InvalidRequest):
        await collect(engine, max_tokens=0)
    with pytest.raises(InvalidRequest):
        await collect(engine, stop=[1])
    with pytest.raises(NotSupported):
        await collect(engine, n=2)
    with pytest.raises(InvalidRequest):
        await collect(engine, messages=[])
    assert engine.stats().active == 0


async def test_context_length(make_engine: Callable[..., Awaitable[LlamaCppEngine]]) -> None:
    engine = await make_engine(n_ctx=256)
    assert engine.stats().extra["context_length"] == 256
    long = [{"role": "user", "content": "the quick brown fox " * 100}]
    with pytest.raises(InvalidRequest) as info:
        await collect(engine, messages=long)
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    # the room left in the context caps the completion
    chunks = await collect(engine, **LONG)
    assert chunks[-2].data["choices"][0]["finish_reason"] == "length"
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens + usage.completion_tokens == 256


async def test_logit_bias(engine: LlamaCppEngine, demo_hf: Path) -> None:
    import json

    assert json.loads((demo_hf / "config.json").read_text())["eos_token_id"] == EOT
    # greedy decoding of this prompt ends with <|eot_id|> after a while ...
    free = await collect(engine, max_tokens=4000, temperature=0)
    assert free[-2].data["choices"][0]["finish_reason"] == "stop"
    assert free[-1].usage is not None
    n = free[-1].usage.completion_tokens
    # ... banning that token lets it run on, with the same text up to there
    banned = await collect(engine, max_tokens=n + 5, temperature=0, logit_bias=NO_END)
    assert banned[-2].data["choices"][0]["finish_reason"] == "length"
    assert text_of(banned).startswith(text_of(free))
    for bad in ({"x": 1}, {"1": 101}, {"1": "high"}, {"-1": 5}, {"100000": 5}, [1]):
        with pytest.raises(InvalidRequest) as info:
            await collect(engine, logit_bias=bad)
        assert info.value.param == "logit_bias"


async def test_kv_cache_reuse_keeps_results(
    make_engine: Callable[..., Awaitable[LlamaCppEngine]],
) -> None:
    """A context keeps the previous request's tokens and reuses the common prefix; the
    result must be the same as on a fresh context."""
    first = [{"role": "user", "content": "Hello there"}]
    turn = [*first, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "More"}]
    used = await make_engine()
    await collect(used, messages=first, max_tokens=30, temperature=0)
    on_used = text_of(await collect(used, messages=turn, max_tokens=30, temperature=0))
    fresh = await make_engine()
    assert on_used == text_of(await collect(fresh, messages=turn, max_tokens=30, temperature=0))
    # the very same prompt again (fully cached) gives the same text too
    assert on_used == text_of(await collect(used, messages=turn, max_tokens=30, temperature=0))


# -- the queue --------------------------------------------------------------------------------


async def test_requests_queue_for_one_instance(engine: LlamaCppEngine) -> None:
    seen_queued: list[int] = []
    seen_active: list[int] = []
    tasks = [
        asyncio.create_task(collect(engine, max_tokens=30, seed=i, temperature=1.0))
        for i in range(4)
    ]

    async def watch() -> None:
        while not all(t.done() for t in tasks):
            stats = engine.stats()
            seen_queued.append(stats.queued)
            seen_active.append(stats.active)
            await asyncio.sleep(0.001)

    await asyncio.gather(watch(), *tasks)
    assert max(seen_queued) == 3
    assert max(seen_active) == 1
    for task in tasks:
        chunks = task.result()
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 30
    assert engine.stats().active == engine.stats().queued == 0


async def test_instances_serve_in_parallel(
    make_engine: Callable[..., Awaitable[LlamaCppEngine]],
) -> None:
    engine = await make_engine(instances=2, n_threads=1)
    assert engine.stats().extra["instances"] == 2
    seen: list[tuple[int, int]] = []
    tasks = [asyncio.create_task(collect(engine, max_tokens=60, seed=i)) for i in range(3)]

    async def watch() -> None:
        while not all(t.done() for t in tasks):
            seen.append((engine.stats().active, engine.stats().queued))
            await asyncio.sleep(0.001)

    await asyncio.gather(watch(), *tasks)
    assert (2, 1) in seen
    assert all(active <= 2 for active, _ in seen)
    # the same seed gives the same text on either instance
    again = await asyncio.gather(*(collect(engine, max_tokens=20, seed=8) for _ in range(2)))
    assert text_of(again[0]) == text_of(again[1])


async def test_cancellation_frees_the_instance_at_once(engine: LlamaCppEngine) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for chunk in engine.stream_chat(request(**LONG), ctx()):
            if chunk.data["choices"] and chunk.data["choices"][0]["delta"].get("content"):
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    assert engine.stats().active == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    llama = engine._instances[0].llama
    at_cancel = llama.n_tokens  # the thread may be computing one more token now
    await until(lambda: engine.stats().active == 0, timeout=5)
    assert llama.n_tokens <= at_cancel + 1, "generation went on after the cancellation"
    assert llama.n_tokens < 32768
    # the freed instance serves the next request
    chunks = await collect(engine, max_tokens=3)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_closing_the_stream_frees_the_instance(engine: LlamaCppEngine) -> None:
    stream = engine.stream_chat(request(**LONG), ctx())
    async for chunk in stream:
        if chunk.data["choices"][0]["delta"].get("content"):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await until(lambda: engine.stats().active == 0, timeout=5)


async def test_cancelled_while_queued_leaves_the_queue(engine: LlamaCppEngine) -> None:
    running = asyncio.create_task(collect(engine, **LONG))
    await until(lambda: engine.stats().active == 1)
    waiting = asyncio.create_task(collect(engine, max_tokens=3))
    await until(lambda: engine.stats().queued == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert engine.stats().queued == 0
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await until(lambda: engine.stats().active == 0)
    assert (await collect(engine, max_tokens=2))[-1].usage is not None


async def test_deadline_while_queued(engine: LlamaCppEngine) -> None:
    running = asyncio.create_task(collect(engine, **LONG))
    await until(lambda: engine.stats().active == 1)
    with pytest.raises(UpstreamTimeout):
        await collect_with(engine, RequestContext.create("late", 0.2), max_tokens=3)
    assert engine.stats().queued == 0
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_deadline_while_generating(engine: LlamaCppEngine) -> None:
    with pytest.raises(UpstreamTimeout):
        await collect_with(engine, RequestContext.create("slow", 0.3), **LONG)
    await until(lambda: engine.stats().active == 0)


async def collect_with(engine: LlamaCppEngine, context: RequestContext, **body: Any) -> None:
    async for _ in engine.stream_chat(request(**body), context):
        pass


async def test_unload_fails_running_and_queued_requests(
    make_engine: Callable[..., Awaitable[LlamaCppEngine]],
) -> None:
    engine = await make_engine()
    running = asyncio.create_task(collect(engine, **LONG))
    await until(lambda: engine.stats().active == 1)
    waiting = asyncio.create_task(collect(engine, max_tokens=3))
    await until(lambda: engine.stats().queued == 1)
    await engine.unload()
    for task in (running, waiting):
        with pytest.raises(UpstreamUnavailable):
            await task
    assert engine.stats().active == engine.stats().queued == 0
    with pytest.raises(UpstreamUnavailable):
        await collect(engine, max_tokens=3)


# -- embeddings -------------------------------------------------------------------------------


async def test_embeddings(make_engine: Callable[..., Awaitable[LlamaCppEngine]]) -> None:
    engine = await make_engine(embedding=True)
    body = {"model": "local-demo", "input": ["hello world", "a railway turnout"]}
    result = await engine.embed(BackendRequest(body), ctx())
    data = result.data["data"]
    assert [d["index"] for d in data] == [0, 1]
    for item in data:
        assert len(item["embedding"]) == 64
        assert math.isclose(math.sqrt(sum(x * x for x in item["embedding"])), 1.0, rel_tol=1e-4)
    assert data[0]["embedding"] != data[1]["embedding"]
    assert result.data["usage"]["prompt_tokens"] > 0
    encoded = await engine.embed(BackendRequest({**body, "encoding_format": "base64"}), ctx())
    assert isinstance(encoded.data["data"][0]["embedding"], str)


async def test_no_embeddings_without_the_option(engine: LlamaCppEngine) -> None:
    with pytest.raises(NotSupported):
        await engine.embed(BackendRequest({"model": "local-demo", "input": "hi"}), ctx())


# -- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "text", "safetensors", "truncated", "header", "dir"])
async def test_bad_files_are_refused(
    case: str, demo_gguf: Path, demo_hf: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.gguf"
    data = demo_gguf.read_bytes()
    if case == "text":
        path.write_text("this is not a model\n")
    elif case == "safetensors":
        path = demo_hf / "model.safetensors"
    elif case == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif case == "header":
        path.write_bytes(data[:12])
    elif case == "dir":
        path = tmp_path
    engine = LlamaCppEngine("bad", path)
    with pytest.raises(InvalidRequest) as info:
        await engine.load()
    message = info.value.message
    expected = {
        "missing": "does not exist",
        "text": "not a GGUF file",
        "safetensors": "not a GGUF file",
        "truncated": "cannot load",
        "header": "truncated",
        "dir": "no .gguf file",
    }[case]
    assert expected in message
    assert info.value.param == "path"
    assert engine.stats().active == 0


async def test_a_directory_with_one_gguf_file(demo_gguf: Path) -> None:
    engine = LlamaCppEngine("demo", demo_gguf.parent)
    await engine.load()
    try:
        assert engine.stats().extra["file"] == demo_gguf.name
        assert engine.stats().memory_bytes == demo_gguf.stat().st_size
    finally:
        await engine.unload()


async def test_bad_options(demo_gguf: Path) -> None:
    with pytest.raises(InvalidRequest, match="instances"):
        await LlamaCppEngine("demo", demo_gguf, {"instances": 0}).load()
