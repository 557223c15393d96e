"""The record written for every request: what was asked, where it went, what it cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RequestRecord"]


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    #: wall-clock start, seconds since the epoch
    started: float
    endpoint: str
    model: str
    principal: str = "anonymous"
    #: the API key's id (None: the master key, library mode)
    key_id: int | None = None
    backend: str | None = None
    upstream_model: str | None = None
    status: int = 200
    error_code: str | None = None
    stream: bool = False
    attempts: int = 0
    latency: float = 0.0
    ttft: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: US dollars from the price table (0 on local deployments; None: no price known)
    cost: float | None = None
    #: what the privacy policy did (allow, local, redact, block) when something was found
    privacy: str | None = None
    #: the sensitive categories found in the prompt (never the values)
    privacy_categories: list[str] = field(default_factory=list)
    #: one entry per try: {"deployment": "backend/model", "error": code or None, "latency": s}
    tries: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
