"""Models from the Hugging Face Hub: a model ``path`` written ``hf:ORG/NAME[@REVISION]``.

The repository is downloaded with ``huggingface_hub.snapshot_download`` into the first model
directory, under ``hub/ORG--NAME/REVISION``, and then checked like any local model directory.
Only safe files are fetched (safetensors, JSON, tokenizer files, chat templates, GGUF): pickle
weights (``.bin``, ``.pt``, ...) are never downloaded, even when the repository has them.

For the llama_cpp engine one GGUF file is chosen and only that file is downloaded (all parts
of a split file): ``hf:ORG/NAME/FILE.gguf`` names it, ``hf:ORG/NAME:TAG`` picks the file whose
name carries the quantization tag (``:Q4_K_M``, case-insensitive), and plain ``hf:ORG/NAME``
works when the repository has exactly one. ``@REVISION`` goes last in every form. No match, or
more than one, is a 400 that lists the repository's GGUF files.

The download is reported to the load's progress (stage ``download``, bytes; the total comes
from the repository's file listing). The standard Hugging Face environment variables apply
unchanged: ``HF_ENDPOINT`` (another hub or a mirror), ``HF_TOKEN`` (private and gated
repositories), ``HF_HUB_OFFLINE`` (use what was downloaded before, never the network).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from turnout.backends.local.progress import LoadProgress
from turnout.exceptions import InvalidRequest, UpstreamUnavailable

__all__ = [
    "ALLOW_PATTERNS",
    "HUB_PREFIX",
    "HubRef",
    "download_from_hub",
    "is_hub_ref",
    "parse_ref",
    "select_gguf",
]

log = logging.getLogger("turnout.local")

HUB_PREFIX = "hf:"
#: the files a download may fetch; never a pickle (see files.PICKLE_SUFFIXES)
ALLOW_PATTERNS = [
    "*.safetensors",
    "*.json",
    "*.jinja",
    "*.model",
    "*.tiktoken",
    "*.txt",
    "*.gguf",
    "tokenizer*",
    "merges.txt",
    "vocab.*",
]
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SPLIT = re.compile(r"-\d{5}-of-\d{5}(?=\.gguf$)", re.IGNORECASE)
_FORMS = (
    "write hf:ORG/NAME or hf:ORG/NAME@REVISION (letters, digits, '.', '_', '-'); for the "
    "llama_cpp engine also hf:ORG/NAME:TAG or hf:ORG/NAME/FILE.gguf (each may end in @REVISION)"
)
_POLL = 0.2


@dataclass(frozen=True, slots=True)
class HubRef:
    org: str
    name: str
    revision: str | None
    #: one GGUF file in the repository (llama_cpp)
    file: str | None = None
    #: a quantization tag that picks one GGUF file (llama_cpp)
    tag: str | None = None

    @property
    def repo_id(self) -> str:
        return f"{self.org}/{self.name}"

    @property
    def label(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"

    def local_dir(self, root: Path) -> Path:
        revision = (self.revision or "main").replace("/", "--")
        return root / "hub" / f"{self.org}--{self.name}" / revision


def is_hub_ref(path: str) -> bool:
    return path.startswith(HUB_PREFIX)


def parse_ref(ref: str, *, engine: str = "transformers") -> HubRef:
    """``hf:ORG/NAME[/FILE.gguf | :TAG][@REVISION]``, validated; InvalidRequest otherwise.
    A file or a tag is for the llama_cpp engine only."""
    raw = ref.removeprefix(HUB_PREFIX)
    left, at, revision = raw.partition("@")
    repo, colon, tag = left.partition(":")
    parts = repo.split("/")
    file = "/".join(parts[2:]) or None
    bad = (
        len(parts) < 2
        or not all(_PART.fullmatch(p) and ".." not in p for p in parts)
        or (bool(at) and not (_REVISION.fullmatch(revision) and ".." not in revision))
        or (bool(colon) and not _TAG.fullmatch(tag))
        or (file is not None and (colon or not file.lower().endswith(".gguf")))
    )
    if bad:
        raise InvalidRequest(f"{ref!r} is not a Hugging Face Hub model: {_FORMS}.", param="path")
    hub = HubRef(parts[0], parts[1], revision or None, file, tag or None)
    if (hub.file or hub.tag) and engine != "llama_cpp":
        raise InvalidRequest(
            f"{ref!r} picks one GGUF file, which the llama_cpp engine loads (engine: "
            "llama_cpp); the transformers engine loads a whole repository: hf:ORG/NAME.",
            param="path",
        )
    return hub


def select_gguf(hub: HubRef, names: list[str]) -> list[str]:
    """The GGUF file ``hub`` asks for among the repository's files ``names``: one file, or the
    parts of one split file (first part first). InvalidRequest listing the GGUF files when
    none or several match."""
    groups: dict[str, list[str]] = {}
    for name in sorted(n for n in names if n.lower().endswith(".gguf")):
        groups.setdefault(_SPLIT.sub("", name), []).append(name)
    if hub.file is not None:
        keys = [k for k, files in groups.items() if hub.file in files]
    else:
        keys = [k for k in groups if not Path(k).name.lower().startswith("mmproj")]
        if hub.tag is not None:
            keys = [k for k in keys if _has_tag(k, hub.tag)]
    if len(keys) == 1:
        return groups[keys[0]]
    listing = _listing([_shown(groups[k]) for k in groups])
    asked = (
        f"file {hub.file!r}" if hub.file else f"GGUF file tagged {hub.tag!r}" if hub.tag else None
    )
    if not groups:
        message = f"{hub.label!r} on the Hugging Face Hub has no .gguf files."
    elif not keys and asked:
        message = (
            f"{hub.label!r} on the Hugging Face Hub has no {asked}; its GGUF files: {listing}."
        )
    else:
        matches = _listing([_shown(groups[k]) for k in keys])
        message = (
            f"{hub.label!r} on the Hugging Face Hub has {len(keys)} GGUF files"
            + (f" tagged {hub.tag!r}" if hub.tag else "")
            + f" ({matches}); pick one with hf:{hub.repo_id}/FILE.gguf"
            + ("" if hub.tag else " or a quantization tag, e.g. hf:ORG/NAME:Q4_K_M")
            + "."
        )
    code = "model_not_found" if not keys else "ambiguous_model_file"
    raise InvalidRequest(message, param="path", code=code)


def _shown(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"


def _has_tag(name: str, tag: str) -> bool:
    stem = name[: -len(".gguf")]
    pattern = rf"(?:^|[-._/]){re.escape(tag)}(?:$|[-.])"
    return re.search(pattern, stem, re.IGNORECASE) is not None


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def download_from_hub(
    ref: str,
    root: Path,
    *,
    engine: str = "transformers",
    progress: LoadProgress | None = None,
) -> Path:
    """Download ``ref`` into ``root``; the model directory (transformers) or the GGUF file
    (llama_cpp). Blocking: call it in a thread. Hub errors become InvalidRequest (the
    repository, revision or file does not exist, is gated or private) or UpstreamUnavailable
    (the hub cannot be reached)."""
    hub = parse_ref(ref, engine=engine)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InvalidRequest(
            "Models from the Hugging Face Hub need the huggingface_hub package (it comes with "
            "the transformers extra: pip install 'turnout[transformers]').",
            param="path",
        ) from None

    target = hub.local_dir(root)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    with _hub_errors(hub, ref, endpoint):
        files = _repo_files(hub, target)
        chosen = select_gguf(hub, list(files)) if engine == "llama_cpp" else None
        patterns = chosen or ALLOW_PATTERNS
        wanted = {n: size for n, size in files.items() if _matches(n, patterns)}
        log.info("downloading %s from %s into %s", hub.label, endpoint, target)

        def download() -> str:
            return str(
                snapshot_download(
                    hub.repo_id, revision=hub.revision, local_dir=target, allow_patterns=patterns
                )
            )

        try:
            downloaded = _with_progress(download, target, _missing_bytes(target, wanted), progress)
        except BaseException:
            _remove_if_empty(target, root)
            raise
    return Path(downloaded) / chosen[0] if chosen else Path(downloaded)


def _repo_files(hub: HubRef, target: Path) -> dict[str, int]:
    """The repository's files and their sizes (offline: the files downloaded before)."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        if not target.is_dir():
            raise InvalidRequest(
                f"{hub.label!r} was never downloaded and HF_HUB_OFFLINE is set: the gateway may "
                "not reach the Hugging Face Hub.",
                param="path",
            )
        return {
            p.relative_to(target).as_posix(): p.stat().st_size
            for p in target.rglob("*")
            if p.is_file() and ".cache" not in p.relative_to(target).parts
        }
    entries = HfApi().list_repo_tree(hub.repo_id, revision=hub.revision, recursive=True)
    return {e.path: int(getattr(e, "size", 0) or 0) for e in entries if hasattr(e, "size")}


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _missing_bytes(target: Path, wanted: dict[str, int]) -> int:
    """Bytes still to download: files not yet in ``target`` with their full size."""
    missing = 0
    for name, size in wanted.items():
        local = target / name
        if not (local.is_file() and local.stat().st_size == size):
            missing += size
    return missing


