"""ASGI middleware around the gateway: trusted hosts, CORS, the admin listener split.

Each is a plain ASGI class, ``__init__(app, **options)`` and ``async __call__(scope, receive,
send)``: it passes the call on or answers itself, touches only ``http.response.start`` of
what passes through, and never buffers a body or a stream. Each is installed only when its
configuration asks for it, so the default gateway pays for none it does not use.
"""

from __future__ import annotations

from turnout.config import ServerConfig, parse_listen
from turnout.server.http import ASGIApp
from turnout.server.middleware.admin import AdminListener
from turnout.server.middleware.cors import Cors
from turnout.server.middleware.hosts import TrustedHosts, default_hosts

__all__ = ["AdminListener", "Cors", "TrustedHosts", "wrap"]


def wrap(app: ASGIApp, server: ServerConfig, listen_host: str | None = None) -> ASGIApp:
    """``app`` inside the middleware ``server`` asks for; outermost first: trusted hosts
    (a request for a foreign host goes no further), CORS (so a page can read even the
    admin split's 404), the admin listener split. ``listen_host``: the address the server
    listens on, when the command line changed ``server.host``."""
    if server.admin_listen:
        app = AdminListener(app, port=parse_listen(server.admin_listen)[1])
    if server.cors.allow_origins:
        app = Cors(app, config=server.cors)
    hosts = server.trusted_hosts
    if hosts is None:
        hosts = default_hosts(listen_host or server.host)
    if hosts is not None and "*" not in hosts:
        app = TrustedHosts(app, hosts=hosts)
    return app
