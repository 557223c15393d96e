"""Sensitive content in a request: find it, name its categories, or replace it.

A :class:`Detector` is built once at start-up from the ``privacy:`` section of the
configuration; everything is compiled then, nothing per request. It finds

- the built-in :data:`CATEGORIES`: ``email``, ``phone``, ``national_id``, ``bank_card``,
  ``iban``, ``ip_address``, ``api_key`` and ``private_key`` (see ``privacy_rules``), each
  candidate validated (check digits, dates, lengths) before it counts;
- ``custom:NAME`` for each of the operator's regular expressions (``privacy.patterns``);
- ``keyword`` for the operator's words and phrases (``privacy.keywords``, any case).

:meth:`Detector.scan_request` reports the categories found anywhere a request carries text;
:meth:`Detector.redact_request` returns a copy with every finding replaced by a typed
placeholder (``[EMAIL]``, ``[PHONE]``, ..., ``[NAME]`` for ``custom:name``). Findings carry
positions and categories, never the text they cover, so they can be logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from turnout.config import PrivacyConfig
from turnout.policies.privacy_rules import CATEGORIES, PLACEHOLDERS, BuiltinScanner, Hit
from turnout.policies.request_text import edit_texts

__all__ = ["CATEGORIES", "Detector", "Finding", "placeholder"]

#: the fullwidth forms (U+FF01-U+FF5E) that can be part of a finding: letters, digits and
#: ＠＋－．（）＿. Each maps onto one ASCII character, so positions in the normalised text
#: are positions in the original. Other fullwidth punctuation (，：；！？), everywhere in
#: Chinese text, is left alone: it is never part of a finding.
_FULLWIDTH = re.compile("[０-９Ａ-Ｚａ-ｚ＠＋－．（）＿]")


def _to_ascii(m: re.Match[str]) -> str:
    return chr(ord(m[0]) - 0xFEE0)


def _ascii_forms(text: str) -> str:
    """``text`` with its fullwidth letters, digits and separators written in ASCII."""
    return text if text.isascii() else _FULLWIDTH.sub(_to_ascii, text)


@dataclass(frozen=True, slots=True)
class Finding:
    """Sensitive text at ``text[start:end]``; ``kind`` names the format (``cn_mobile``,
    ``visa``, ``github``, ...). It never holds the text itself."""

    category: str
    start: int
    end: int
    kind: str = ""


def placeholder(category: str) -> str:
    """What replaces a finding of ``category``: ``[EMAIL]``, ``[KEYWORD]``, ``[NAME]`` for
    ``custom:name``."""
    known = PLACEHOLDERS.get(category)
    if known is not None:
        return known
    return f"[{category.removeprefix('custom:').upper()}]"


class Detector:
    """Finds sensitive content; built once, then shared (it holds no per-request state)."""

    def __init__(self, config: PrivacyConfig | None = None) -> None:
        config = config or PrivacyConfig()
        on = CATEGORIES if config.categories is None else config.categories
        self._builtin = BuiltinScanner(on)
        self._patterns = tuple(
            (f"custom:{name}", re.compile(pattern)) for name, pattern in config.patterns.items()
        )
        self._keywords = _Keywords(config.keywords) if config.keywords else None
        names = set(self._builtin.categories) | {name for name, _ in self._patterns}
        if self._keywords is not None:
            names.add("keyword")
        #: every category this detector can report
        self.categories: frozenset[str] = frozenset(names)

    # ------------------------------------------------------------------------------ text

    def scan_text(self, text: str) -> list[Finding]:
        """The findings in ``text``: sorted, and never overlapping (overlapping matches are
        merged into one finding named after the first, longest one)."""
        return [
            Finding(category, start, end, kind) for start, end, category, kind in self._hits(text)
        ]

    def redact_text(self, text: str) -> tuple[str, frozenset[str]]:
        """``text`` with each finding replaced by its placeholder, and the categories found."""
        hits = self._hits(text)
        if not hits:
            return text, frozenset()
        parts: list[str] = []
        pos = 0
        for start, end, category, _ in hits:
            parts += (text[pos:start], placeholder(category))
            pos = end
        parts.append(text[pos:])
        return "".join(parts), frozenset(h[2] for h in hits)

    def _hits(self, text: str) -> list[Hit]:
        if not text:
            return []
        text = _ascii_forms(text)
        hits: list[Hit] = []
        self._builtin.scan(text, hits)
        for name, pattern in self._patterns:
            hits += (
                (m.start(), m.end(), name, name)
                for m in pattern.finditer(text)
                if m.end() > m.start()
            )
        if self._keywords is not None:
            self._keywords.scan(text, hits)
        return _merge(hits) if hits else hits

    # --------------------------------------------------------------------------- requests

    def scan_request(self, body: dict[str, Any]) -> frozenset[str]:
        """The categories found anywhere ``body`` carries text (see ``request_text``)."""
        found: set[str] = set()

        def scan(text: str) -> None:
            found.update(h[2] for h in self._hits(text))

        edit_texts(body, scan)
        return frozenset(found)

    def redact_request(self, body: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
        """A copy of ``body`` with every finding replaced by its placeholder, and the
        categories found. ``body`` itself is never changed; when nothing is found it is
        returned as it is. Tool-call arguments that are JSON stay valid JSON."""
        found: set[str] = set()

        def redact(text: str) -> str | None:
            new, categories = self.redact_text(text)
            found.update(categories)
            return new if categories else None

        new_body = edit_texts(body, redact)
        if new_body is None:
            return body, frozenset()
        return new_body, frozenset(found)


class _Keywords:
    """The operator's words and phrases, found in any case.

    The text is lower-cased once and each word found with ``str.find``, much faster than
    one case-insensitive pattern, which the regex engine must try at every position. Where
    lower-casing changes a text's length (a handful of characters, such as ``İ``), the
    case-insensitive pattern is used instead, so that positions stay right.
    """

    def __init__(self, keywords: list[str]) -> None:
        words = {_FULLWIDTH.sub(_to_ascii, w.strip()) for w in keywords if w.strip()}
        self._lowered = sorted({w.lower() for w in words}, key=len, reverse=True)
        self._pattern = re.compile(
            "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE
        )

    def scan(self, text: str, out: list[Hit]) -> None:
        lowered = text.lower()
        if len(lowered) != len(text):
            out += (
                (m.start(), m.end(), "keyword", "keyword") for m in self._pattern.finditer(text)
            )
            return
        for word in self._lowered:
            pos = lowered.find(word)
            while pos >= 0:
                out.append((pos, pos + len(word), "keyword", "keyword"))
                pos = lowered.find(word, pos + len(word))


def _merge(hits: list[Hit]) -> list[Hit]:
    """Sorted, with overlapping hits merged: the earliest (then longest) names the merge."""
    hits.sort(key=lambda h: (h[0], h[0] - h[1]))
    merged = [hits[0]]
    for hit in hits[1:]:
        last = merged[-1]
        if hit[0] < last[1]:
            if hit[1] > last[1]:
                merged[-1] = (last[0], hit[1], last[2], last[3])
            continue
        merged.append(hit)
    return merged
