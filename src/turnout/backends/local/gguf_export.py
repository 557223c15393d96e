"""Convert a Hugging Face Llama checkpoint (safetensors + ``tokenizer.json``) into a GGUF file.

This is what llama.cpp's own ``convert_hf_to_gguf.py`` does for the Llama architecture, cut
down to what turnout needs (the demo model and small Llama-family checkpoints with a
byte-level BPE tokenizer), and written with the llama.cpp project's own writer,
:class:`gguf.GGUFWriter` (the ``gguf`` package on PyPI):

- tensors renamed to llama.cpp's names (``token_embd``, ``blk.N.attn_q`` ... ``output``);
- the rows of the Q and K projections permuted from Hugging Face's rotary layout (the two
  halves of each head) to llama.cpp's (interleaved pairs) — without this the model loads
  but computes garbage;
- hyperparameters under ``llama.*`` (context length, widths, heads, RMS epsilon, rope base);
- the tokenizer as a ``gpt2`` BPE vocabulary (tokens, token types with the special tokens as
  control tokens, merges, BOS/EOS/PAD ids) and the chat template.

Weights are written as f32 (default) or f16; norms stay f32 as llama.cpp expects. The
output is deterministic: same input directory, same bytes. Only ``numpy`` and ``gguf`` are
needed (safetensors files are read directly; f32, f16 and bf16 weights are accepted).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from turnout.exceptions import InvalidRequest

__all__ = ["export_gguf"]

_SAFETENSORS_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to f32 by hand: numpy has no bfloat16
    "F64": np.dtype("<f8"),
}
_LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
_GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_TOKEN_NORMAL = 1
_TOKEN_CONTROL = 3
_TOKEN_USER_DEFINED = 4
_TOKEN_UNUSED = 5
_FILE_TYPE = {"f32": 0, "f16": 1}  # gguf.LlamaFileType.ALL_F32 / MOSTLY_F16


def export_gguf(
    hf_dir: str | Path, out_file: str | Path, *, dtype: Literal["f32", "f16"] = "f32"
) -> Path:
    """Write ``out_file`` (GGUF, loadable by llama.cpp) from the Llama checkpoint in
    ``hf_dir`` and return its path. Raises InvalidRequest for a directory it cannot convert
    (missing files, another architecture, an unsupported tokenizer or rope scaling)."""
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise InvalidRequest(
            "Exporting GGUF needs the 'gguf' package: pip install 'turnout[llama]'."
        ) from exc
    if dtype not in _FILE_TYPE:
        raise InvalidRequest(f"GGUF export dtype must be 'f32' or 'f16', not {dtype!r}.")
    src = Path(hf_dir)
    out = Path(out_file)
    config = _read_json(src / "config.json")
    hp = _hyperparameters(config, src)
    vocab = _vocabulary(src, config, hp["vocab_size"])

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(tmp, "llama")
    try:
        writer.add_name(hp["name"])
        if hp["description"]:
            writer.add_description(hp["description"])
        writer.add_file_type(_FILE_TYPE[dtype])
        writer.add_vocab_size(hp["vocab_size"])
        writer.add_context_length(hp["context_length"])
        writer.add_embedding_length(hp["hidden_size"])
        writer.add_block_count(hp["n_layers"])
        writer.add_feed_forward_length(hp["intermediate_size"])
        writer.add_head_count(hp["n_head"])
        writer.add_head_count_kv(hp["n_head_kv"])
        writer.add_layer_norm_rms_eps(hp["rms_eps"])
        writer.add_rope_freq_base(hp["rope_theta"])
        writer.add_rope_dimension_count(hp["head_dim"])
        if hp["head_dim"] * hp["n_head"] != hp["hidden_size"]:
            writer.add_key_length(hp["head_dim"])
            writer.add_value_length(hp["head_dim"])

        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(vocab["tokens"])
        writer.add_token_types(vocab["types"])
        writer.add_token_merges(vocab["merges"])
        for key, add in (
            ("bos", writer.add_bos_token_id),
            ("eos", writer.add_eos_token_id),
            ("pad", writer.add_pad_token_id),
        ):
            if vocab[key] is not None:
                add(vocab[key])
        writer.add_add_bos_token(vocab["add_bos"])
        writer.add_add_eos_token(False)
        if vocab["chat_template"]:
            writer.add_chat_template(vocab["chat_template"])

        for name, array in _gguf_tensors(src, hp, dtype):
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    tmp.replace(out)
    return out


# -- configuration ----------------------------------------------------------------------------


def _hyperparameters(config: dict[str, Any], src: Path) -> dict[str, Any]:
    arch = config.get("architectures") or []
    if config.get("model_type") != "llama" and "LlamaForCausalLM" not in arch:
        raise InvalidRequest(
            f"GGUF export supports the Llama architecture only; {src} is "
            f"{config.get('model_type') or arch or 'of an unknown type'}."
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise InvalidRequest(f"GGUF export does not support rope scaling {rope_type!r} yet.")
    try:
        hidden = int(config["hidden_size"])
        n_head = int(config["num_attention_heads"])
        hp: dict[str, Any] = {
            "vocab_size": int(config["vocab_size"]),
            "context_length": int(config.get("max_position_embeddings") or 4096),
            "hidden_size": hidden,
            "n_layers": int(config["num_hidden_layers"]),
            "intermediate_size": int(config["intermediate_size"]),
            "n_head": n_head,
            "n_head_kv": int(config.get("num_key_value_heads") or n_head),
            "head_dim": int(config.get("head_dim") or hidden // n_head),
            "rms_eps": float(config.get("rms_norm_eps", 1e-6)),
            "rope_theta": float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0),
            "tied": bool(config.get("tie_word_embeddings", False)),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"{src / 'config.json'} lacks a valid {exc} for Llama.") from exc
    demo = src / "turnout_demo.json"
    if demo.is_file():
        hp["name"] = "turnout-demo"
        hp["description"] = str(_read_json(demo).get("notice", ""))
    else:
        hp["name"] = src.resolve().name
        hp["description"] = ""
    return hp


def _vocabulary(src: Path, config: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    tok = _read_json(src / "tokenizer.json")
    tok_config = _read_json(src / "tokenizer_config.json", required=False)
    model = tok.get("model") or {}
    pre = tok.get("pre_tokenizer") or {}
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers") or []) == 1:
        pre = pre["pretokenizers"][0]
    # GPT-2 style: byte-level BPE, GPT-2's split regex, no normalizer (llama.cpp's "gpt-2")
    if (
        model.get("type") != "BPE"
        or pre.get("type") != "ByteLevel"
        or not pre.get("use_regex", True)
        or tok.get("normalizer")
    ):
        raise InvalidRequest(
            "GGUF export supports GPT-2 style byte-level BPE tokenizers only (ByteLevel "
            f"pre-tokenizer with its own regex, no normalizer): {src / 'tokenizer.json'}."
        )
    ids: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    types: dict[int, int] = dict.fromkeys(ids, _TOKEN_NORMAL)
    for added in tok.get("added_tokens") or []:
        ids[int(added["id"])] = added["content"]
        types[int(added["id"])] = _TOKEN_CONTROL if added.get("special") else _TOKEN_USER_DEFINED
    size = max(vocab_size, max(ids) + 1)
    tokens = [ids.get(i, f"[PAD{i}]") for i in range(size)]
    token_types = [types.get(i, _TOKEN_UNUSED) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    by_text = {t: i for i, t in enumerate(tokens)}

    def special_id(name: str) -> int | None:
        value = config.get(f"{name}_token_id")
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, int):
            return value
        text = tok_config.get(f"{name}_token")
        if isinstance(text, dict):
            text = text.get("content")
        return by_text.get(text) if isinstance(text, str) else None

    bos = special_id("bos")
    add_bos = tok_config.get("add_bos_token")
    if not isinstance(add_bos, bool):
        # tokenizers adds BOS through its post-processor template when it adds it at all
        post = json.dumps(tok.get("post_processor") or {})
        add_bos = bos is not None and json.dumps(tokens[bos]) in post
    template = tok_config.get("chat_template")
    jinja = src / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return {
        "tokens": tokens,
        "types": token_types,
        "merges": merges,
        "bos": bos,
        "eos": special_id("eos"),
        "pad": special_id("pad"),
        "add_bos": add_bos,
        "chat_template": template if isinstance(template, str) else None,
    }


def _read_json(path: Path, *, required: bool = True) -> dict[str, Any]:
    if not path.is_file():
        if not required:
            return {}
        raise InvalidRequest(f"Cannot export GGUF: {path} is missing.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"Cannot export GGUF: {path} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InvalidRequest(f"Cannot export GGUF: {path} is not a JSON object.")
    return data


# -- tensors ----------------------------------------------------------------------------------


def _gguf_tensors(
    src: Path, hp: dict[str, Any], dtype: str
) -> Iterator[tuple[str, npt.NDArray[Any]]]:
    """The model's tensors under llama.cpp's names, in a fixed order."""
    hf = dict(_read_safetensors(src))
    renamed: dict[str, npt.NDArray[np.float32]] = {}
    for name, array in hf.items():
        gguf_name = _gguf_name(name)
        if gguf_name is None:
            continue
        if gguf_name.endswith(("attn_q.weight", "attn_q.bias")):
            array = _permute(array, hp["n_head"], hp["n_head"])
        elif gguf_name.endswith(("attn_k.weight", "attn_k.bias")):
            array = _permute(array, hp["n_head"], hp["n_head_kv"])
        renamed[gguf_name] = array
    if "output.weight" not in renamed and not hp["tied"]:
        raise InvalidRequest(f"{src} has no lm_head.weight and does not tie its embeddings.")
    if hp["tied"]:
        renamed.pop("output.weight", None)  # llama.cpp reuses token_embd
    required = ["token_embd.weight", "output_norm.weight"]
    for i in range(hp["n_layers"]):
        required += [f"blk.{i}.{n}.weight" for n in _LAYER_TENSORS.values()]
    missing = [n for n in required if n not in renamed]
    if missing:
        raise InvalidRequest(f"{src} lacks tensors for a Llama model: {', '.join(missing[:5])}")

    def order(name: str) -> tuple[int, int, str]:
        if name.startswith("token_embd"):
            return (0, 0, name)
        if name.startswith("blk."):
            return (1, int(name.split(".")[1]), name)
        return (2, 0, name)

    for name in sorted(renamed, key=order):
        array = renamed[name]
        if dtype == "f16" and array.ndim > 1:
            yield name, np.ascontiguousarray(array, dtype=np.float16)
        else:
            yield name, np.ascontiguousarray(array, dtype=np.float32)


def _gguf_name(hf_name: str) -> str | None:
    if hf_name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[hf_name]
    parts = hf_name.split(".")
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    if len(parts) >= 5 and parts[0] == "model" and parts[1] == "layers" and parts[2].isdigit():
        module = ".".join(parts[3:-1])
        if module in _LAYER_TENSORS:
            return f"blk.{parts[2]}.{_LAYER_TENSORS[module]}.{parts[-1]}"
    raise InvalidRequest(f"GGUF export does not know the tensor {hf_name!r} (Llama expected).")


def _permute(weights: npt.NDArray[np.float32], n_head: int, n_head_kv: int) -> Any:
    """Hugging Face's rotary layout (per head: first half, second half) to llama.cpp's
    (interleaved pairs); the same permutation as llama.cpp's ``LlamaModel.permute``."""
    if n_head_kv != n_head:
        n_head = n_head_kv
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _read_safetensors(src: Path) -> Iterator[tuple[str, npt.NDArray[np.float32]]]:
    """Every tensor of the checkpoint as f32 (safetensors parsed directly: 8-byte header
    length, JSON header, raw little-endian data). Pickle checkpoints are never read."""
    index = src / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map") or {}
        files = sorted({src / str(f) for f in weight_map.values()})
    else:
        files = sorted(src.glob("*.safetensors"))
    if not files:
        raise InvalidRequest(f"Cannot export GGUF: no .safetensors weights in {src}.")
    for file in files:
        try:
            data = np.memmap(file, dtype=np.uint8, mode="r")
            (header_len,) = struct.unpack("<Q", data[:8].tobytes())
            header = json.loads(data[8 : 8 + header_len].tobytes())
        except (OSError, ValueError, struct.error) as exc:
            raise InvalidRequest(f"{file} is not a valid safetensors file ({exc}).") from exc
        base = 8 + header_len
        for name in sorted(k for k in header if k != "__metadata__"):
            info = header[name]
            np_dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
            if np_dtype is None:
                raise InvalidRequest(
                    f"GGUF export cannot read {info.get('dtype')} tensor {name!r} in {file}."
                )
            start, end = info["data_offsets"]
            if base + end > data.size:
                raise InvalidRequest(f"{file} is truncated (tensor {name!r}).")
            raw = np.frombuffer(data[base + start : base + end].tobytes(), dtype=np_dtype)
            if info["dtype"] == "BF16":
                array = (raw.astype(np.uint32) << 16).view(np.float32)
            else:
                array = raw.astype(np.float32)
            yield name, array.reshape(info["shape"])
