"""Weight precision and quantization for the transformers engine.

Precision (``options.dtype: auto | float32 | bfloat16 | float16``; :func:`model_dtype`):

- ``auto`` (the default), CPU: the checkpoint's own dtype when it is bfloat16 and the CPU
  computes bfloat16 natively (AVX512-BF16 or AMX, as oneDNN reports it), else float32. Most
  released checkpoints are bfloat16: served as they were trained, they take half the memory,
  and on such a CPU the batch's matrix products run ~3x faster than in float32 (a decode step
  of 16 requests on the benchmark model: 8.7 ms of linear layers against 27.9 ms;
  docs/benchmarks.md). float16 checkpoints become float32 on the CPU (lossless; float16
  compute there is emulated on most CPUs).
- ``auto``, GPU: the checkpoint's dtype.
- an explicit dtype is used as given; bfloat16 or float16 on a CPU without native support
  works, slowly, and says so in the log.

Quantization (``quantization: none | int8 | int4``):

- CPU (``options.device: cpu``, the default), ``int8``: dynamic int8 quantization of every
  ``nn.Linear`` layer, per output channel, with torch's built-in
  ``torch.ao.quantization.quantize_dynamic`` (weights stored as int8, activations quantized on
  the fly; no extra package). torch marks that API deprecated in favour of the separate
  ``torchao`` package, but the pinned torch (the ``transformers`` extra) still has it and it
  runs under continuous batching. Embeddings and norms stay float32.
- CPU, ``int4``: refused; there is no 4-bit path for CPU here (use a 4-bit GGUF file with the
  llama_cpp engine).
- GPU (``options.device: cuda`` or ``cuda:N``), ``int8`` / ``int4``: bitsandbytes through
  transformers' ``BitsAndBytesConfig`` (LLM.int8() and 4-bit NF4), from the ``gpu`` extra
  (bitsandbytes and accelerate).
  Needs a CUDA GPU and bitsandbytes; without either, loading stops with a message that says
  which one is missing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Literal

from turnout.exceptions import InvalidRequest

__all__ = [
    "DTYPES",
    "Quantization",
    "check_quantization",
    "checkpoint_dtype",
    "cpu_native",
    "load_arguments",
    "model_dtype",
    "quantize",
    "weight_bytes",
]

log = logging.getLogger("turnout.engine.transformers")

Quantization = Literal["none", "int8", "int4"]

#: the values of ``options.dtype``
DTYPES = ("auto", "float32", "bfloat16", "float16")


def checkpoint_dtype(model_dir: Path) -> str | None:
    """The dtype a model directory's ``config.json`` declares (``dtype``, or the older
    ``torch_dtype``), if any."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    declared = config.get("dtype") or config.get("torch_dtype")
    return declared if isinstance(declared, str) else None


def cpu_native(dtype: str) -> bool:
    """Whether this CPU computes ``dtype`` natively (oneDNN's own check)."""
    import torch

    if dtype == "float32":
        return True
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    check = {
        "bfloat16": getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None),
        "float16": getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", None),
    }.get(dtype)
    return bool(check is not None and check())


def model_dtype(option: Any, device: str, quantization: str, checkpoint: str | None) -> str:
    """The dtype the engine builds the model in (``auto`` on a GPU: the checkpoint's, left
    to transformers); InvalidRequest for a value this engine cannot use."""
    option = "auto" if option is None else option
    if option not in DTYPES:
        raise InvalidRequest(
            f"options.dtype must be one of {', '.join(DTYPES)}, not {option!r}.",
            param="options.dtype",
        )
    if device != "cpu":
        return str(option)
    if quantization == "int8":
        if option not in ("auto", "float32"):
            raise InvalidRequest(
                "int8 quantization on the CPU quantizes float32 layers: leave options.dtype at "
                f"auto or set float32, not {option}.",
                param="options.dtype",
            )
        return "float32"
    if option == "auto":
        return "bfloat16" if checkpoint == "bfloat16" and cpu_native("bfloat16") else "float32"
    if not cpu_native(option):
        log.warning(
            "options.dtype %s: this CPU has no native %s arithmetic; it will be emulated "
            "(slow). float32 is faster here.",
            option,
            option,
        )
    return str(option)


def check_quantization(quantization: str, device: str) -> None:
    """InvalidRequest when this machine cannot load a model on ``device`` as asked."""
    if device == "cpu":
        if quantization == "int4":
            raise InvalidRequest(
                "int4 quantization needs a CUDA GPU (bitsandbytes); on the CPU use int8, or a "
                "4-bit GGUF file with the llama_cpp engine.",
                param="quantization",
            )
        return
    if not device.startswith("cuda"):
        raise InvalidRequest(
            f"options.device {device!r} is not supported: use cpu, cuda or cuda:N.",
            param="options.device",
        )
    missing = _missing_for_gpu(quantization)
    if missing:
        what = "the model" if quantization == "none" else f"{quantization} quantization"
        raise InvalidRequest(
            f"Loading {what} on {device!r} needs " + "; ".join(missing) + ".",
            param="quantization" if quantization != "none" else "options.device",
        )


def _missing_for_gpu(quantization: str) -> list[str]:
    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append(
            "a CUDA GPU, and torch sees none (a CPU-only torch build, no GPU or no driver); "
            "on a machine without one, use options.device: cpu (int8 works there)"
        )
    if quantization != "none":
        absent = [p for p in ("bitsandbytes", "accelerate") if importlib.util.find_spec(p) is None]
        if absent:
            missing.append(
                f"{' and '.join(absent)}, not installed here: pip install 'turnout[gpu]'"
            )
    return missing


def load_arguments(quantization: str, device: str, dtype: str = "auto") -> dict[str, Any]:
    """Keyword arguments of ``from_pretrained`` for the device, the quantization and the
    dtype from :func:`model_dtype`."""
    import torch

    if device == "cpu":
        return {"dtype": getattr(torch, dtype if dtype != "auto" else "float32")}
    arguments: dict[str, Any] = {
        "dtype": "auto" if dtype == "auto" else getattr(torch, dtype),
        "device_map": device,
    }
    if quantization != "none":
        from transformers import BitsAndBytesConfig

        if quantization == "int8":
            arguments["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
        else:
            arguments["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
    return arguments


def quantize(model: Any, quantization: str, device: str) -> Any:
    """The model after the quantization that happens once it is loaded (CPU int8)."""
    if quantization != "int8" or device != "cpu":
        return model  # none, or done by bitsandbytes while loading
    import torch

    with warnings.catch_warnings():
        # torch marks torch.ao.quantization and quantized tensors deprecated (see above)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        try:
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        except ImportError:
            raise InvalidRequest(
                f"torch {torch.__version__} has no dynamic int8 quantization "
                "(torch.ao.quantization); install the torch version the transformers extra "
                "pins, or use quantization: none.",
                param="quantization",
            ) from None
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]


def weight_bytes(model: Any) -> int:
    """Bytes that the model's weights take: parameters, buffers, and the packed int8 weights
    of dynamically quantized layers (which are neither)."""
    import torch

    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if isinstance(packed, torch.nn.Module):  # a quantized layer (its packed params: not)
            for tensor in module._weight_bias():
                if tensor is not None:
                    total += tensor.numel() * tensor.element_size()
    return int(total)
