"""How many tokens to reserve for a request before it runs.

The output can be at most ``max_completion_tokens`` (or ``max_tokens``) per choice, times
``n``; a request that names neither reserves ``default``. The prompt is estimated at one token
per four characters of text (the settlement replaces the estimate with the real count). An
embedding request reserves its input's estimate only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_reservation"]

CHARS_PER_TOKEN = 4


def estimate_reservation(body: dict[str, Any], default: int) -> tuple[int, int | None]:
    """(tokens to reserve, the output tokens the request asked for or None)."""
    prompt = -(-_text_chars(body) // CHARS_PER_TOKEN)
    if "messages" not in body and "prompt" not in body:
        return prompt, None  # embeddings: no output tokens
    per_choice = _int(body.get("max_completion_tokens"))
    if per_choice is None:
        per_choice = _int(body.get("max_tokens"))
    choices = _int(body.get("n")) or 1
    asked = None if per_choice is None else per_choice * choices
    return prompt + (default * choices if asked is None else asked), asked


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text_chars(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += _chars(message.get("content"))
    return total + _chars(body.get("prompt")) + _chars(body.get("input"))


def _chars(value: Any) -> int:
    """Characters of text in a content value: a string, or a list of strings or text parts."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list):
        return 0
    total = 0
    for part in value:
        if isinstance(part, str):
            total += len(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            total += len(part["text"])
        elif isinstance(part, int):
            total += CHARS_PER_TOKEN  # a token id (embeddings and completions accept them)
    return total
