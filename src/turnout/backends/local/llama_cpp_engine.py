"""The llama.cpp engine: a GGUF file in process through llama-cpp-python (extra ``llama``).

One llama.cpp context serves one sequence at a time, so a model is loaded as ``instances``
contexts (option, default 1) and requests queue for a free one, first come first served;
``stats()`` shows the requests generating (``active``) and waiting (``queued``). Every
instance maps the same file: f32/f16/quantized weights that llama.cpp uses in place are shared
through the page cache; ``memory_bytes`` reports the file size once.

Each request runs in a thread of the engine's own executor (one thread per instance, so the
default executor is never starved) and streams its text back to the event loop with
``loop.call_soon_threadsafe``; llama.cpp releases the GIL while it computes. The chat template
comes from the GGUF file (``tokenizer.chat_template``) and is rendered with Jinja2 in a
sandbox, as Hugging Face does; the prompt is tokenized with special tokens parsed and no BOS
added (the template writes it). A context keeps its previous request's tokens and reuses the
longest common prefix (multi-turn chats skip most of the prefill).

Per request: ``max_tokens`` / ``max_completion_tokens`` (default 256, capped by the room left
in the context, which ends with ``length``), ``temperature`` (0: greedy), ``top_p`` (applied
after the temperature, as OpenAI and Hugging Face do), ``stop`` (a string or a list; the text
ends before the first one), ``seed`` (same seed, same text) and ``logit_bias`` (-100 bans a
token). ``n`` other than 1 is not supported. Usage counts the prompt tokens and the generated
tokens; the end-of-generation token is not counted (as in the transformers engine).

Cancellation (the consuming task cancelled, or the stream closed), unloading and the request
deadline set a ``threading.Event`` that the thread checks before every next token (and between
prompt batches of ``n_batch`` tokens); the instance goes back to the pool as soon as the
thread has stopped, one token later at most.

Options: ``instances`` (default 1), ``n_ctx`` (context per instance; default 4096, or the
model's training context when that is shorter; llama.cpp rounds it up to a multiple of 256),
``n_threads`` / ``n_threads_batch`` (llama.cpp's defaults otherwise: half the cores),
``n_batch``, ``embedding`` (``true``: one more context serves ``/v1/embeddings``, mean pooled
and normalised).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import datetime
import importlib.util
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.backends.base import BackendRequest, Chunk, RequestContext, Result
from turnout.backends.local.chunks import (
    ChunkBuilder,
    encode_embedding,
    held_back,
    room_for_output,
    short_error,
    stop_position,
)
from turnout.backends.local.engine import Engine, EngineStats
from turnout.backends.local.files import read_weights
from turnout.backends.local.progress import LoadProgress
from turnout.exceptions import (
    InvalidRequest,
    NotSupported,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["GGUF_MAGIC", "LlamaCppEngine", "check_gguf"]

log = logging.getLogger("turnout.engine.llama_cpp")

GGUF_MAGIC = b"GGUF"
_DEFAULT_MAX_TOKENS = 256
_DEFAULT_N_CTX = 4096
# llama-cpp-python silences llama.cpp while loading by pointing the process' stdout/stderr
# at /dev/null; two loads at once could leave them there. One load at a time.
_LOAD_LOCK = threading.Lock()
# Events from a generation thread to the event loop
_TEXT, _DONE, _ERROR = "text", "done", "error"


def check_gguf(path: Path) -> Path:
    """The GGUF file at ``path`` (or the only ``*.gguf`` in the directory ``path``), after a
    look at its header; InvalidRequest with the reason otherwise."""
    if not path.exists():
        raise InvalidRequest(f"No model at {path.name!r}: the path does not exist.", param="path")
    if path.is_dir():
        files = sorted(path.glob("*.gguf"))
        if len(files) != 1:
            found = "no .gguf file" if not files else f"{len(files)} .gguf files"
            raise InvalidRequest(
                f"{path.name!r} is a directory with {found}; the llama.cpp engine loads one "
                "GGUF file (name the file).",
                param="path",
            )
        path = files[0]
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise InvalidRequest(f"Cannot read {path.name!r}: {exc.strerror}.", param="path") from None
    if head[:4] != GGUF_MAGIC:
        raise InvalidRequest(
            f"{path.name!r} is not a GGUF file (it does not start with 'GGUF'); the llama.cpp "
            "engine loads GGUF files only. Hugging Face directories go to the transformers "
            "engine.",
            param="path",
        )
    if len(head) < 24:
        raise InvalidRequest(f"{path.name!r} is truncated: no complete GGUF header.", param="path")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (2, 3):
        raise InvalidRequest(
            f"{path.name!r} is GGUF version {version}; llama.cpp reads versions 2 and 3.",
            param="path",
        )
    return path


@dataclass(slots=True)
class _Params:
    messages: list[Any]
    tools: Any
    max_tokens: int | None
    temperature: float
    top_p: float
    stops: list[str]
    seed: int | None
    logit_bias: dict[int, float]


@dataclass(eq=False, slots=True)
class _Instance:
    """One llama.cpp context (a ``llama_cpp.Llama``)."""

    index: int
    llama: Any


@dataclass(eq=False, slots=True)
class _Job:
    """One request's generation, shared by the event loop and its thread."""

    prompt: list[int]
    max_tokens: int
    params: _Params
    deadline: float  # time.monotonic()
    emit: Callable[[tuple[Any, ...]], None]
    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = "cancelled"

    def cancel(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()


class LlamaCppEngine(Engine):
    kind = "llama_cpp"

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
        self.file: Path = path
        self.n_ctx = 0
        self._n_vocab = 0
        self._instances: list[_Instance] = []
        self._free: list[_Instance] = []
        self._waiters: deque[asyncio.Future[_Instance]] = deque()
        self._jobs: dict[_Job, asyncio.Future[None]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._template: Any = None
        self._bos = ""
        self._eos = ""
        self._memory = 0
        self._embedder: Any = None
        self._embed_lock = threading.Lock()
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------

    def check(self) -> None:
        if self.quantization != "none":
            raise InvalidRequest(
                "A GGUF file carries its own quantization: leave quantization at none and pick "
                "a quantized file (for example hf:ORG/NAME:Q4_K_M).",
                param="quantization",
            )
        self.file = check_gguf(self.path)
        _int_option(self.options, "instances", 1, minimum=1)
        if importlib.util.find_spec("llama_cpp") is None:
            raise InvalidRequest(
                "The llama.cpp engine needs llama-cpp-python: pip install 'turnout[llama]'.",
                param="engine",
            )

    async def load(self) -> None:
        await asyncio.to_thread(self.check)
        count = _int_option(self.options, "instances", 1, minimum=1)
        await asyncio.to_thread(read_weights, [self.file], self.progress)
        self.progress.begin("building", total=count)
        instances: list[_Instance] = []
        try:
            for index in range(count):
                llama = await asyncio.to_thread(self._open, embedding=False)
                instances.append(_Instance(index, llama))
                self.progress.advance(1)
            if self.options.get("embedding"):
                self._embedder = await asyncio.to_thread(self._open, embedding=True)
            self._template = _compile_template(instances[0].llama)
        except BaseException:
            for instance in instances:
                instance.llama.close()
            if self._embedder is not None:
                self._embedder.close()
                self._embedder = None
            raise
        first = instances[0].llama
        self.n_ctx = int(first.n_ctx())
        self._n_vocab = int(first.n_vocab())
        self._bos = _token_text(first, first.token_bos())
        self._eos = _token_text(first, first.token_eos())
        self._instances = instances
        self._free = list(reversed(instances))
        self._memory = self.file.stat().st_size
        self._executor = ThreadPoolExecutor(
            max_workers=count, thread_name_prefix=f"turnout-llama-{self.name}"
        )
        self._closing = False

    def _open(self, *, embedding: bool) -> Any:
        import llama_cpp

        kwargs: dict[str, Any] = {
            "n_ctx": _int_option(self.options, "n_ctx", _DEFAULT_N_CTX, minimum=16),
            "verbose": False,
        }
        for key in ("n_threads", "n_threads_batch", "n_batch"):
            if self.options.get(key) is not None:
                kwargs[key] = _int_option(self.options, key, 1, minimum=1)
        if embedding:
            kwargs.update(embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        try:
            with _LOAD_LOCK:
                llama = llama_cpp.Llama(str(self.file), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise InvalidRequest(
                f"llama.cpp cannot load {self.file.name!r} (corrupt, truncated or an "
                f"unsupported architecture): {exc}",
                param="path",
            ) from None
        train = int(llama._model.n_ctx_train())
        if "n_ctx" not in self.options and 0 < train < llama.n_ctx():
            llama.close()  # no use in a context longer than the model was trained for
            kwargs["n_ctx"] = train
            with _LOAD_LOCK:
                llama = llama_cpp.Llama(str(self.file), **kwargs)
        return llama

    async def unload(self) -> None:
        """Running requests stop at their next token and fail with UpstreamUnavailable;
        waiting ones fail at once; then the contexts are freed."""
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    UpstreamUnavailable(f"Local model {self.name!r} was unloaded.")
                )
        for job in list(self._jobs):
            job.cancel("unloaded")
        running = list(self._jobs.values())
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        instances, self._instances, self._free = self._instances, [], []
        embedder, self._embedder = self._embedder, None
        for instance in instances:
            await asyncio.to_thread(instance.llama.close)
        if embedder is not None:

            def close_embedder() -> None:
                with self._embed_lock:
                    embedder.close()

            await asyncio.to_thread(close_embedder)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def stats(self) -> EngineStats:
        return EngineStats(
            active=len(self._instances) - len(self._free) if self._instances else 0,
            queued=sum(1 for w in self._waiters if not w.done()),
            memory_bytes=self._memory,
            extra={
                "instances": len(self._instances),
                "context_length": self.n_ctx,
                "file": self.file.name,
            },
        )

    # -- the instance pool ------------------------------------------------------------------

    async def _acquire(self, ctx: RequestContext) -> _Instance:
        if self._closing or self._executor is None:
            raise UpstreamUnavailable(f"Local model {self.name!r} is not loaded.")
        if self._free and not self._waiters:
            return self._free.pop()
        waiter: asyncio.Future[_Instance] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(ctx.deadline):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over just as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(
                    f"The request waited for a free instance of {self.name!r} until its deadline."
                ) from None
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _release(self, instance: _Instance) -> None:
        if instance not in self._instances:
            return  # unloaded meanwhile
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(instance)
                return
        self._free.append(instance)

    # -- generation -------------------------------------------------------------------------

    async def stream_chat(
        self, request: BackendRequest, ctx: RequestContext
    ) -> AsyncIterator[Chunk]:
        if not self._instances or self._closing:
            raise UpstreamUnavailable(f"Local model {self.name!r} is not loaded.")
        params = _parse(request.body)
        if any(token >= self._n_vocab for token in params.logit_bias):
            raise InvalidRequest(
                f"'logit_bias' names a token id beyond the vocabulary of {self.name!r} "
                f"({self._n_vocab} tokens).",
                param="logit_bias",
            )
        prompt = self._prompt(params)
        room = room_for_output(self.name, len(prompt), self.n_ctx)
        limit = params.max_tokens or _DEFAULT_MAX_TOKENS
        builder = ChunkBuilder(str(request.body.get("model", self.name)))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def emit(item: tuple[Any, ...]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        job = _Job(
            prompt=prompt,
            max_tokens=min(limit, room),
            params=params,
            deadline=time.monotonic() + ctx.remaining(),
            emit=emit,
        )
        instance = await self._acquire(ctx)
        try:
            assert self._executor is not None
            future = loop.run_in_executor(self._executor, self._generate, instance, job)
        except BaseException:
            self._release(instance)
            raise
        self._jobs[job] = future
        released = False

        def release(_: object = None) -> None:
            # the thread's last act is its final event, so the instance is free once that
            # event arrives; when the consumer is gone, once the thread has returned
            nonlocal released
            if not released:
                released = True
                self._jobs.pop(job, None)
                self._release(instance)

        future.add_done_callback(release)
        try:
            yield builder.role()
            while True:
                event = await queue.get()
                kind = event[0]
                if kind in (_DONE, _ERROR):
                    release()
                if kind == _TEXT:
                    yield builder.content(event[1])
                elif kind == _DONE:
                    _, reason, completion = event
                    if reason == "timeout":
                        raise UpstreamTimeout(
                            f"Local model {self.name!r} passed the request deadline."
                        )
                    if reason == "unloaded":
                        raise UpstreamUnavailable(
                            f"Local model {self.name!r} was unloaded during the request."
                        )
                    yield builder.finish(reason)
                    yield builder.usage(len(prompt), completion)
                    return
                elif kind == _ERROR:
                    raise UpstreamError(
                        f"Local model {self.name!r} failed: {short_error(event[1])}"
                    ) from event[1]
        finally:
            job.cancel("cancelled")  # no-op when the thread has finished

    def _prompt(self, params: _Params) -> list[int]:
        """The chat template applied and tokenized (special tokens parsed, no extra BOS:
        the template writes it)."""
        variables: dict[str, Any] = {
            "messages": params.messages,
            "add_generation_prompt": True,
            "bos_token": self._bos,
            "eos_token": self._eos,
        }
        if params.tools:
            variables["tools"] = params.tools
        try:
            text = self._template.render(**variables)
        except Exception as exc:  # jinja errors, raise_exception(), odd message shapes
            raise InvalidRequest(
                f"Cannot apply the chat template: {short_error(exc)}", param="messages"
            ) from None
        llama = self._instances[0].llama
        tokens: list[int] = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def _generate(self, instance: _Instance, job: _Job) -> None:
        """In the executor thread: evaluate the prompt (reusing the longest prefix already in
        the context's KV cache), then sample until EOS, a stop sequence, the token limit, the
        deadline or the stop event, emitting text as it becomes final."""
        try:
            if job.stop.is_set():
                job.emit((_DONE, job.reason, 0))
                return
            reason, produced = self._decode(instance.llama, job)
            job.emit((_DONE, reason, produced))
        except Exception as exc:
            log.exception("llama.cpp generation failed in %s", self.name)
            job.emit((_ERROR, exc))

    def _decode(self, llama: Any, job: _Job) -> tuple[str, int]:
        import llama_cpp
        from llama_cpp import _internals

        params = job.params
        sampler = _internals.LlamaSampler()
        try:
            if params.logit_bias:
                sampler.add_logit_bias(llama.n_vocab(), params.logit_bias)
            if params.temperature == 0:
                sampler.add_greedy()
            else:
                seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed
                sampler.add_temp(params.temperature)
                sampler.add_top_p(params.top_p, 1)
                sampler.add_dist(seed)
            if not self._prefill(llama, job):
                return job.reason, 0
            vocab = llama._model.vocab
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            stops = params.stops
            pending = ""
            produced = 0
            reason = "length"
            while produced < job.max_tokens:
                token = sampler.sample(llama._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                produced += 1
                pending += decoder.decode(llama.detokenize([token]))
                if stops:
                    cut = stop_position(pending, stops)
                    if cut >= 0:
                        pending = pending[:cut]
                        reason = "stop"
                        break
                    hold = len(pending) - held_back(pending, stops)
                    ready, pending = pending[:hold], pending[hold:]
                else:
                    ready, pending = pending, ""
                if ready:
                    job.emit((_TEXT, ready))
                if produced >= job.max_tokens:
                    break
                if job.stop.is_set():
                    return job.reason, produced
                if time.monotonic() >= job.deadline:
                    return "timeout", produced
                llama.eval([token])
        finally:
            sampler.close()
        pending += decoder.decode(b"", final=True)
        if pending:
            job.emit((_TEXT, pending))
        return reason, produced

    def _prefill(self, llama: Any, job: _Job) -> bool:
        """Evaluate the prompt batch by batch (the stop event and the deadline are checked
        between batches); the part already in the KV cache from the previous request on this
        context is kept. False when stopped."""
        prompt = job.prompt
        cached = llama.input_ids[: llama.n_tokens].tolist()
        keep = 0
        for a, b in zip(cached, prompt[:-1], strict=False):  # at least one token to evaluate
            if a != b:
                break
            keep += 1
        if not llama._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        llama.n_tokens = keep
        step = max(1, int(llama.n_batch))
        for start in range(keep, len(prompt), step):
            if job.stop.is_set():
                return False
            if time.monotonic() >= job.deadline:
                job.reason = "timeout"
                return False
            llama.eval(prompt[start : start + step])
        return True

    # -- embeddings -------------------------------------------------------------------------

    async def embed(self, request: BackendRequest, ctx: RequestContext) -> Result:
        if self._embedder is None:
            raise NotSupported(
                f"Local model {self.name!r} does not serve embeddings (set the option "
                "embedding: true to load an embedding context)."
            )
        body = request.body
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(i, str) for i in inputs)
        ):
            raise InvalidRequest(
                "'input' must be a non-empty string or list of strings for this model.",
                param="input",
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidRequest(
                "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
            )
        dimensions = body.get("dimensions")
        embedder = self._embedder
        if dimensions is not None and dimensions != embedder.n_embd():
            raise InvalidRequest(
                f"{self.name!r} makes {embedder.n_embd()}-dimensional embeddings; "
                "'dimensions' cannot change that.",
                param="dimensions",
            )

        def run() -> tuple[list[list[float]], int]:
            with self._embed_lock:  # one embedding context: one batch at a time
                result: tuple[list[list[float]], int] = embedder.embed(
                    inputs, normalize=True, truncate=True, return_count=True
                )
                return result

        async with asyncio.timeout_at(ctx.deadline):
            vectors, count = await asyncio.to_thread(run)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode_embedding(v, encoding == "base64"),
            }
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": int(count), "total_tokens": int(count)}
        return Result(
            data={
                "object": "list",
                "data": data,
                "model": body.get("model", self.name),
                "usage": usage,
            }
        )


# -- helpers ----------------------------------------------------------------------------------


def _parse(body: dict[str, Any]) -> _Params:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list.", param="messages")
    n = body.get("n")
    if n not in (None, 1):
        raise NotSupported("The llama.cpp engine generates one choice per request ('n': 1).")
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidRequest("'max_tokens' must be a positive integer.", param="max_tokens")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if not all(isinstance(s, str) for s in stops):
        raise InvalidRequest("'stop' must be a string or a list of strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidRequest("'seed' must be an integer.", param="seed")
    return _Params(
        messages=messages,
        tools=body.get("tools"),
        max_tokens=limit,
        temperature=temperature,
        top_p=top_p,
        stops=[s for s in stops if s],
        # llama.cpp takes 32-bit seeds, 0xFFFFFFFF meaning "random"
        seed=None if seed is None else seed % 0xFFFFFFFF,
        logit_bias=_logit_bias(body.get("logit_bias")),
    )


def _logit_bias(raw: Any) -> dict[int, float]:
    """OpenAI's ``logit_bias`` (token id -> bias from -100 to 100; -100 bans the token)."""
    if raw is None:
        return {}
    error = InvalidRequest(
        "'logit_bias' must map token ids to numbers from -100 to 100.", param="logit_bias"
    )
    if not isinstance(raw, dict):
        raise error
    bias: dict[int, float] = {}
    for key, value in raw.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise error from None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise error
        if not -100 <= value <= 100 or token < 0:
            raise error
        bias[token] = float("-inf") if value <= -100 else float(value)
    return bias


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be a number from {low} to {high}.", param=key)
    return float(value)


def _int_option(options: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRequest(
            f"The llama.cpp option {key!r} must be an integer of at least {minimum}.",
            param=f"options.{key}",
        )
    return value


def _compile_template(llama: Any) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = llama.metadata.get("tokenizer.chat_template")
    if not source:
        raise InvalidRequest(
            f"The GGUF file has no chat template (tokenizer.chat_template); {llama.model_path!r} "
            "cannot serve chat.",
            param="path",
        )

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    def strftime_now(fmt: str) -> str:
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(source)
    except Exception as exc:
        raise InvalidRequest(
            f"The GGUF file's chat template does not compile: {short_error(exc)}", param="path"
        ) from None


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llama._model.token_get_text(token))
