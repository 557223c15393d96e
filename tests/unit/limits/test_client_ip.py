"""The client's address: the socket peer, or X-Forwarded-For from trusted proxies only."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.policies.limits.client_ip import ClientAddress


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    headers = [(b"host", b"gw")] + [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return {"client": (peer, 50000) if peer else None, "headers": headers}


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    addresses = ClientAddress()
    assert addresses.of(scope("198.51.100.7", "203.0.113.9")) == "198.51.100.7"


def test_a_peer_that_is_not_trusted_cannot_forward() -> None:
    addresses = ClientAddress(["10.0.0.0/8"])
    assert addresses.of(scope("198.51.100.7", "203.0.113.9")) == "198.51.100.7"


def test_a_trusted_proxy_names_the_client() -> None:
    addresses = ClientAddress(["10.0.0.0/8"])
    assert addresses.of(scope("10.1.2.3", "203.0.113.9")) == "203.0.113.9"


def test_a_spoofed_left_part_is_not_believed() -> None:
    """The client wrote 1.1.1.1 itself; our proxy appended the address it saw."""
    addresses = ClientAddress(["10.0.0.0/8"])
    assert addresses.of(scope("10.1.2.3", "1.1.1.1, 203.0.113.9")) == "203.0.113.9"


def test_chains_of_trusted_proxies_are_walked() -> None:
    addresses = ClientAddress(["10.0.0.0/8", "192.0.2.1"])
    got = addresses.of(scope("10.1.2.3", "1.1.1.1, 203.0.113.9, 192.0.2.1, 10.9.9.9"))
    assert got == "203.0.113.9"


def test_when_every_hop_is_trusted_the_first_is_the_client() -> None:
    addresses = ClientAddress(["10.0.0.0/8"])
    assert addresses.of(scope("10.1.2.3", "10.5.5.5, 10.6.6.6")) == "10.5.5.5"


def test_a_malformed_hop_stops_the_walk_at_the_last_trusted_address() -> None:
    addresses = ClientAddress(["10.0.0.0/8"])
    assert addresses.of(scope("10.1.2.3", "203.0.113.9, bogus, 10.6.6.6")) == "10.6.6.6"
    assert addresses.of(scope("10.1.2.3", "not-an-ip")) == "10.1.2.3"


def test_repeated_header_lines_are_one_list_in_order() -> None:
    addresses = ClientAddress(["10.0.0.0/8"])
    assert addresses.of(scope("10.1.2.3", "1.1.1.1", "203.0.113.9, 10.2.2.2")) == "203.0.113.9"


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("::1", "2001:db8::5", "2001:db8::5"),
        ("::ffff:127.0.0.1", "203.0.113.9", "203.0.113.9"),  # IPv4-mapped peer
        ("127.0.0.1", "::ffff:127.0.0.9, 2001:db8::5", "2001:db8::5"),
    ],
)
def test_ipv6(peer: str, forwarded: str, client: str) -> None:
    addresses = ClientAddress(["127.0.0.0/8", "::1/128"])
    assert addresses.of(scope(peer, forwarded)) == client


def test_a_unix_socket_peer_has_no_address() -> None:
    assert ClientAddress().of(scope(None)) == "unix"
    assert ClientAddress(["10.0.0.0/8"]).of(scope(None, "203.0.113.9")) == "unix"


def test_no_header_means_the_peer() -> None:
    assert ClientAddress(["10.0.0.0/8"]).of(scope("10.1.2.3")) == "10.1.2.3"
