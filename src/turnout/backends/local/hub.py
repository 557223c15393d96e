"""Models from the Hugging Face Hub: a model ``path`` written ``hf:ORG/NAME[@REVISION]``.

The repository is downloaded with ``huggingface_hub.snapshot_download`` into the first model
directory, under ``hub/ORG--NAME/REVISION``, and then checked like any local model directory.
Only safe files are fetched (safetensors, JSON, tokenizer files, chat templates, GGUF): pickle
weights (``.bin``, ``.pt``, ...) are never downloaded, even when the repository has them.

The standard Hugging Face environment variables apply unchanged: ``HF_ENDPOINT`` (another hub
or a mirror), ``HF_TOKEN`` (private and gated repositories), ``HF_HUB_OFFLINE`` (use what was
downloaded before, never the network).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from turnout.exceptions import InvalidRequest, UpstreamUnavailable

__all__ = ["ALLOW_PATTERNS", "HUB_PREFIX", "HubRef", "download_from_hub", "is_hub_ref", "parse_ref"]

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


@dataclass(frozen=True, slots=True)
class HubRef:
    org: str
    name: str
    revision: str | None

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


def parse_ref(ref: str) -> HubRef:
    """``hf:ORG/NAME`` or ``hf:ORG/NAME@REVISION``, validated; InvalidRequest otherwise."""
    raw = ref.removeprefix(HUB_PREFIX)
    repo, _, revision = raw.partition("@")
    parts = repo.split("/")
    bad = (
        len(parts) != 2
        or not all(_PART.fullmatch(p) and ".." not in p for p in parts)
        or ("@" in raw and not (_REVISION.fullmatch(revision) and ".." not in revision))
    )
    if bad:
        raise InvalidRequest(
            f"{ref!r} is not a Hugging Face Hub model: write hf:ORG/NAME or "
            "hf:ORG/NAME@REVISION (letters, digits, '.', '_', '-').",
            param="path",
        )
    return HubRef(parts[0], parts[1], revision or None)


def download_from_hub(ref: str, root: Path) -> Path:
    """Download ``ref`` (``hf:ORG/NAME[@REVISION]``) into ``root`` and return its directory.

    Blocking: call it in a thread. Hub errors become InvalidRequest (the repository or revision
    does not exist, is gated or private) or UpstreamUnavailable (the hub cannot be reached)."""
    hub = parse_ref(ref)
    try:
        import httpx2
        from huggingface_hub import errors, snapshot_download
    except ImportError:
        raise InvalidRequest(
            "Models from the Hugging Face Hub need the huggingface_hub package (it comes with "
            "the transformers extra: pip install 'turnout[transformers]').",
            param="path",
        ) from None

    target = hub.local_dir(root)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    log.info("downloading %s from %s into %s", hub.label, endpoint, target)
    try:
        try:
            downloaded = snapshot_download(
                hub.repo_id,
                revision=hub.revision,
                local_dir=target,
                allow_patterns=ALLOW_PATTERNS,
            )
        except BaseException:
            _remove_if_empty(target, root)
            raise
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
        raise UpstreamUnavailable(
            f"Cannot download {hub.label!r}: the Hugging Face Hub ({endpoint}) is unreachable "
            f"or failing ({_short(exc.__cause__ or exc)}).",
        ) from None
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
        raise UpstreamUnavailable(
            f"Cannot download {hub.label!r} from the Hugging Face Hub ({endpoint}): {_short(exc)}."
        ) from None
    return Path(downloaded)


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