def _with_progress(
    download: Callable[[], str], target: Path, total: int, progress: LoadProgress | None
) -> str:
    """Run ``download``, reporting the bytes that arrive under ``target`` (a watcher thread
    sums the sizes of the files there, partial downloads included)."""
    if progress is None:
        return download()
    progress.begin("download", total=total, unit="bytes")
    baseline = _tree_bytes(target)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(_POLL):
            progress.update(max(_tree_bytes(target) - baseline, 0))

    watcher = threading.Thread(target=watch, name="turnout-hub-progress", daemon=True)
    watcher.start()
    try:
        result = download()
    finally:
        stop.set()
        watcher.join()
    progress.update(total)
    return result


def _tree_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


@contextlib.contextmanager
def _hub_errors(hub: HubRef, ref: str, endpoint: str) -> Iterator[None]:
    """huggingface_hub's errors as the gateway's own (see download_from_hub)."""
    import httpx2
    from huggingface_hub import errors

    try:
        yield
    except errors.GatedRepoError:
        raise InvalidRequest(
            f"{hub.repo_id!r} on the Hugging Face Hub is gated: accept its terms on the Hub and "
            "give the gateway a token with access (HF_TOKEN).",
            param="path",
            code="model_not_accessible",
        ) from None
    except errors.RepositoryNotFoundError:
        raise InvalidRequest(
            f"No model {hub.repo_id!r} on the Hugging Face Hub ({endpoint}), or it is private "
            "and the gateway has no token for it (HF_TOKEN).",
            param="path",
            code="model_not_found",
        ) from None
    except errors.RevisionNotFoundError:
        raise InvalidRequest(
            f"{hub.repo_id!r} on the Hugging Face Hub has no revision {hub.revision!r}.",
            param="path",
            code="model_not_found",
        ) from None
    except errors.HFValidationError as exc:
        raise InvalidRequest(f"{ref!r} is not a valid Hub model id: {exc}", param="path") from None
    except errors.LocalEntryNotFoundError as exc:
        if isinstance(exc.__cause__, errors.OfflineModeIsEnabled):
            message = (
                f"{hub.label!r} was never downloaded and HF_HUB_OFFLINE is set: the gateway may "
                "not reach the Hugging Face Hub."
            )
            raise InvalidRequest(message, param="path") from None
        raise _unreachable(hub, endpoint, exc.__cause__ or exc) from None
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise InvalidRequest(
                f"The Hugging Face Hub refused access to {hub.repo_id!r} (HTTP {status}); "
                "check HF_TOKEN.",
                param="path",
                code="model_not_accessible",
            ) from None
        raise UpstreamUnavailable(
            f"Cannot download {hub.label!r}: the Hugging Face Hub ({endpoint}) answered "
            f"HTTP {status}."
        ) from None
    except (httpx2.HTTPError, errors.FileMetadataError, ConnectionError, TimeoutError) as exc:
        raise _unreachable(hub, endpoint, exc) from None


def _unreachable(hub: HubRef, endpoint: str, cause: BaseException) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"Cannot download {hub.label!r}: the Hugging Face Hub ({endpoint}) is unreachable "
        f"or failing ({_short(cause)})."
    )


def _remove_if_empty(target: Path, root: Path) -> None:
    """A failed first download leaves only huggingface_hub's bookkeeping (``.cache``): remove
    it, so that a later attempt without the network is not taken for a complete copy."""
    if not target.is_dir():
        return
    if any(p.is_file() for p in target.rglob("*") if ".cache" not in p.relative_to(target).parts):
        return
    shutil.rmtree(target, ignore_errors=True)
    for parent in (target.parent, target.parent.parent):  # hub/ORG--NAME, hub
        if parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
