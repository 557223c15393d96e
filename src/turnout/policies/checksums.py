"""Check digits and plausibility checks behind the privacy detector's categories.

Each function takes the candidate as found in the text (digits, possibly with separators
already removed by the caller) and answers whether it is a well-formed identifier. They are
pure and cheap; the detector calls them only on candidates its patterns already found.
"""

from __future__ import annotations

import datetime
import ipaddress

__all__ = [
    "card_brand",
    "cn_id_valid",
    "iban_valid",
    "ipv4_valid",
    "ipv6_valid",
    "luhn_valid",
    "nanp_valid",
    "ssn_valid",
]

# ------------------------------------------------------------------------------ bank cards


#: a digit's contribution to the Luhn sum when it is doubled
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits."""
    total = 0
    for char in digits[-1::-2]:
        total += ord(char) - 48
    for char in digits[-2::-2]:
        total += _DOUBLED[ord(char) - 48]
    return total % 10 == 0


#: (network, issuer prefix range low, high, allowed lengths); a number's prefix is compared
#: as an integer of as many leading digits as ``low`` has
_CARD_TABLE: tuple[tuple[str, int, int, frozenset[int]], ...] = (
    ("visa", 4, 4, frozenset({13, 16, 19})),
    ("mastercard", 51, 55, frozenset({16})),
    ("mastercard", 2221, 2720, frozenset({16})),
    ("mir", 2200, 2204, frozenset({16, 17, 18, 19})),
    ("amex", 34, 34, frozenset({15})),
    ("amex", 37, 37, frozenset({15})),
    ("diners", 300, 305, frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", 36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", 38, 39, frozenset({16, 17, 18, 19})),
    ("jcb", 3528, 3589, frozenset({16, 17, 18, 19})),
    ("unionpay", 62, 62, frozenset({16, 17, 18, 19})),
    ("discover", 6011, 6011, frozenset({16, 17, 18, 19})),
    ("discover", 644, 649, frozenset({16, 17, 18, 19})),
    ("discover", 65, 65, frozenset({16, 17, 18, 19})),
    ("maestro", 50, 50, frozenset(range(13, 20))),
    ("maestro", 56, 58, frozenset(range(13, 20))),
    ("maestro", 63, 63, frozenset(range(13, 20))),
    ("maestro", 67, 67, frozenset(range(13, 20))),
)
#: with the divisor that turns a number's first four digits into a prefix as wide as ``low``
_CARD_RANGES = tuple((*row, 10 ** (4 - len(str(row[1])))) for row in _CARD_TABLE)


def card_brand(digits: str) -> str | None:
    """The card network whose number this could be (issuer prefix, length and Luhn), or None.

    ``digits`` holds ASCII digits only. Numbers of no known network are refused even when
    their Luhn digit is right: one random number in ten passes Luhn alone.
    """
    if not 13 <= len(digits) <= 19:
        return None
    first4 = int(digits[:4])
    for brand, low, high, lengths, scale in _CARD_RANGES:
        if low <= first4 // scale <= high and len(digits) in lengths:
            return brand if luhn_valid(digits) else None
    return None


# ------------------------------------------------------------------ national identifiers

#: first two digits of a resident ID: the province-level division (GB/T 2260), plus 71
#: (Taiwan) and 81/82/83 (residence permits of Hong Kong, Macao and Taiwan residents)
_CN_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
#: the oldest birth year accepted on a resident ID
_CN_OLDEST = 1890
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date_exists(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS[month - 1]:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return month != 2 or day <= 28 or leap


def cn_id_valid(number: str, today: datetime.date | None = None) -> bool:
    """A mainland-China resident identity card number (GB 11643-1999, 18 characters).

    Checks the province code, that the birth date exists and is not in the future, and the
    ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``, either case).
    """
    body = number[:17]
    if len(number) != 18 or not body.isdigit() or not body.isascii():
        return False
    if int(number[:2]) not in _CN_PROVINCES:
        return False
    born = (int(number[6:10]), int(number[10:12]), int(number[12:14]))
    if born[0] < _CN_OLDEST or not _date_exists(*born):
        return False
    now = today or datetime.date.today()
    if born > (now.year, now.month, now.day):
        return False
    total = 0
    for char, weight in zip(body, _CN_WEIGHTS, strict=True):
        total += (ord(char) - 48) * weight
    return _CN_CHECK[total % 11] == number[17].upper()


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """A US Social Security number in its issued ranges (``AAA-GG-SSSS``)."""
    return (
        area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def nanp_valid(area: str, exchange: str) -> bool:
    """A North American number: area code and exchange both begin with 2-9."""
    return area[0] not in "01" and exchange[0] not in "01" and area[1:] != "11"


# ---------------------------------------------------------------------------------- IBAN

#: IBAN length per country (SWIFT IBAN registry)
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """An IBAN without spaces, upper case: known country, its length, and mod 97 == 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


# ---------------------------------------------------------------------------- IP addresses


def ipv4_valid(text: str) -> bool:
    """Four decimal octets, each 0-255, that identify a host: not the unspecified address,
    not loopback, and not a netmask or broadcast address (``255.x.x.x``)."""
    parts = text.split(".")
    if len(parts) != 4 or any(not 1 <= len(p) <= 3 for p in parts):
        return False
    octets = [int(p) for p in parts]
    if any(o > 255 for o in octets):
        return False
    return octets[0] not in (0, 127, 255)


def ipv6_valid(text: str) -> bool:
    """An IPv6 address (``ipaddress`` rules, zone allowed) that is not ``::`` or ``::1``, with
    three groups written out or two whose first has three digits or more (``fe80::1``), so
    that slices like ``a[1::2]`` and words like ``add::be`` do not count."""
    address, _, _zone = text.partition("%")
    groups = [g for g in address.split(":") if g]
    if len(groups) == 2:
        if len(groups[0]) < 3 or not any(c.isdigit() for c in address):
            return False
    elif len(groups) < 3:
        return False
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        return False
    mapped = parsed.ipv4_mapped
    if mapped is not None:
        return ipv4_valid(str(mapped))
    return not (parsed.is_unspecified or parsed.is_loopback)
