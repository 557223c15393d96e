"""``turnout serve``: run the gateway."""

from __future__ import annotations

import os
import shutil
import sys

import click

from turnout.cli.common import config_option, err_console, load_or_exit
from turnout.cli.progress import show_load_progress
from turnout.config import DEMO_NAME, Config
from turnout.exceptions import ConfigError, StorageUnavailable
from turnout.policies.master_key import load_or_create_master_key
from turnout.server.middleware.hosts import LISTEN_HOST_ENV
from turnout.server.tls import TlsSettings, server_context
from turnout.telemetry.logging import LOG_LEVEL_ENV, configure_logging


@click.command()
@config_option
@click.option("--host", default=None, help="Address to listen on. Default: 127.0.0.1.")
@click.option("--port", type=int, default=None, help="Port to listen on. Default: 8400.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes, each with its own event loop. Default: 1.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--ssl-certfile",
    type=click.Path(dir_okay=False),
    default=None,
    help="Serve HTTPS with this PEM certificate (chain). Default: server.tls.cert_file.",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(dir_okay=False),
    default=None,
    help="The certificate's PEM private key. Default: server.tls.key_file.",
)
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    log_level: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Run the gateway: OpenAI-compatible API, predict API, health and metrics.

    \b
    Examples:
      turnout serve
      turnout serve --config turnout.yaml --host 0.0.0.0 --port 8400 --workers 4
      OPENAI_API_KEY=sk-... turnout serve     # then use model "openai/gpt-4o-mini"
      turnout serve --ssl-certfile cert.pem --ssl-keyfile key.pem   # HTTPS, TLS 1.2+
    """
    from turnout.server.serving import Listen, run

    config = load_or_exit(config_path)
    server = config.server
    host = host or server.host
    port = server.port if port is None else port
    workers = workers or server.workers
    tls = _tls_or_exit(config, ssl_certfile, ssl_keyfile)
    _ensure_master_key(config)
    _migrate_database(config)
    if workers > 1:
        _share_metrics(config)
    if config.source:
        os.environ["TURNOUT_CONFIG"] = os.path.abspath(config.source)
    os.environ[LISTEN_HOST_ENV] = host
    _banner(config, host, port, tls is not None)
    os.environ[LOG_LEVEL_ENV] = log_level
    configure_logging(log_level)
    if workers == 1 and sys.stderr.isatty():
        # models loaded in this process draw progress bars instead of log lines
        show_load_progress(err_console)
    run(Listen(host, port, workers, log_level, tls), server)


def _tls_or_exit(config: Config, certfile: str | None, keyfile: str | None) -> TlsSettings | None:
    """The TLS settings, their certificate and key loaded once to check them."""
    try:
        tls = TlsSettings.from_config(config.server.tls, cert_file=certfile, key_file=keyfile)
        if tls is not None:
            server_context(tls)
    except ConfigError as exc:
        err_console.print(f"[bold red]TLS error[/]\n{exc.message}")
        raise SystemExit(2) from None
    return tls


def _share_metrics(config: Config) -> None:
    """Workers write their metrics to one fresh folder so /metrics can sum them."""
    folder = config.data_path / "metrics" / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _migrate_database(config: Config) -> None:
    """Bring the database up to date once, before any worker starts (each worker checks
    again, under the migration lock); say what to fix when it cannot be reached."""
    import asyncio

    from turnout.storage.db import Database

    async def migrate(database: Database) -> None:
        try:
            await database.migrate()
        finally:
            await database.aclose()

    try:
        asyncio.run(migrate(Database.from_config(config)))
    except (ConfigError, StorageUnavailable) as exc:
        err_console.print(f"[bold red]Database error[/]\n{exc.message}")
        raise SystemExit(2 if isinstance(exc, ConfigError) else 1) from None


def _ensure_master_key(config: Config) -> None:
    """Make sure the workers find a master key in the environment."""
    if config.server.master_key is not None:
        os.environ.setdefault("TURNOUT_MASTER_KEY", config.server.master_key.get_secret_value())
        return
    try:
        key, created = load_or_create_master_key(config.data_path)
    except ConfigError as exc:
        err_console.print(f"[bold red]Master key error[/]\n{exc.message}")
        raise SystemExit(2) from None
    os.environ["TURNOUT_MASTER_KEY"] = key
    path = config.data_path / "master_key"
    if created:
        err_console.print(
            f"[bold yellow]Generated a master key[/] (stored in {path}, mode 600):\n  {key}\n"
            "Keep it secret; set TURNOUT_MASTER_KEY to use your own."
        )


_NO_BACKENDS = "none - export OPENAI_API_KEY or write a turnout.yaml"


def _banner(config: Config, host: str, port: int, https: bool) -> None:
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"{'https' if https else 'http'}://{shown}:{port}"
    local = sorted(config.local_names)
    model = config.default_model or next(iter([*config.models, *local]), None)
    if model is None:
        model = next((f"{b}/MODEL" for b in config.backends), "MODEL")
    key_ref = "$TURNOUT_MASTER_KEY"
    if config.server.master_key is None:
        key_ref = f"$(cat {config.data_path / 'master_key'})"
    err_console.print(
        f"[bold]turnout[/] on {base}  ({config.source or 'built-in defaults'})\n"
        f"  backends: {', '.join(config.backends) or _NO_BACKENDS}\n"
        f"  models:   {', '.join([*config.models, *local]) or '-'}"
        + (
            f"\n            {' and '.join(n for n in local if n.startswith(DEMO_NAME))}: the DEMO "
            "model (random weights, it writes nonsense)"
            if config.demo_enabled
            else ""
        )
        + "".join(f"\n            {b}/* (any model on {b})" for b in config.backends)
        + (
            f"\n  admin API: {config.server.admin_listen} only"
            if config.server.admin_listen
            else ""
        )
    )
    err_console.print(
        "Try it:\n"
        f"  curl {base}/v1/chat/completions \\\n"
        f'    -H "Authorization: Bearer {key_ref}" -H "Content-Type: application/json" \\\n'
        f'    -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'',
        soft_wrap=True,
    )
