"""Query-string parameters of admin reads, validated with errors that name the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from turnout.exceptions import InvalidRequest
from turnout.server.http import HttpRequest

__all__ = ["Query"]


class Query:
    def __init__(self, req: HttpRequest) -> None:
        raw = req.scope.get("query_string", b"").decode("latin-1")
        self._values = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def text(self, name: str, max_length: int = 256) -> str | None:
        value = self._values.get(name)
        if value is not None and not 0 < len(value) <= max_length:
            raise InvalidRequest(f"{name} must have 1 to {max_length} characters.", param=name)
        return value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self._values.get(name)
        if value is None:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise InvalidRequest(f"{name} must be a whole number from {low} to {high}.", param=name)
        return int(value)

    def time(self, name: str) -> datetime | None:
        """An ISO 8601 time (UTC when it has no offset)."""
        value = self._values.get(name)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
        except ValueError:
            raise InvalidRequest(
                f"{name} must be an ISO 8601 time, e.g. 2030-01-31T00:00:00Z.", param=name
            ) from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
