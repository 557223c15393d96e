"""The record written for every request: what was asked, where it went, what it cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
