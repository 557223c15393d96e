"""The privacy categories written with digits: phone numbers, national IDs, bank cards, IBANs
and IPv4 addresses.

One pass over the text finds the *runs*: seven digits or more joined by separators
(``+86 138-0013-8000``, ``4111 1111 1111 1111``, ``2024-03-15 14``), dotted quads, and
two capital letters followed by two digits (where an IBAN may start). Each rule then runs
only in the window around a run whose *shape*, the lengths of its digit groups, it can
match, and every match must pass its validator.

Performance notes, for whoever changes a pattern. Python's ``re`` skips ahead to the next
possible start by itself only when a pattern begins with one literal character or one
character class (not ``\\b``, not a look-behind, not ``{n}``); so the run pattern starts
with a single class and checks what comes before with a look-behind *after* it. The rules
themselves, with their leading look-behinds, only ever see a window of a few dozen
characters.

Boundaries are ASCII classes, never ``\\b``: ``\\b`` sees no boundary between a Chinese
character and a digit, so ``手机13800138000`` would be missed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from turnout.policies.checksums import (
    IBAN_LENGTHS,
    card_brand,
    cn_id_valid,
    iban_valid,
    ipv4_valid,
    nanp_valid,
    ssn_valid,
)

__all__ = ["NUMBER_CATEGORIES", "Hit", "scan_numbers"]

#: (start, end, category, kind)
Hit = tuple[int, int, str, str]

_W = "0-9A-Za-z_"
#: not preceded / not followed by an ASCII letter, digit or underscore
_B = rf"(?<![{_W}])"
_E = rf"(?![{_W}])"
_WORD_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


# ------------------------------------------------------------------------------ validators


def _kind(name: str, valid: bool) -> str | None:
    return name if valid else None


def _digits(text: str) -> str:
    return text.translate(_NOT_DIGITS)


_NOT_DIGITS = str.maketrans("", "", " ()+.-")


def _cn_id(m: re.Match[str]) -> str | None:
    return _kind("cn_resident_id", cn_id_valid(m[1] + m[3] + m[4]))


def _ssn(m: re.Match[str]) -> str | None:
    return _kind("us_ssn", ssn_valid(m[1], m[2], m[3]))


def _card(m: re.Match[str]) -> str | None:
    return card_brand(_digits(m[0]))


def _cn_mobile(m: re.Match[str]) -> str | None:
    return "cn_mobile"


def _cn_landline(m: re.Match[str]) -> str | None:
    area, local = m[1] or m[2], _digits(m[3])
    if len(area) == 3:  # 010 (Beijing) and 02X have eight-digit local numbers
        return _kind("cn_landline", (area == "010" or area[1] == "2") and len(local) == 8)
    return _kind("cn_landline", area[1] in "3456789")


def _international(m: re.Match[str]) -> str | None:
    text = m[0]
    if any(pair in text for pair in ("..", "--", "  ", "((", "))")):
        return None
    if text.count("(") != text.count(")"):
        return None
    return _kind("international", 8 <= len(_digits(text)) <= 15)


def _nanp(m: re.Match[str]) -> str | None:
    return _kind("nanp", nanp_valid(m[1] or m[2], m[3]))


def _ipv4(m: re.Match[str]) -> str | None:
    return _kind("ipv4", ipv4_valid(m[0]))


# ----------------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    pattern: re.Pattern[str]
    #: whether the pattern can match in a run: (shape, longest group, window) -> bool; it
    #: may say yes when the pattern cannot match, never no when it can
    gate: Callable[[str, int, str], bool]
    #: the validator: the kind of the finding (``visa``, ``cn_mobile``, ...) or None
    check: Callable[[re.Match[str]], str | None]


def _has(*shapes: str) -> Callable[[str, int, str], bool]:
    if len(shapes) == 1:
        only = shapes[0]
        return lambda shape, longest, window: only in shape
    return lambda shape, longest, window: any(s in shape for s in shapes)


_RULES: tuple[_Rule, ...] = (
    _Rule(
        "national_id",
        _c(rf"{_B}(\d{{6}})([ -]?)(\d{{8}})\2(\d{{3}}[0-9Xx]){_E}"),
        lambda shape, longest, window: longest >= 17 or ",6,8,3," in shape or ",6,8,4," in shape,
        _cn_id,
    ),
    _Rule(
        "national_id",
        _c(rf"(?<![{_W}-])(\d{{3}})-(\d{{2}})-(\d{{4}})(?![{_W}]|-\d)"),
        _has(",3,2,4,"),
        _ssn,
    ),
    _Rule(
        "bank_card",
        _c(
            rf"{_B}(?:\d{{13,19}}|\d{{4}}([ -])\d{{4}}\1\d{{4}}\1\d{{1,4}}(?:\1\d{{1,3}})?"
            rf"|\d{{4}}([ -])\d{{6}}\2\d{{4,5}}){_E}"
        ),
        lambda shape, longest, window: longest >= 13 or ",4,4,4," in shape or ",4,6," in shape,
        _card,
    ),
    _Rule(
        "phone",
        _c(
            rf"(?<![{_W}+])(?:(?:\+|00)?86[ -]?|\(\+?86\)[ ]?)?"
            rf"1[3-9]\d([ -]?)\d{{4}}\1\d{{4}}{_E}"
        ),
        lambda shape, longest, window: longest >= 11 or ",3,4,4," in shape,
        _cn_mobile,
    ),
    _Rule(
        "phone",
        _c(
            rf"{_B}(?<![0-9][ -])(?:\((0\d{{2,3}})\)[ -]?|(0\d{{2,3}})[ -])"
            rf"([2-9]\d{{2,3}}[ -]?\d{{4}})(?:-\d{{1,5}})?{_E}"
        ),
        _has(",3,8,", ",4,7,", ",4,8,", ",3,4,4,", ",4,3,4,", ",4,4,4,"),
        _cn_landline,
    ),
    _Rule(
        "phone",
        _c(rf"(?<![{_W}+])\+[1-9][0-9 .()\-]{{6,22}}[0-9]{_E}"),
        lambda shape, longest, window: "+" in window,
        _international,
    ),
    _Rule(
        "phone",
        _c(
            rf"(?<![{_W}\-/.+])(?:\+?1[ .\-]?)?(?:\((\d{{3}})\)[ .\-]?|(\d{{3}})[ .\-])"
            rf"(\d{{3}})[ .\-]\d{{4}}(?![{_W}]|[\-/.]\d)"
        ),
        _has(",3,3,4,"),
        _nanp,
    ),
    _Rule(
        "ip_address",
        _c(rf"(?<![{_W}.])(?:\d{{1,3}}\.){{3}}\d{{1,3}}(?![{_W}]|\.\d)"),
        lambda shape, longest, window: window.count(".") >= 3,
        _ipv4,
    ),
)

#: the categories these rules (and the IBAN scan) find
NUMBER_CATEGORIES = frozenset({rule.category for rule in _RULES} | {"iban"})

#: a run: seven digits or more joined by up to two separators, or a dotted quad; or the
#: two check digits of an IBAN after its country code. The look-behinds come after the
#: first character (see the module docstring): (?<![0-9][0-9]) keeps the engine from trying
#: again at every digit of a group too short to make a run, and a date (2024-03-15), the
#: most common run in logs and tables, is stepped over at once
_RUN = _c(
    r"[0-9](?:"
    r"(?<=[A-Z][A-Z][0-9])[0-9]"
    r"|(?<![0-9][0-9])(?![0-9]{3}-[01][0-9]-[0-3][0-9](?![0-9]))"
    r"(?:(?:[ ()+.\-]{0,2}[0-9]){6,}|[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}))"
)
_GROUPS = str.maketrans("()+.-", "     ")
#: a run can be something only when it has a group of 11 digits or more, a "+", three
#: dots, or one of these group sequences (the union of the rules' gates)
_SHAPES = _c(r",(?:6,8,[34]|3,2,4|4,4,4|4,6|3,4,4|3,8|4,[78]|3,3,4|4,3,4),")
#: characters before a run that a rule may start with: "+86 ", "(+1 ", "(010)"
_LEAD = 3
#: characters after a run that a rule's look-ahead may need to see
_TRAIL = 3


def scan_numbers(text: str, categories: frozenset[str], out: list[Hit]) -> None:
    """Append the number findings of ``categories`` in ``text`` to ``out``."""
    rules = [rule for rule in _RULES if rule.category in categories]
    iban = "iban" in categories
    size = len(text)
    for run in _RUN.finditer(text):
        start, end = run.span()
        body = run[0]
        if end - start == 2 and text[start - 1].isupper():
            if iban:
                _scan_iban(text, start - 2, out)
            continue
        if body.isdigit():
            shape, longest = f",{end - start},", end - start
        else:
            lengths = list(map(len, body.translate(_GROUPS).split()))
            shape, longest = f",{','.join(map(str, lengths))},", max(lengths)
        lo, hi = max(0, start - _LEAD), min(size, end + _TRAIL)
        window = text[lo:end]
        if (
            longest < 11
            and not _SHAPES.search(shape)
            and "+" not in window
            and window.count(".") < 3
        ):
            continue
        for rule in rules:
            if rule.gate(shape, longest, window):
                for m in rule.pattern.finditer(text, lo, hi):
                    kind = rule.check(m)
                    if kind is not None:
                        out.append((m.start(), m.end(), rule.category, kind))


# ------------------------------------------------------------------------------------ IBAN

_IBAN_START = _c(rf"{_B}[A-Z]{{2}}[0-9]{{2}}")
#: the longest IBAN (34 characters) written in groups of four
_IBAN_MAX_WRITTEN = 34 + 34 // 4


def _scan_iban(text: str, start: int, out: list[Hit]) -> None:
    """An IBAN beginning at ``start``: unbroken or in groups split by single spaces, as
    long as its country's IBANs, with the right check digits."""
    length = IBAN_LENGTHS.get(text[start : start + 2])
    if length is None or not _IBAN_START.match(text, start):
        return
    chars: list[str] = []
    pos, end = start, min(len(text), start + _IBAN_MAX_WRITTEN)
    while pos < end and len(chars) < length:
        char = text[pos]
        if char.isascii() and (char.isdigit() or char.isupper()):
            chars.append(char)
        elif char != " " or text[pos - 1] == " ":
            return
        pos += 1
    if pos < len(text) and text[pos] in _WORD_CHARS:
        return
    if len(chars) == length and iban_valid("".join(chars)):
        out.append((start, pos, "iban", "iban"))
