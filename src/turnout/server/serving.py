"""Running the gateway under uvicorn: sockets, worker processes, TLS, the connection protocol.

The sockets are bound here, before any worker starts, and handed to uvicorn: the public one
(``--host``/``--port``) and, with ``server.admin_listen``, the admin one. Every worker serves
both, and the application tells them apart by the local port a request arrived on
(:mod:`turnout.server.middleware.admin`), so the admin listener works with any number of
workers. Connections speak :class:`~turnout.server.protocol.GatewayProtocol` (uvicorn's
httptools protocol plus header timeout and size limit), over TLS when configured.
"""

from __future__ import annotations

import functools
import logging
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.config import ServerConfig, parse_listen
from turnout.server.protocol import GatewayProtocol
from turnout.server.tls import TlsSettings, context_factory

if TYPE_CHECKING:
    import uvicorn

__all__ = ["Listen", "run"]

log = logging.getLogger("turnout.server")

APP = "turnout.server.app:create_app_from_env"
#: uvicorn's exit status when the application did not start
STARTUP_FAILURE = 3


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how ``turnout serve`` listens (the configuration with the command line's
    overrides applied)."""

    host: str
    port: int
    workers: int
    log_level: str
    tls: TlsSettings | None = None


def run(listen: Listen, server: ServerConfig) -> None:
    """Serve until stopped; exits with status 3 when the application does not start."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = _uvicorn_config(listen, server)
    sockets = [config.bind_socket()]
    if server.admin_listen:
        sockets.append(_bind_admin(server.admin_listen, listen))
    uv_server = uvicorn.Server(config)
    try:
        if listen.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            uv_server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    if listen.workers == 1 and not uv_server.started:
        sys.exit(STARTUP_FAILURE)


def _uvicorn_config(listen: Listen, server: ServerConfig) -> uvicorn.Config:
    import uvicorn

    protocol: Any = functools.partial(
        GatewayProtocol,
        header_timeout=server.header_timeout,
        max_header_bytes=server.max_header_bytes,
    )
    return uvicorn.Config(
        APP,
        factory=True,
        host=listen.host,
        port=listen.port,
        workers=listen.workers,
        loop="auto",
        http=protocol,  # a partial of the protocol class: uvicorn calls it like the class
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # forwarded headers are trusted only per configuration
        log_level=listen.log_level,
        timeout_graceful_shutdown=30,
        ssl_context_factory=context_factory(listen.tls) if listen.tls else None,
    )


def _bind_admin(address: str, listen: Listen) -> socket.socket:
    host, port = parse_listen(address)
    if port == listen.port:
        raise SystemExit(
            f"server.admin_listen {address}: the public listener has port {port} too; give "
            "the admin listener a port of its own"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"server.admin_listen {address}: cannot listen there: {exc.strerror}"
        ) from None
    sock.set_inheritable(True)
    scheme = "https" if listen.tls else "http"
    shown = f"[{host}]" if ":" in host else host
    log.info("admin API (/admin/*) on %s://%s:%d only", scheme, shown, port)
    return sock
