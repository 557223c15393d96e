"""HTTPS serving: the server's TLS context, TLS 1.2 at least.

uvicorn builds a context per worker process from its ``ssl_context_factory``, which must
therefore be picklable: :func:`context_factory` returns a ``functools.partial`` over plain
:class:`TlsSettings`. Certificates and keys are checked once before any worker starts
(:func:`server_context` raises ConfigError naming the file and the fix), so a mistake stops
``turnout serve`` with a message instead of a worker's traceback.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.config import TlsConfig
from turnout.exceptions import ConfigError

__all__ = ["TlsSettings", "context_factory", "server_context"]

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert_file: str
    key_file: str | None = None
    password: str | None = None
    min_version: str = "1.2"

    @classmethod
    def from_config(
        cls, tls: TlsConfig, *, cert_file: str | None = None, key_file: str | None = None
    ) -> TlsSettings | None:
        """The settings from ``server.tls``, the command line's files winning; None: plain
        HTTP."""
        cert = cert_file or tls.cert_file
        if cert is None:
            if key_file:
                raise ConfigError("--ssl-keyfile needs --ssl-certfile (or server.tls.cert_file)")
            return None
        key = key_file or (tls.key_file if not cert_file else None)
        password = tls.key_password.get_secret_value() if tls.key_password else None
        return cls(_path(cert), _path(key) if key else None, password, tls.min_version)


def _path(name: str) -> str:
    return str(Path(name).expanduser())


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context: the certificate and key loaded, TLS ``min_version`` or later, no
    compression or renegotiation, HTTP/1.1 offered by ALPN."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.min_version]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file, settings.password)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"server.tls: no such file {exc.filename}; check cert_file and key_file "
            "(or --ssl-certfile / --ssl-keyfile)"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"server.tls: cannot load the certificate {settings.cert_file} with key "
            f"{settings.key_file or '(in the certificate file)'}: {_reason(exc)}; give a PEM "
            "certificate and its matching private key (and key_password if the key is "
            "encrypted)"
        ) from None
    return context


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    return str(reason or type(exc).__name__).lower().replace("_", " ")


def _uvicorn_factory(settings: TlsSettings, config: Any, default: Any) -> ssl.SSLContext:
    return server_context(settings)


def context_factory(settings: TlsSettings) -> Callable[[Any, Any], ssl.SSLContext]:
    """uvicorn's ``ssl_context_factory`` for these settings (picklable, for the workers)."""
    return functools.partial(_uvicorn_factory, settings)
