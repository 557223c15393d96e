"""``turnout db ...``: the database's schema version and its migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from turnout.cli.common import config_option, err_console, load_or_exit, out_console
from turnout.exceptions import ConfigError, StorageUnavailable
from turnout.storage import migrate
from turnout.storage.db import Database

T = TypeVar("T")


@click.group("db")
def db_group() -> None:
    """The database: schema version and migrations.

    The database is $TURNOUT_DATABASE_URL, else database.url in the configuration, else SQLite
    in DATA_DIR/turnout.db. The gateway migrates it at every start; these commands let you do
    it ahead of a deployment and check where it stands.
    """


@db_group.command("upgrade")
@config_option
def upgrade(config_path: str | None) -> None:
    """Migrate the database to the newest schema this turnout knows (safe to run while
    gateways start: one migration runs at a time).

    \b
    Examples:
      turnout db upgrade
      TURNOUT_DATABASE_URL=postgresql://turnout:PASSWORD@db:5432/turnout turnout db upgrade
    """
    database = _database(config_path)
    before, after = _run(database, lambda: migrate.upgrade(database.engine))
    if before == after:
        out_console.print(f"{database}: already at {after} (head)", soft_wrap=True)
    else:
        done = f"{database}: migrated from {before or 'empty'} to {after} (head)"
        out_console.print(done, soft_wrap=True)


@db_group.command("current")
@config_option
def current(config_path: str | None) -> None:
    """Show the database's schema revision and whether it is the newest.

    \b
    Examples:
      turnout db current
    """
    database = _database(config_path)
    revision = _run(database, lambda: migrate.current(database.engine))
    head = migrate.head()
    if revision == head:
        out_console.print(f"{database}: {revision} (head)", soft_wrap=True)
    else:
        state = f"{database}: {revision or 'empty'}; the newest schema is {head}"
        out_console.print(f"{state}: run `turnout db upgrade`", soft_wrap=True)


@db_group.command("history")
def history() -> None:
    """List the migrations this turnout ships, oldest first.

    \b
    Examples:
      turnout db history
    """
    for rev in migrate.history():
        out_console.print(f"{rev.down or 'empty'} -> {rev.id}  {rev.message.splitlines()[0]}")


def _database(config_path: str | None) -> Database:
    config = load_or_exit(config_path)
    try:
        return Database.from_config(config)
    except ConfigError as exc:
        err_console.print(f"[bold red]Configuration error[/]\n{exc.message}")
        raise SystemExit(2) from None


def _run(database: Database, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` against the database; on failure print what to check and exit 1."""

    async def main() -> T:
        try:
            return await work()
        except (SQLAlchemyError, OSError) as exc:
            raise database.unavailable(exc) from exc
        finally:
            await database.aclose()

    try:
        return asyncio.run(main())
    except StorageUnavailable as exc:
        err_console.print(f"[bold red]Database error[/]\n{exc.message}")
        raise SystemExit(1) from None
