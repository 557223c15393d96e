"""The demo model: a tiny Llama-architecture model that turnout generates itself.

Deterministic (same bytes every time for the same version), made in about a second, no
download: a byte-level BPE tokenizer trained on a built-in text, a Llama-3 style chat template,
and randomly initialised weights from a fixed seed, saved as safetensors. It runs on any
machine and **writes nonsense**: it exists so that local inference, batching, streaming and
the whole gateway can be exercised anywhere. Everything that shows it labels it a demo.

Needs the ``transformers`` extra (torch, transformers, safetensors, tokenizers).
"""

# ruff: noqa: S106  (bos_token= and friends are token strings, not passwords)
from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEMO_NOTICE", "DemoShape", "ensure_demo_model", "generate_demo_model", "is_demo_model"]

DEMO_NOTICE = "turnout demo model: random weights, it writes nonsense"
_SEED = 20261122
_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
# Llama 3 style: a header per message, <|eot_id|> closes it; generation prompt opens the
# assistant's header.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
_CORPUS = """
A railway turnout switches a train from one track to another. This gateway switches every
request between the tracks a team runs on: hosted APIs and its own local models.
Hello! How can I help you today? Sure, here is a short answer. Thank you for asking.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
def main():\n    print("hello, world")\n    return 0\n
Large language models predict the next token. Latency, throughput and cost decide where
they should run. Privacy matters: sensitive data stays on the premises.
你好，世界。今天天气很好。我们在本地运行模型。
1 2 3 4 5 6 7 8 9 10 100 1000 0.5 3.14 2026-11-22
"""


@dataclass(frozen=True, slots=True)
class DemoShape:
    """The model's size and the dtype of its weights. The default is tiny (fast anywhere),
    in float32; ``bench`` is the realistic shape (~56M parameters) used to measure engines,
    where weight values do not matter, in bfloat16 like released checkpoints."""

    hidden_size: int = 64
    intermediate_size: int = 176
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int = 512
    max_position_embeddings: int = 4096
    dtype: str = "float32"

    @classmethod
    def bench(cls) -> DemoShape:
        return cls(
            hidden_size=512,
            intermediate_size=1408,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=4,
            vocab_size=32000,
            dtype="bfloat16",
        )


def generate_demo_model(directory: str | Path, shape: DemoShape | None = None) -> Path:
    """Write the demo model (config, tokenizer, chat template, safetensors) to ``directory``
    and return it. Same inputs, same files."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    shape = shape or DemoShape()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=_train_tokenizer(shape.vocab_size),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=shape.max_position_embeddings,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    )
    torch.manual_seed(_SEED)
    with torch.no_grad():
        model = LlamaForCausalLM(config)
        model.generation_config.do_sample = True
        model.generation_config.temperature = 1.0
        model.generation_config.top_p = 1.0
        model = model.to(getattr(torch, shape.dtype))
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _write_json(out / "turnout_demo.json", {"notice": DEMO_NOTICE, "seed": _SEED})
    if gguf_available():
        from turnout.backends.local.gguf_export import export_gguf

        export_gguf(out, out / GGUF_FILE)
    return out


#: the GGUF form of the demo model, next to the safetensors (needs the ``gguf`` package)
GGUF_FILE = "model.gguf"


def gguf_available() -> bool:
    return importlib.util.find_spec("gguf") is not None


def _train_tokenizer(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()] * 8
    if vocab_size > 1024:
        lines += _pseudo_words(vocab_size)
    tokenizer.train_from_iterator(lines, trainer)
    return tokenizer


def _pseudo_words(vocab_size: int) -> list[str]:
    """A seeded corpus of made-up words, big enough for BPE to learn ``vocab_size`` tokens
    (the built-in text alone stops at a few hundred)."""
    rng = random.Random(_SEED)  # noqa: S311 - reproducible made-up words, not secrets
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "sh", "ng"]
    lines = max(2000, vocab_size // 2)
    return [
        " ".join("".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(20))
        for _ in range(lines)
    ]


def is_demo_model(directory: str | Path) -> bool:
    return (Path(directory) / "turnout_demo.json").is_file()


def ensure_demo_model(directory: str | Path) -> Path:
    """The demo model in ``directory``, generated there first if it is missing."""
    path = Path(directory)
    complete = is_demo_model(path) and (path / "model.safetensors").is_file()
    if complete and (not gguf_available() or (path / GGUF_FILE).is_file()):
        return path
    return generate_demo_model(path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
