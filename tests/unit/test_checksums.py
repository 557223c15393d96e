"""turnout.policies.checksums: the validators behind the privacy categories, on the edge cases
that separate a real identifier from a number of the same shape."""

from __future__ import annotations

import datetime

import pytest

from turnout.policies.checksums import (
    card_brand,
    cn_id_valid,
    iban_valid,
    ipv4_valid,
    ipv6_valid,
    luhn_valid,
    nanp_valid,
    ssn_valid,
)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("79927398713", True),  # the textbook example
        ("79927398710", False),
        ("0000000000000000", True),
        ("5555555555554444", True),
        ("5555555555554445", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),  # 13 digits
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),  # the 2-series
        ("378282246310005", "amex"),
        ("36227206271667", "diners"),
        ("3566002020360505", "jcb"),
        ("6011111111111117", "discover"),
        ("6200000000000005", "unionpay"),
        ("6212262000112233442", None),  # UnionPay length, Luhn wrong
        ("4111111111111112", None),  # Luhn wrong
        ("411111111111111", None),  # Visa has no 15-digit numbers
        ("1234567812345670", None),  # Luhn right, no network starts with 1
        ("490154203237518", None),  # an IMEI: passes Luhn, 15 digits starting with 4
        ("2024031512345678", None),  # date-like order number
        ("378282246310005" + "0000", None),  # 19 digits: Amex has 15
        ("411111111111", None),  # 12 digits
        ("41111111111111111111", None),  # 20 digits
    ],
)
def test_card_brand(digits: str, brand: str | None) -> None:
    assert card_brand(digits) == brand


TODAY = datetime.date(2026, 11, 22)


def complete(body: str) -> str:
    """``body`` (17 digits) with its right MOD 11-2 check character, computed here."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("11010519491231002X", True),  # the example in GB 11643-1999
        ("11010519491231002x", True),  # lower-case check character
        (complete("44030519900101001"), True),
        ("110105194912310021", False),  # wrong check character
        (complete("44030519900230001"), False),  # 30 February
        (complete("11010520261201001"), False),  # born after TODAY
        (complete("11010520261122001"), True),  # born TODAY
        (complete("99010119800101123"), False),  # no province 99
        (complete("11010518800101001"), False),  # 1880: before 1890
        ("11010519491231002", False),  # 17 characters
        ("1101051949123100X2", False),  # X not at the end
        ("１１０１０５１９４９１２３１００２X", False),  # fullwidth: normalised before, not here
    ],
)
def test_cn_resident_id(number: str, valid: bool) -> None:
    assert cn_id_valid(number, today=TODAY) is valid


def test_cn_resident_id_check_character_is_mod_11_2() -> None:
    # every check character 0-9 and X occurs; exactly one of them is right for each body
    body = "44030519900101001"
    right = [c for c in "0123456789X" if cn_id_valid(body + c, today=TODAY)]
    assert len(right) == 1


@pytest.mark.parametrize(
    ("area", "group", "serial", "valid"),
    [
        ("536", "22", "8726", True),
        ("000", "12", "3456", False),
        ("666", "45", "1234", False),
        ("912", "34", "5678", False),  # 9xx: ITINs, never an SSN
        ("123", "00", "4567", False),
        ("123", "45", "0000", False),
    ],
)
def test_ssn(area: str, group: str, serial: str, valid: bool) -> None:
    assert ssn_valid(area, group, serial) is valid


@pytest.mark.parametrize(
    ("area", "exchange", "valid"),
    [("415", "555", True), ("115", "555", False), ("415", "155", False), ("911", "555", False)],
)
def test_nanp(area: str, exchange: str, valid: bool) -> None:
    assert nanp_valid(area, exchange) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89370400440532013000", True),
        ("GB82WEST12345698765432", True),
        ("FR1420041010050500013M02606", True),
        ("NO9386011117947", True),  # the shortest
        ("DE88370400440532013000", False),  # check digits
        ("DE8937040044053201300", False),  # one short for Germany
        ("GB82WEST123456987654", False),
        ("CN1234567890123456789012", False),  # no IBAN in China
        ("de89370400440532013000", False),  # the scanner upper-cases nothing
        ("DE89 3704 0044 0532 0130 00", False),  # spaces are removed by the caller
    ],
)
def test_iban(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("192.168.1.20", True),
        ("8.8.8.8", True),
        ("10.0.0.0", True),
        ("256.1.1.1", False),
        ("1.2.3", False),
        ("1.2.3.4.5", False),
        ("1.2.3.0004", False),
        ("127.0.0.1", False),  # loopback identifies nobody
        ("0.0.0.0", False),
        ("255.255.255.0", False),  # a netmask
    ],
)
def test_ipv4(text: str, valid: bool) -> None:
    assert ipv4_valid(text) is valid


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2001:db8:85a3::8a2e:370:7334", True),
        ("2001:db8:85a3:0:0:8a2e:370:7334", True),
        ("fe80::1", True),
        ("fe80::1ff:fe23:4567:890a%eth0", True),
        ("::ffff:192.168.1.1", True),
        ("::ffff:127.0.0.1", False),  # loopback, mapped
        ("::1", False),
        ("::", False),
        ("1::2", False),  # a Python slice
        ("add::be", False),
        ("12:30:45", False),  # a time
        ("00:1A:2B:3C:4D:5E", False),  # a MAC address
        ("2001:db8:::1", False),
    ],
)
def test_ipv6(text: str, valid: bool) -> None:
    assert ipv6_valid(text) is valid
