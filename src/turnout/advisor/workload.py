"""The workload of a comparison: chat requests from a JSONL file, or the built-in mixed set.

A JSONL workload holds one OpenAI chat request per line (``messages`` required; ``model``,
``stream`` and ``stream_options`` are set by the comparison and ignored here; every other
field, ``max_tokens`` and ``temperature`` included, is sent as written). Blank lines and lines
starting with ``#`` are skipped.

The built-in set mixes what chat traffic usually is: short questions, long documents to
summarise, and code to write or fix. Two of its requests carry personal data and a secret, as
real support and debugging traffic does, so that the report's privacy section has something
to count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from turnout.advisor import builtin_set
from turnout.exceptions import ConfigError

__all__ = ["WorkItem", "Workload", "builtin_workload", "load_workload"]

#: fields the comparison sets itself on every request
_OWN_FIELDS = ("model", "stream", "stream_options")
_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One request of the workload, without ``model`` and ``stream``."""

    body: dict[str, Any]
    #: what kind of request it is (short, summary, code; ``request`` for a file's lines)
    kind: str = "request"


@dataclass(frozen=True, slots=True)
class Workload:
    #: ``built-in`` or the file it was read from
    source: str
    items: tuple[WorkItem, ...]

    def item(self, index: int) -> WorkItem:
        """The ``index``-th request sent: the workload's requests in order, repeated."""
        return self.items[index % len(self.items)]

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        return counts


def builtin_workload(max_tokens: int | None = None) -> Workload:
    items = [WorkItem(dict(body), kind) for kind, body in builtin_set.REQUESTS]
    return Workload("built-in", _capped(items, max_tokens))


def load_workload(path: str | None, max_tokens: int | None = None) -> Workload:
    """The file's requests (or the built-in set when ``path`` is None), with ``max_tokens``
    as an upper limit on every request's output when given. Raises ConfigError."""
    if path is None:
        return builtin_workload(max_tokens)
    file = Path(path)
    try:
        lines = file.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the workload: {exc.strerror}") from None
    items = [
        WorkItem(_parse_line(line, file, number))
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith(b"#")
    ]
    if not items:
        raise ConfigError(
            f"{file}: the workload is empty; write one chat request per line, e.g. "
            '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}'
        )
    return Workload(str(file), _capped(items, max_tokens))


def _parse_line(line: bytes, file: Path, number: int) -> dict[str, Any]:
    where = f"{file}, line {number}"
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ConfigError(f"{where}: not JSON; write one JSON object per line") from None
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: not a JSON object; write a chat request object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConfigError(
            f'{where}: no "messages" list; write e.g. '
            '{"messages": [{"role": "user", "content": "Hello"}]}'
        )
    return {k: v for k, v in body.items() if k not in _OWN_FIELDS}


def _capped(items: Sequence[WorkItem], max_tokens: int | None) -> tuple[WorkItem, ...]:
    if max_tokens is None:
        return tuple(items)
    out = []
    for item in items:
        body = dict(item.body)
        limits = [body[k] for k in _TOKEN_LIMITS if isinstance(body.get(k), int)]
        for key in _TOKEN_LIMITS:
            body.pop(key, None)
        body["max_tokens"] = min([max_tokens, *limits])
        out.append(WorkItem(body, item.kind))
    return tuple(out)
