"""Who is calling, by network address: the socket peer, or what trusted proxies say.

``X-Forwarded-For`` is believed only when the peer is one of ``trusted_proxies``: anyone else
could write any address there and so escape a per-IP limit. The list is read from the right
(the hop nearest to us) and the first address that is not a trusted proxy is the client; if
every hop is trusted, the left-most one is. A malformed entry stops the walk: the last
address read before it (a trusted proxy) is taken, never the malformed text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

__all__ = ["ClientAddress"]

_Network = IPv4Network | IPv6Network
_Address = IPv4Address | IPv6Address

#: the peer of a connection over a Unix socket (no address)
UNIX_PEER = "unix"


class ClientAddress:
    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        self.trusted: tuple[_Network, ...] = tuple(
            ip_network(cidr, strict=False) for cidr in trusted_proxies
        )

    def of(self, scope: Any) -> str:
        """The client's address for an ASGI ``scope``, as text."""
        client = scope.get("client")
        peer: str = client[0] if client else UNIX_PEER
        if not self.trusted:
            return peer
        forwarded = _forwarded_for(scope["headers"])
        if forwarded is None:
            return peer
        address = _parse(peer)
        if address is None or not self._is_trusted(address):
            return peer
        return self._walk(address, forwarded)

    def _walk(self, address: _Address, forwarded: str) -> str:
        for hop in reversed(forwarded.split(",")):
            parsed = _parse(hop.strip())
            if parsed is None:
                break
            address = parsed
            if not self._is_trusted(address):
                break
        return str(address)

    def _is_trusted(self, address: _Address) -> bool:
        return any(address in network for network in self.trusted)


def _parse(text: str) -> _Address | None:
    """An address, IPv4-mapped IPv6 (``::ffff:10.0.0.1``) as the IPv4 it is; None if invalid."""
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Every ``X-Forwarded-For`` line, in order, joined into one list (None if there is none)."""
    values = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
    return ",".join(values) if values else None
