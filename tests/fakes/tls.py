"""Throw-away TLS certificates (trustme) for the HTTPS fakes: a private CA that no system
trust store knows, and a server certificate it signed."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Certs:
    ca: trustme.CA
    server_cert: trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        """For the server side (``FakeUpstream(ssl_context=...)``, aiohttp's TCPSite)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the private CA (and nothing else)."""
        context = ssl.create_default_context(cadata=self.ca.cert_pem.bytes().decode("ascii"))
        return context

    def write_ca(self, path: Path) -> Path:
        """The CA certificate as a PEM file (what ``tls_ca_file`` names)."""
        self.ca.cert_pem.write_to_path(str(path))
        return path


def make_certs(*identities: str) -> Certs:
    """A new CA and a server certificate for ``identities`` (default: 127.0.0.1, localhost)."""
    ca = trustme.CA()
    return Certs(ca, ca.issue_cert(*(identities or ("127.0.0.1", "localhost"))))
