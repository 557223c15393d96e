"""GGUF export of the demo model: deterministic bytes, readable metadata, and logits that match
the transformers model (the check that tensor names and the Q/K permutation are right)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from turnout.exceptions import InvalidRequest

pytest.importorskip("gguf", reason="the 'gguf' package (extra 'llama') is not installed")
pytest.importorskip("torch", reason="the demo model needs the 'transformers' extra")
pytest.importorskip("transformers", reason="the demo model needs the 'transformers' extra")

import gguf
import numpy as np

from turnout.backends.local import gguf_export
from turnout.backends.local.demo_model import CHAT_TEMPLATE, generate_demo_model
from turnout.backends.local.gguf_export import export_gguf

PROMPT = [
    {"role": "system", "content": "You are a railway turnout."},
    {"role": "user", "content": "Hello! How can I help you today? 你好，世界。 3.14 def main():"},
]


def demo_files(factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo model (safetensors directory) and its GGUF export, made once per session
    (shared with test_llama_cpp_engine.py through the session's base temp directory)."""
    root = factory.getbasetemp() / "turnout-llama-demo"
    hf_dir, gguf_file = root / "hf", root / "demo.gguf"
    if not gguf_file.is_file():
        generate_demo_model(hf_dir)
        export_gguf(hf_dir, gguf_file)
    return hf_dir, gguf_file


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return demo_files(tmp_path_factory)


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    assert field is not None, key
    return field.contents()


def test_export_is_deterministic(demo: tuple[Path, Path], tmp_path: Path) -> None:
    hf_dir, first = demo
    again = export_gguf(hf_dir, tmp_path / "again.gguf")
    assert again.read_bytes() == first.read_bytes()
    # a copy of the model elsewhere gives the same bytes too (nothing path-dependent)
    copy = tmp_path / "copy"
    shutil.copytree(hf_dir, copy)
    assert export_gguf(copy, tmp_path / "copy.gguf").read_bytes() == first.read_bytes()
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed into place"


def test_metadata_is_readable(demo: tuple[Path, Path]) -> None:
    hf_dir, gguf_file = demo
    config = json.loads((hf_dir / "config.json").read_text())
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text())
    reader = gguf.GGUFReader(gguf_file)

    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.name") == "turnout-demo"
    assert "nonsense" in _field(reader, "general.description")
    assert _field(reader, "general.file_type") == 0  # all f32
    expected = {
        "llama.context_length": config["max_position_embeddings"],
        "llama.embedding_length": config["hidden_size"],
        "llama.block_count": config["num_hidden_layers"],
        "llama.feed_forward_length": config["intermediate_size"],
        "llama.attention.head_count": config["num_attention_heads"],
        "llama.attention.head_count_kv": config["num_key_value_heads"],
        "llama.rope.dimension_count": config["head_dim"],
        "llama.vocab_size": config["vocab_size"],
    }
    for key, value in expected.items():
        assert _field(reader, key) == value, key
    assert _field(reader, "llama.rope.freq_base") == pytest.approx(500000.0)
    assert _field(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)

    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == config["vocab_size"]
    for special in tokenizer["added_tokens"]:
        assert tokens[special["id"]] == special["content"]
        assert types[special["id"]] == gguf.TokenType.CONTROL
    assert types.count(gguf.TokenType.NORMAL) == config["vocab_size"] - len(
        tokenizer["added_tokens"]
    )
    merges = _field(reader, "tokenizer.ggml.merges")
    assert merges[0] == " ".join(tokenizer["model"]["merges"][0])
    assert len(merges) == len(tokenizer["model"]["merges"])
    assert _field(reader, "tokenizer.ggml.bos_token_id") == config["bos_token_id"]
    assert _field(reader, "tokenizer.ggml.eos_token_id") == config["eos_token_id"]
    assert _field(reader, "tokenizer.ggml.padding_token_id") == config["pad_token_id"]
    assert _field(reader, "tokenizer.ggml.add_bos_token") is False  # the template writes it
    assert _field(reader, "tokenizer.chat_template") == CHAT_TEMPLATE

    tensors = {t.name: t for t in reader.tensors}
    names = {"token_embd.weight", "output_norm.weight", "output.weight"}
    for i in range(config["num_hidden_layers"]):
        names |= {
            f"blk.{i}.{n}.weight"
            for n in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
                "attn_norm",
                "ffn_norm",
            ]
        }
    assert set(tensors) == names
    hidden, kv = config["hidden_size"], config["num_key_value_heads"] * config["head_dim"]
    # ggml lists dimensions innermost first: (in_features, out_features)
    assert list(tensors["blk.0.attn_q.weight"].shape) == [hidden, hidden]
    assert list(tensors["blk.0.attn_k.weight"].shape) == [hidden, kv]
    assert list(tensors["token_embd.weight"].shape) == [hidden, config["vocab_size"]]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values())


