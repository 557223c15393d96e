"""Whether the transformers engine can serve a model directory, judged from its config.json
before a single weight is read.

The engine serves causal (decoder-only, text-generation) language models whose architecture
is built into the installed transformers. Refused, each with a message that says what was
found and what would work: a config.json without ``model_type``; a model that needs its own
Python code (``auto_map``; turnout never runs code from model files); a ``model_type``
transformers does not know; a model that is not a causal LM (an encoder such as BERT, an
encoder-decoder such as T5, a classifier head). After loading, :func:`check_loaded_weights`
refuses weights that do not fit the architecture (they would be replaced by random values).

Needs the ``transformers`` extra; call it in a thread (the first import takes a while).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from turnout.exceptions import InvalidRequest

__all__ = ["check_causal_lm", "check_loaded_weights"]

#: shown as examples of what the engine serves (those the installed transformers knows)
_EXAMPLES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "phi3", "gpt2")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_ALTERNATIVE = "or convert the model to GGUF and serve it with the llama_cpp engine"


def check_causal_lm(path: Path) -> None:
    """InvalidRequest (code ``unsupported_model``) unless ``path/config.json`` describes a
    causal language model that the installed transformers has built in."""
    config = _read_config(path)
    model_type = config.get("model_type")
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    found = _describe(model_type, architectures)
    known, causal = _mappings()
    if not isinstance(model_type, str) or not model_type:
        raise _unsupported(
            f"{path.name!r}: config.json names no model_type, so transformers cannot tell which "
            "architecture it is. Is this a Hugging Face transformers model directory?"
        )
    if model_type not in known:
        if config.get("auto_map"):
            raise _unsupported(
                f"{path.name!r} is {found}, which needs its own Python code (config.json has "
                "auto_map); turnout never runs code that comes with model files "
                f"(trust_remote_code). Use a model built into transformers {_version()}, "
                f"{_ALTERNATIVE}."
            )
        raise _unsupported(
            f"{path.name!r} is {found}, which transformers {_version()} does not know. "
            f"Upgrade transformers, {_ALTERNATIVE}. {_supported(causal)}"
        )
    if model_type not in causal or (architectures and not _any_causal(architectures, causal)):
        raise _unsupported(
            f"{path.name!r} is {found}, not a text-generation (causal language) model; the "
            f"transformers engine serves decoder-only models. {_supported(causal)}"
        )


def check_loaded_weights(path: Path, loading_info: dict[str, Any]) -> None:
    """InvalidRequest when transformers had to initialise weights the files lack: the model
    would run on random values (the weights belong to another architecture or head)."""
    missing = sorted(loading_info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise _unsupported(
            f"The weights in {path.name!r} do not fit the architecture its config.json names: "
            f"{len(missing)} tensors are missing ({shown}), so they would be random. Check that "
            "config.json and the *.safetensors files belong to the same causal language model."
        )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(
            f"{path.name!r}: config.json cannot be read as JSON ({exc}).", param="path"
        ) from None
    if not isinstance(config, dict):
        raise InvalidRequest(f"{path.name!r}: config.json is not a JSON object.", param="path")
    return config


def _mappings() -> tuple[Any, dict[str, str]]:
    from transformers.models.auto import configuration_auto, modeling_auto

    known = configuration_auto.CONFIG_MAPPING
    return known, dict(modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _any_causal(architectures: Iterable[str], causal: dict[str, str]) -> bool:
    classes = set(causal.values())
    return any(a in classes or a.endswith(_CAUSAL_SUFFIXES) for a in architectures)


def _describe(model_type: object, architectures: list[str]) -> str:
    kind = f"a {model_type!r} model" if isinstance(model_type, str) and model_type else "a model"
    return f"{kind} ({', '.join(architectures)})" if architectures else kind


def _supported(causal: dict[str, str]) -> str:
    examples = ", ".join(t for t in _EXAMPLES if t in causal)
    return f"Supported model types include {examples} ({len(causal)} in all)."


def _version() -> str:
    import transformers

    return str(transformers.__version__)


def _unsupported(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="path", code="unsupported_model")
