"""Weight quantization for the transformers engine (``quantization: none | int8 | int4``).

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
import warnings
from typing import Any, Literal

from turnout.exceptions import InvalidRequest

__all__ = ["Quantization", "check_quantization", "load_arguments", "quantize", "weight_bytes"]

Quantization = Literal["none", "int8", "int4"]


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


def load_arguments(quantization: str, device: str) -> dict[str, Any]:
    """Keyword arguments of ``from_pretrained`` for the device and the quantization."""
    import torch

    if device == "cpu":
        return {"dtype": torch.float32}
    arguments: dict[str, Any] = {"dtype": "auto", "device_map": device}
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