def test_f16_export_keeps_norms_f32(demo: tuple[Path, Path], tmp_path: Path) -> None:
    hf_dir, gguf_file = demo
    half = export_gguf(hf_dir, tmp_path / "half.gguf", dtype="f16")
    assert half.stat().st_size < gguf_file.stat().st_size * 0.6
    reader = gguf.GGUFReader(half)
    assert _field(reader, "general.file_type") == 1
    for tensor in reader.tensors:
        expected = (
            gguf.GGMLQuantizationType.F32
            if tensor.name.endswith("norm.weight")
            else gguf.GGMLQuantizationType.F16
        )
        assert tensor.tensor_type == expected, tensor.name


def test_refuses_what_it_cannot_convert(demo: tuple[Path, Path], tmp_path: Path) -> None:
    hf_dir, _ = demo
    other = tmp_path / "gpt2"
    shutil.copytree(hf_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(
        json.dumps({**config, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    )
    with pytest.raises(InvalidRequest, match="Llama architecture only"):
        export_gguf(other, tmp_path / "x.gguf")

    (other / "config.json").write_text(json.dumps(config))
    (other / "tokenizer.json").unlink()
    with pytest.raises(InvalidRequest, match=r"tokenizer\.json is missing"):
        export_gguf(other, tmp_path / "x.gguf")

    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text())
    tokenizer["normalizer"] = {"type": "NFC"}
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(InvalidRequest, match="byte-level BPE"):
        export_gguf(other, tmp_path / "x.gguf")

    no_weights = tmp_path / "no-weights"
    shutil.copytree(hf_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(InvalidRequest, match=r"no \.safetensors"):
        export_gguf(no_weights, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


# -- logits parity with transformers ----------------------------------------------------------


def _hf_logits(hf_dir: Path) -> tuple[list[int], Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy()
    return ids, logits


def _gguf_logits(gguf_file: Path, hf_ids: list[int]) -> tuple[list[int], Any]:
    import llama_cpp
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    llm = llama_cpp.Llama(str(gguf_file), n_ctx=256, logits_all=True, verbose=False)
    try:
        template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = template.from_string(llm.metadata["tokenizer.chat_template"]).render(
            messages=PROMPT, add_generation_prompt=True, bos_token="<|begin_of_text|>"
        )
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.eval(hf_ids)
        return ids, np.array(llm.scores[: len(hf_ids)])
    finally:
        llm.close()


def _parity(hf_dir: Path, gguf_file: Path) -> tuple[float, float, float]:
    """(max abs logit difference, largest |logit|, share of positions with the same argmax);
    also checks that llama.cpp tokenizes the templated prompt exactly like transformers."""
    hf_ids, hf = _hf_logits(hf_dir)
    ids, lc = _gguf_logits(gguf_file, hf_ids)
    assert ids == hf_ids, "llama.cpp and transformers tokenize the prompt differently"
    assert len(hf_ids) > 30
    diff = float(np.abs(hf - lc).max())
    agree = float((hf.argmax(-1) == lc.argmax(-1)).mean())
    return diff, float(np.abs(hf).max()), agree


@pytest.fixture(scope="session")
def unit_scale_model(demo: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model with unit-scale random weights: its attention is sharp enough that
    rotary embeddings on the wrong dimensions change the logits (the demo's small init
    hides that)."""
    import torch
    from transformers import AutoModelForCausalLM

    hf_dir, _ = demo
    out = tmp_path_factory.mktemp("unit-scale")
    shutil.copytree(hf_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2:
                param.copy_(torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5)
    model.save_pretrained(out)
    return out


def test_logits_match_transformers(demo: tuple[Path, Path]) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (extra 'llama') is not installed")
    diff, scale, agree = _parity(*demo)
    assert agree == 1.0
    assert diff < 1e-3, f"max abs diff {diff} (largest logit {scale})"


def test_logits_match_with_unit_scale_weights(unit_scale_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (extra 'llama') is not installed")
    gguf_file = export_gguf(unit_scale_model, tmp_path / "unit.gguf")
    diff, scale, agree = _parity(unit_scale_model, gguf_file)
    assert agree == 1.0
    assert diff < 0.01 * scale, f"max abs diff {diff} (largest logit {scale})"


def test_parity_catches_a_missing_qk_permutation(
    unit_scale_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parity check above is strong enough to catch the classic conversion bug."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (extra 'llama') is not installed")
    monkeypatch.setattr(gguf_export, "_permute", lambda weights, n_head, n_head_kv: weights)
    gguf_file = export_gguf(unit_scale_model, tmp_path / "wrong.gguf")
    diff, scale, _ = _parity(unit_scale_model, gguf_file)
    assert diff > 0.1 * scale
