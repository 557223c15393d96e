"""Model files: where they may come from and whether they are safe to load.

Checked before a single byte is deserialised: the path stays inside the configured model
directories (no traversal, no symlink escape), pickle-based weights (which can execute code
when loaded) are refused, and safetensors headers are well-formed.

:func:`read_weights` reads weight files through once, counting bytes for the load's progress;
the engine that loads them next finds them in the page cache.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

from turnout.backends.local.progress import LoadProgress
from turnout.exceptions import InvalidRequest

__all__ = [
    "PICKLE_SUFFIXES",
    "check_model_dir",
    "check_safetensors",
    "read_weights",
    "resolve_model_path",
]

#: weight formats that are Python pickles: loading them can run arbitrary code
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
_MAX_HEADER = 100 * 1024 * 1024
_READ_CHUNK = 8 * 1024 * 1024


def resolve_model_path(raw: str, roots: list[Path]) -> Path:
    """``raw`` (absolute, or relative to the first root) resolved, inside one of ``roots``."""
    if not raw or "\0" in raw:
        raise InvalidRequest("The model path is empty or contains NUL.", param="path")
    if not roots:
        raise InvalidRequest(
            "No model directories are configured; add local.model_dirs to the configuration.",
            param="path",
        )
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = candidate.resolve()
    for root in roots:
        if resolved.is_relative_to(root.expanduser().resolve()):
            return resolved
    allowed = ", ".join(str(r) for r in roots)
    raise InvalidRequest(
        f"The model path {raw!r} is outside the model directories ({allowed}).", param="path"
    )


def check_model_dir(path: Path, *, kind: str = "safetensors") -> None:
    """A Hugging Face model directory with safetensors weights and no pickle files."""
    if not path.exists():
        raise InvalidRequest(f"No model at {path.name!r}: the path does not exist.", param="path")
    if not path.is_dir():
        raise InvalidRequest(
            f"{path.name!r} is a file; the transformers engine loads a model directory "
            "(config.json, tokenizer, *.safetensors). GGUF files go to the llama.cpp engine.",
            param="path",
        )
    pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise InvalidRequest(
            f"Refusing {path.name!r}: it holds pickle-based weights ({', '.join(pickles)}), "
            "which can execute code when loaded. Convert them to safetensors.",
            param="path",
            code="unsafe_model_file",
        )
    if not (path / "config.json").is_file():
        raise InvalidRequest(f"{path.name!r} has no config.json.", param="path")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise InvalidRequest(f"{path.name!r} has no *.safetensors weights.", param="path")
    for file in weights:
        check_safetensors(file)


def check_safetensors(file: Path) -> None:
    """The header is a length-prefixed JSON object whose tensors fit in the file."""
    size = file.stat().st_size
    try:
        with file.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > min(size - 8, _MAX_HEADER):
                raise ValueError("header length beyond the file")
            header = json.loads(fh.read(length))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"{file.name!r} is not a valid safetensors file ({exc}).", param="path"
        ) from None
    if not isinstance(header, dict):
        raise InvalidRequest(f"{file.name!r} has a malformed safetensors header.", param="path")
    end = max(
        (int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0
    )
    if 8 + length + end > size:
        raise InvalidRequest(
            f"{file.name!r} is truncated: its header describes {8 + length + end} bytes, the "
            f"file has {size}.",
            param="path",
        )


def read_weights(files: Sequence[Path], progress: LoadProgress) -> None:
    """Read ``files`` from disk once (stage ``weights``, in bytes). Blocking."""
    progress.begin("weights", total=sum(f.stat().st_size for f in files), unit="bytes")
    buffer = bytearray(_READ_CHUNK)
    for file in files:
        try:
            with file.open("rb", buffering=0) as fh:
                while count := fh.readinto(buffer):
                    progress.advance(count)
        except OSError as exc:
            raise InvalidRequest(
                f"Cannot read {file.name!r}: {exc.strerror}.", param="path"
            ) from None
