"""The built-in categories of the privacy detector, and the scan that finds them.

Numbers (phones, IDs, cards, IBANs, IPv4) are found by ``privacy_numbers``; this module
adds the categories that start from a telling character: e-mail from ``@``, IPv6 from
``::`` or a chain of colons, API keys from their prefixes (``sk-``, ``ghp_``, ``AKIA``, ...,
found by one pass per trigger character: ``-``, ``_``, ``A``, ``eyJ``) and private keys from
their ``-----BEGIN`` line. A scan skips a category at once when its trigger character is
absent (a ``memchr``); each candidate must then pass its validator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from turnout.policies.checksums import ipv6_valid
from turnout.policies.privacy_numbers import NUMBER_CATEGORIES, Hit, scan_numbers

__all__ = ["CATEGORIES", "PLACEHOLDERS", "BuiltinScanner", "Hit"]

#: the built-in categories, in the order they are documented
CATEGORIES: tuple[str, ...] = (
    "email",
    "phone",
    "national_id",
    "bank_card",
    "iban",
    "ip_address",
    "api_key",
    "private_key",
)

#: what replaces a finding of each built-in category when a request is redacted
PLACEHOLDERS: dict[str, str] = {name: f"[{name.upper()}]" for name in CATEGORIES}


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


# ------------------------------------------------------------------------------- e-mail

_EMAIL_DOMAIN = _c(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_LOCAL_MAX = 64
_SCP_PATH = _c(r":[A-Za-z0-9_~/.-]")


def _scan_email(text: str, out: list[Hit]) -> None:
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        start = at
        while start > 0 and at - start < _LOCAL_MAX and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and text[start] == ".":
            start += 1
        if start == at or text[at - 1] == "." or ".." in text[start:at]:
            continue
        if _SCP_PATH.match(text, m.end()):
            continue  # git@github.com:org/repo.git is a remote, not a mailbox
        if "://" in text[text.rfind(" ", 0, start) + 1 : start]:
            continue  # https://user:token@host/ is a URL's user info
        out.append((start, m.end(), "email", "email"))


# --------------------------------------------------------------------------------- IPv6

#: "::", or four colon-separated groups: every IPv6 address has one or the other, a time
#: of day (12:30:45) has neither
_V6_HINT = _c(r":(?::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")
_V6 = _c(
    r"(?<![0-9A-Za-z_:.%])[0-9A-Fa-f:]{2,39}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?"
    r"(?:%[0-9A-Za-z_.]{1,16})?(?![0-9A-Za-z_:%]|\.[0-9])"
)


def _v6_shaped(text: str) -> bool:
    colons = text.count(":")
    return "::" in text or colons == 7 or (colons == 6 and "." in text)


_HEX_OR_COLON = frozenset("0123456789abcdefABCDEF:")


def _scan_ipv6(text: str, out: list[Hit]) -> None:
    done = 0
    for hint in _V6_HINT.finditer(text):
        start = hint.start()
        if start < done:
            continue
        while start > done and text[start - 1] in _HEX_OR_COLON and hint.start() - start < 39:
            start -= 1
        m = _V6.match(text, start)
        if m is not None and _v6_shaped(m[0]) and ipv6_valid(m[0]):
            out.append((start, m.end(), "ip_address", "ipv6"))
            done = m.end()


# ----------------------------------------------------------------------------- API keys


@dataclass(frozen=True, slots=True)
class _KeyRule:
    kind: str
    #: the whole key, matched where its trigger was found (after stepping back to its start)
    pattern: re.Pattern[str]
    check: Callable[[str], bool]


_LONG_RUN = _c(r"[A-Za-z0-9]{16,}")
_NOT_DIGITS = str.maketrans("", "", "".join(c for c in map(chr, range(128)) if not c.isdigit()))


def _random_looking(token: str) -> bool:
    """Two digits or more and an unbroken alphanumeric stretch of 16: a generated secret,
    not a hyphenated name such as ``sk-learn-tutorial-for-beginners``."""
    return len(token.translate(_NOT_DIGITS)) >= 2 and _LONG_RUN.search(token) is not None


def _mixed_case(token: str) -> bool:
    return not token.islower() and not token.isupper()


def _any(token: str) -> bool:
    return True


_NB = r"(?<![A-Za-z0-9_\-])"  # no key character before
_NA = r"(?![A-Za-z0-9_\-])"  # and none after
_NB_ = r"(?<![A-Za-z0-9_])"
_NA_ = r"(?![A-Za-z0-9_])"

_ANTHROPIC = _KeyRule(
    "anthropic",
    _c(rf"{_NB}sk-ant-(?:[a-z]{{2,8}}[0-9]{{2}}-)?[A-Za-z0-9_\-]{{32,}}{_NA}"),
    _random_looking,
)
_OPENAI = _KeyRule("openai", _c(rf"{_NB}sk-[A-Za-z0-9_\-]{{20,}}{_NA}"), _random_looking)
_GITLAB = _KeyRule("gitlab", _c(rf"{_NB}glpat-[A-Za-z0-9_\-]{{20,}}{_NA}"), _any)
_SLACK = _KeyRule("slack", _c(rf"{_NB}xox[abprs]-[A-Za-z0-9\-]{{20,}}{_NA}"), _random_looking)
_STRIPE = _KeyRule(
    "stripe", _c(rf"{_NB_}[sr]k_(?:live|test)_[A-Za-z0-9]{{20,}}{_NA_}"), _random_looking
)
_GITHUB = _KeyRule("github", _c(rf"{_NB_}gh[pousr]_[A-Za-z0-9]{{36,251}}{_NA_}"), _any)
_GITHUB_PAT = _KeyRule("github", _c(rf"{_NB_}github_pat_[A-Za-z0-9_]{{60,251}}{_NA_}"), _any)
_HUGGINGFACE = _KeyRule("huggingface", _c(rf"{_NB_}hf_[A-Za-z0-9]{{30,}}{_NA_}"), _mixed_case)
_GROQ = _KeyRule("groq", _c(rf"{_NB_}gsk_[A-Za-z0-9]{{40,}}{_NA_}"), _any)
_AWS = _KeyRule(
    "aws_access_key_id", _c(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"), _any
)
_GOOGLE = _KeyRule("google", _c(rf"{_NB}AIza[A-Za-z0-9_\-]{{35}}{_NA}"), _any)
_JWT = _KeyRule(
    "jwt",
    _c(
        r"(?<![A-Za-z0-9_\-.])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}"
        r"\.[A-Za-z0-9_\-]{16,}(?![A-Za-z0-9_\-])"
    ),
    _any,
)

#: trigger character -> (a pattern that starts with it and names the prefix found, the
#: rules to try for each name, and how far back from the trigger the key starts)
_TRIGGERS: tuple[tuple[str, re.Pattern[str], dict[str, tuple[int, tuple[_KeyRule, ...]]]], ...] = (
    (
        "-",
        _c(r"-(?:(?<=sk-)(?P<sk>)|(?<=glpat-)(?P<glpat>)|(?<=xox[abprs]-)(?P<xox>))"),
        {"sk": (2, (_ANTHROPIC, _OPENAI)), "glpat": (5, (_GITLAB,)), "xox": (4, (_SLACK,))},
    ),
    (
        "_",
        _c(
            r"_(?:(?<=github_)(?P<pat>)|(?<=gh[pousr]_)(?P<gh>)|(?<=gsk_)(?P<gsk>)"
            r"|(?<=[sr]k_)(?P<stripe>)|(?<=hf_)(?P<hf>))"
        ),
        {
            "pat": (6, (_GITHUB_PAT,)),
            "gh": (3, (_GITHUB,)),
            "gsk": (3, (_GROQ,)),
            "stripe": (2, (_STRIPE,)),
            "hf": (2, (_HUGGINGFACE,)),
        },
    ),
    (
        "A",
        _c(r"A(?:(?=KIA|SIA)(?P<aws>)|(?=Iza)(?P<google>))"),
        {"aws": (0, (_AWS,)), "google": (0, (_GOOGLE,))},
    ),
    ("J", _c(r"eyJ(?P<jwt>)"), {"jwt": (0, (_JWT,))}),
)


def _scan_keys(text: str, out: list[Hit]) -> None:
    for char, trigger, prefixes in _TRIGGERS:
        if char not in text:
            continue
        for found in trigger.finditer(text):
            back, rules = prefixes[found.lastgroup or ""]
            start = found.start() - back
            for rule in rules:
                m = rule.pattern.match(text, start)
                if m is not None and rule.check(m[0]):
                    out.append((start, m.end(), "api_key", rule.kind))


# --------------------------------------------------------------------------- private keys

_PEM_BEGIN = _c(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----")
_PEM_END = _c(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
#: the body of a block whose END line is missing (a truncated paste): base64 lines and
#: "Name: value" headers, stopping at the first line that is neither
_PEM_BODY = _c(
    r"(?:\s*(?:[A-Za-z0-9+/]{8,}={0,2}|=[A-Za-z0-9+/]{4}|[A-Za-z][A-Za-z-]*: [^\r\n]*))*"
)


def _scan_private_keys(text: str, out: list[Hit]) -> None:
    pos = 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        end = _PEM_END.search(text, begin.end()) or _PEM_BODY.match(text, begin.end())
        stop = end.end() if end is not None else begin.end()
        out.append((begin.start(), stop, "private_key", begin[1].lower().replace(" ", "_")))
        pos = stop


# ------------------------------------------------------------------------------ scanner


class BuiltinScanner:
    """Scans a text for the built-in categories that are switched on."""

    def __init__(self, categories: Iterable[str] = CATEGORIES) -> None:
        on = frozenset(categories)
        unknown = on - set(CATEGORIES)
        if unknown:
            raise ValueError(
                f"unknown categories {sorted(unknown)}; choose from {', '.join(CATEGORIES)}"
            )
        self.categories = on
        self._numbers = on & NUMBER_CATEGORIES
        self._email = "email" in on
        self._ipv6 = "ip_address" in on
        self._keys = "api_key" in on
        self._pem = "private_key" in on

    def scan(self, text: str, out: list[Hit]) -> None:
        """Append the hits found in ``text`` to ``out`` (unsorted, possibly overlapping)."""
        if self._numbers:
            scan_numbers(text, self._numbers, out)
        if self._email and "@" in text:
            _scan_email(text, out)
        if self._ipv6 and ":" in text:
            _scan_ipv6(text, out)
        if self._pem and "-----BEGIN" in text:
            _scan_private_keys(text, out)
        if self._keys:
            _scan_keys(text, out)
