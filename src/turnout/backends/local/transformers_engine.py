"""The transformers engine: a Hugging Face model directory (safetensors only) in process,
served with transformers' own continuous batching (``init_continuous_batching``, paged
attention): many concurrent requests share every forward pass, on CPU or GPU.

Per request it honours ``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``top_p``
and ``stop``. Where continuous batching cannot do what a request asks, the request falls back
to the sequential path (one request at a time, its own decode loop):

- ``seed``: the batch shares one random generator, so seeded requests run sequentially with
  their own ``torch.Generator`` (same seed, same text);
- ``temperature: 0`` (greedy) is served in the batch as a very low temperature
  (argmax for any practical purpose), not as a fallback.

Cancellation (client gone) cancels the request inside the batch at once.

Where turnout changes transformers' batching (same tokens and distributions, less CPU work;
docs/benchmarks.md has the numbers): sampling by inverse CDF instead of ``torch.multinomial``
and top-p only on the rows that ask for it (:mod:`~turnout.backends.local.cb_sampling`);
on the CPU, attention per request instead of one masked SDPA over the whole batch, for
models whose layers are all full attention
(:mod:`~turnout.backends.local.paged_attention`); and torch's threads set to the cores
minus one (``options.threads``).

Loading: the files are checked first (:meth:`TransformersEngine.check`: safe files, a causal
LM architecture transformers knows, a quantization and dtype this machine can do), the
weights are read through once (progress in bytes), the model is built on ``options.device``
(``cpu``, the default; ``cuda``/``cuda:N``) in ``options.dtype`` (``auto``: the checkpoint's
bfloat16 where the CPU computes it natively, else float32; on a GPU the checkpoint's dtype),
quantized as configured (both in :mod:`turnout.backends.local.quantization`) and warmed up
with one generated token.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.backends.base import BackendRequest, Chunk, RequestContext, Result, Usage
from turnout.backends.local import cb_sampling, paged_attention
from turnout.backends.local.architecture import check_causal_lm, check_loaded_weights
from turnout.backends.local.chunks import (
    ChunkBuilder,
    encode_embedding,
    held_back,
    room_for_output,
    short_error,
    stop_position,
)
from turnout.backends.local.engine import Engine, EngineStats
from turnout.backends.local.files import check_model_dir, read_weights
from turnout.backends.local.progress import LoadProgress
from turnout.backends.local.quantization import (
    check_quantization,
    checkpoint_dtype,
    load_arguments,
    model_dtype,
    quantize,
    weight_bytes,
)
from turnout.exceptions import InvalidRequest, UpstreamError, UpstreamUnavailable

__all__ = ["TransformersEngine"]

log = logging.getLogger("turnout.engine.transformers")

_GREEDY_TEMPERATURE = 1e-4
_DEFAULT_MAX_TOKENS = 256
_ids = itertools.count(1)


@dataclass(slots=True)
class _Params:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    stops: list[str]
    seed: int | None


class TransformersEngine(Engine):
    kind = "transformers"

    def __init__(
        self,
        name: str,
        path: Path,
        options: dict[str, Any] | None = None,
        *,
        quantization: str = "none",
        progress: LoadProgress | None = None,
    ) -> None:
        super().__init__(name, path, options, quantization=quantization, progress=progress)
        self.device = str(self.options.get("device", "cpu"))
        self.dtype = "auto"  # options.dtype as resolved by check(); the model's after load
        self.model: Any = None
        self.tokenizer: Any = None
        self.manager: Any = None
        self.context_length = 0
        self._active = 0
        self._sequential = threading.Lock()
        self._sequential_waiting = 0
        self._embedding_lock = threading.Lock()
        self._memory = 0

    # -- lifecycle --------------------------------------------------------------------------

    def check(self) -> None:
        check_model_dir(self.path, kind="safetensors")
        check_causal_lm(self.path)
        check_quantization(self.quantization, self.device)
        self.dtype = model_dtype(
            self.options.get("dtype"), self.device, self.quantization, checkpoint_dtype(self.path)
        )

    async def load(self) -> None:
        await asyncio.to_thread(self.check)
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        _set_threads(self.options.get("threads"), self.device)
        read_weights(sorted(self.path.glob("*.safetensors")), self.progress)
        self.progress.begin("building")
        self.tokenizer, self.model = self._from_pretrained()
        if self.tokenizer.chat_template is None:
            raise InvalidRequest(
                f"The model in {self.path.name!r} has no chat template; add one to its "
                "tokenizer_config.json or chat_template.jinja.",
                param="path",
            )
        self.model = quantize(self.model, self.quantization, self.device)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        self._memory = weight_bytes(self.model)
        self.manager = self._start_batching()
        self.progress.begin("warmup")
        self._warm_up()
        cb_sampling.install_sampler(self.manager)  # the batch's runner exists after a request

    def _from_pretrained(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                self.path,
                local_files_only=True,
                use_safetensors=True,
                output_loading_info=True,
                **load_arguments(self.quantization, self.device, self.dtype),
            )
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
            raise InvalidRequest(
                f"Cannot load {self.path.name!r} with transformers: {short_error(exc)}",
                param="path",
            ) from None
        model, info = loaded
        check_loaded_weights(self.path, info)
        return tokenizer, model

    def _start_batching(self) -> Any:
        from transformers import ContinuousBatchingConfig, GenerationConfig

        generation = GenerationConfig(  # type: ignore[no-untyped-call]
            do_sample=True,
            temperature=0.7,  # not 1.0: otherwise no per-request temperature processor exists
            top_p=0.9,
            max_new_tokens=_DEFAULT_MAX_TOKENS,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        batching = ContinuousBatchingConfig(
            per_request_processors=True,
            num_blocks=int(self.options.get("num_blocks", 64)),
            max_batch_tokens=int(self.options.get("max_batch_tokens", 2048)),
            max_queue_size=0,
        )
        manager = self.model.init_continuous_batching(
            generation_config=generation, continuous_batching_config=batching
        )
        cb_sampling.install_processors(manager)
        if self.device == "cpu" and not paged_attention.use_for(self.model):
            log.info("%s: continuous batching keeps transformers' SDPA attention", self.name)
        manager.start()
        return manager

    def _warm_up(self) -> None:
        """One token through the batch before the model takes requests: the first forward
        pass pays for lazy initialisation, and a model that cannot generate fails here."""
        ids = self.tokenizer("Hello", add_special_tokens=True)["input_ids"] or [0]
        rid = f"warmup-{next(_ids)}"
        self.manager.add_request(input_ids=ids, request_id=rid, max_new_tokens=1, streaming=False)
        while self.manager.is_running():
            output = self.manager.get_result(request_id=rid, timeout=0.5)
            if output is None:
                continue
            if output.error:
                self.manager.stop(True)
                raise InvalidRequest(
                    f"{self.path.name!r} loaded but cannot generate: {output.error}", param="path"
                )
            return
        raise InvalidRequest(f"{self.path.name!r}: the batch stopped during warm-up.", param="path")

    async def unload(self) -> None:
        manager, self.manager = self.manager, None
        if manager is not None:
            await asyncio.to_thread(manager.stop, True)
        self.model = None
        self.tokenizer = None

    async def embed(self, request: BackendRequest, ctx: RequestContext) -> Result:
        """Mean-pooled, L2-normalised last hidden states, in OpenAI's embedding format."""
        if self.model is None:
            raise UpstreamUnavailable(f"Local model {self.name!r} is not loaded.")
        body = request.body
        batches = self._embedding_inputs(body.get("input"))
        hidden = int(self.model.config.hidden_size)
        dims = body.get("dimensions") or hidden
        if dims > hidden:
            raise InvalidRequest(
                f"{self.name!r} makes {hidden}-dimensional embeddings; ask for at most that.",
                param="dimensions",
            )
        self._active += 1
        try:
            vectors = await asyncio.to_thread(self._embed, batches, dims)
        finally:
            self._active -= 1
        tokens = sum(len(ids) for ids in batches)
        base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v, base64)}
            for i, v in enumerate(vectors)
        ]
        return Result(
            data={
                "object": "list",
                "data": data,
                "model": str(body.get("model", self.name)),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            usage=Usage(tokens, 0),
        )

    def _embedding_inputs(self, raw: Any) -> list[list[int]]:
        items = raw if isinstance(raw, list) else [raw]
        if items and all(isinstance(t, int) for t in items):
            items = [items]  # one input given as token ids
        out = []
        for item in items:
            ids = (
                self.tokenizer(item, add_special_tokens=True)["input_ids"]
                if isinstance(item, str)
                else [int(t) for t in item]
            )
            if not ids or len(ids) > self.context_length:
                raise InvalidRequest(
                    f"Each input must have 1 to {self.context_length} tokens.", param="input"
                )
            out.append(ids)
        return out

    def _embed(self, batches: list[list[int]], dims: int) -> list[list[float]]:
        import torch

        pad = self.tokenizer.pad_token_id or 0
        width = max(len(ids) for ids in batches)
        device = self.model.device
        ids = torch.tensor([b + [pad] * (width - len(b)) for b in batches], device=device)
        mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batches], device=device)
        with self._embedding_lock, torch.no_grad():
            states = self.model.get_decoder()(input_ids=ids, attention_mask=mask)
        weights = mask.unsqueeze(-1).to(states.last_hidden_state.dtype)
        pooled = (states.last_hidden_state * weights).sum(1) / weights.sum(1)
        pooled = torch.nn.functional.normalize(pooled[:, :dims].float().cpu(), dim=-1)
        return [[float(x) for x in row] for row in pooled.tolist()]

    def stats(self) -> EngineStats:
        return EngineStats(
            active=self._active,
            queued=self._sequential_waiting,
            memory_bytes=self._memory,
            extra={
                "context_length": self.context_length,
                "batching": "continuous",
                "device": self.device,
                "dtype": self.dtype,
                "quantization": self.quantization,
            },
        )

    # -- generation -------------------------------------------------------------------------

    async def stream_chat(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        if self.manager is None:
            raise UpstreamUnavailable(f"Local model {self.name!r} is not loaded.")
        params = self._params(request.body)
        builder = ChunkBuilder(str(request.body.get("model", self.name)))
        self._active += 1
        try:
            yield builder.role()
            tokens = (
                self._sequential_tokens(params)
                if params.seed is not None
                else self._batched_tokens(params, ctx)
            )
            async for chunk in self._decode(tokens, params, builder):
                yield chunk
        finally:
            self._active -= 1

    def _params(self, body: dict[str, Any]) -> _Params:
        messages = body.get("messages") or []
        try:
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True
            )
        except Exception as exc:  # jinja errors, odd message shapes
            raise InvalidRequest(f"Cannot apply the chat template: {short_error(exc)}") from None
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        prompt = [int(t) for t in ids]
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or _DEFAULT_MAX_TOKENS
        room = room_for_output(self.name, len(prompt), self.context_length)
        stop = body.get("stop") or []
        temperature = body.get("temperature")
        return _Params(
            prompt_ids=prompt,
            max_tokens=min(int(limit), room),
            temperature=1.0 if temperature is None else float(temperature),
            top_p=float(body.get("top_p") or 1.0),
            stops=[stop] if isinstance(stop, str) else list(stop),
            seed=body.get("seed"),
        )

    async def _batched_tokens(
        self, params: _Params, ctx: RequestContext
    ) -> AsyncIterator[list[int]]:
        """New tokens of one request generated in the shared batch, as they come (all
        that arrived since the last wake-up, together)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        rid = f"{ctx.request_id}-{next(_ids)}"
        manager = self.manager
        manager.register_result_handler(rid, queue.put_nowait)
        manager.add_request(
            input_ids=params.prompt_ids,
            request_id=rid,
            max_new_tokens=params.max_tokens,
            streaming=True,
            temperature=max(params.temperature, _GREEDY_TEMPERATURE),
            top_p=params.top_p,
        )
        sent = 0
        finished = False
        try:
            while not finished:
                output = await queue.get()
                while not queue.empty():  # outputs are cumulative: the latest says it all
                    output = queue.get_nowait()
                if output.error:
                    raise UpstreamError(f"Local model {self.name!r} failed: {output.error}")
                finished = output.is_finished()
                tokens = output.generated_tokens
                if len(tokens) > sent:
                    yield [int(t) for t in tokens[sent:]]
                sent = len(tokens)
        finally:
            if not finished:
                manager.cancel_request(rid)  # frees the request's blocks in the batch

    async def _sequential_tokens(self, params: _Params) -> AsyncIterator[list[int]]:
        """Tokens from the sequential path (own decode loop, own generator), one request at
        a time; generation runs in a thread and stops when the consumer goes away."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                with self._sequential:
                    for token in self._decode_loop(params, stop):
                        loop.call_soon_threadsafe(queue.put_nowait, token)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        self._sequential_waiting += 1
        thread = threading.Thread(target=run, name=f"turnout-seq-{self.name}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise UpstreamError(f"Local model {self.name!r} failed: {short_error(item)}")
                yield [item]
        finally:
            stop.set()
            self._sequential_waiting -= 1

    def _decode_loop(self, params: _Params, stop: threading.Event) -> Iterator[int]:
        """Plain autoregressive sampling with a KV cache (the sequential path)."""
        import torch

        generator = torch.Generator().manual_seed(int(params.seed or 0))
        eos = self.tokenizer.eos_token_id
        device = self.model.device
        ids = torch.tensor([params.prompt_ids], device=device)
        past = None
        with torch.no_grad():
            for _ in range(params.max_tokens):
                if stop.is_set():
                    return
                out = self.model(input_ids=ids, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = _sample(out.logits[0, -1].float().cpu(), params, generator)
                if token == eos:
                    return
                yield token
                ids = torch.tensor([[token]], device=device)

    async def _decode(
        self, batches: AsyncIterator[list[int]], params: _Params, builder: ChunkBuilder
    ) -> AsyncIterator[Chunk]:
        """Token ids to text deltas, one chunk per batch of tokens. Text that may be the
        start of a stop sequence is held back until it is known not to be; a stop sequence
        ends the response without being sent."""
        detok = _Detokenizer(self.tokenizer)
        count = 0
        text = ""
        sent = 0
        reason = "length"
        try:
            async for batch in batches:
                count += len(batch)
                text += detok.add(batch)
                cut = stop_position(text, params.stops)
                if cut >= 0:
                    if cut > sent:
                        yield builder.content(text[sent:cut])
                    reason = "stop"
                    break
                safe = len(text) - held_back(text, params.stops)
                if safe > sent:
                    yield builder.content(text[sent:safe])
                    sent = safe
            else:
                if len(text) > sent:
                    yield builder.content(text[sent:])
                if count < params.max_tokens:
                    reason = "stop"  # the model ended it (end-of-sequence token)
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()
        yield builder.finish(reason)
        yield builder.usage(len(params.prompt_ids), count)


class _Detokenizer:
    """Incremental detokenisation: each call decodes a short window, not the whole text, and
    holds back bytes that do not make a whole character yet."""

    __slots__ = ("ids", "prefix", "read", "tokenizer")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def add(self, tokens: list[int]) -> str:
        self.ids.extend(tokens)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return str(after[len(before) :])
        return ""


def _set_threads(option: Any, device: str) -> None:
    """Torch's intra-op threads for the CPU (process-wide): ``options.threads``, else
    ``OMP_NUM_THREADS`` if set, else one fewer than the machine's cores, leaving one to the
    gateway's event loop. With every core in a torch op, each small op of a decode step
    waits for the thread that lost its core to the event loop (on 2 cores, 1 thread gave
    3x the batch's throughput of 2 under the gateway's own load; docs/benchmarks.md)."""
    import torch

    if option is not None:
        threads = int(option)
        if threads < 1:
            raise InvalidRequest("options.threads must be at least 1.", param="options.threads")
    elif device != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return
    else:
        threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)


def _sample(logits: Any, params: _Params, generator: Any) -> int:
    import torch

    if params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))
