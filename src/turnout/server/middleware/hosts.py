"""Trusted hosts: requests whose ``Host`` header names another site get 400.

This defeats DNS rebinding, where a web page on ``evil.example`` makes its own name resolve
to the gateway's address and then reads the gateway's answers as same-origin responses. The
``Host`` header of such a request still says ``evil.example``.

``hosts`` lists the accepted names (``*.example.com`` covers every subdomain, not the name
itself). Without ``server.trusted_hosts`` (see :func:`default_hosts`), a gateway listening on a
loopback address (the default, 127.0.0.1) accepts only ``localhost``, ``*.localhost``,
``127.0.0.1`` and ``::1``: the attack above targets gateways on developer machines. One
listening on any other address accepts every host, since it cannot guess the names it is
reached by behind a load balancer.
"""

from __future__ import annotations

from turnout.exceptions import InvalidRequest
from turnout.server.http import ASGIApp, Receive, Scope, Send
from turnout.server.middleware._asgi import header, reject

__all__ = ["LISTEN_HOST_ENV", "LOOPBACK_NAMES", "TrustedHosts", "default_hosts", "host_name"]

#: set by ``turnout serve`` for its workers: the address it listens on (``--host``)
LISTEN_HOST_ENV = "TURNOUT_LISTEN_HOST"

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "*.localhost"]
_KNOWN_MAX = 256


def default_hosts(listen_host: str) -> list[str] | None:
    """The accepted names when none are configured: see the module docstring."""
    loopback = listen_host in ("localhost", "::1") or listen_host.startswith("127.")
    return list(LOOPBACK_NAMES) if loopback else None


def host_name(value: bytes) -> str:
    """The host of a ``Host`` header value, lower case, without port or IPv6 brackets."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text[1:]
    return text.partition(":")[0]


class _Names:
    """Exact names and ``*.suffix`` patterns, matched without regular expressions."""

    def __init__(self, patterns: list[str]) -> None:
        names = [p.removeprefix("[").removesuffix("]") for p in patterns]
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def __contains__(self, name: str) -> bool:
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    def __str__(self) -> str:
        return ", ".join(sorted(self.exact) + ["*" + s for s in self.suffixes])


class TrustedHosts:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, hosts: list[str]) -> None:
        self.app = app
        self.names = _Names(hosts)
        #: Host header value -> accepted; a client sends the same one every time
        self._known: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = header(scope, b"host") or b""
            accepted = self._known.get(raw)
            if accepted is None:
                accepted = self._judge(raw)
            if not accepted:
                await reject(send, self._refusal(host_name(raw), self.names))
                return
        await self.app(scope, receive, send)

    def _judge(self, raw: bytes) -> bool:
        accepted = bool(raw) and host_name(raw) in self.names
        if len(self._known) < _KNOWN_MAX:  # bounded: foreign names do not fill memory
            self._known[raw] = accepted
        return accepted

    def _refusal(self, name: str, names: _Names) -> InvalidRequest:
        shown = repr(name[:100]) if name else "no Host header"
        return InvalidRequest(
            f"This gateway does not serve host {shown}; it answers to: {names}. Reach it by "
            "one of those names, or add the name to server.trusted_hosts.",
            code="untrusted_host",
        )
