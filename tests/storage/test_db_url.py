"""Database URLs: the default, the environment, drivers, and passwords kept out of messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.support import write_config
from turnout.config import load_config
from turnout.exceptions import ConfigError
from turnout.storage.db import database_url, parse_url, safe_url


def test_the_default_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(
        write_config(tmp_path / "c.yaml", {"server": {"data_dir": str(tmp_path / "data")}}),
        env={},
    )
    url = database_url(config)
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "data" / "turnout.db")


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", {"database": {"url": "sqlite:///from-file.db"}})
    assert database_url(load_config(path, env={})).database == "from-file.db"
    env = {"TURNOUT_DATABASE_URL": "postgresql://u:pw@db.internal:5433/turnout"}
    url = database_url(load_config(path, env=env))
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+asyncpg",
        "db.internal",
        5433,
        "turnout",
    )


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:////abs/x.db", "sqlite+aiosqlite"),
    ],
)
def test_urls_get_their_async_driver(raw: str, driver: str) -> None:
    assert parse_url(raw).drivername == driver


def test_sslmode_becomes_asyncpg_ssl() -> None:
    assert dict(parse_url("postgresql://u@h/db?sslmode=require").query) == {"ssl": "require"}


@pytest.mark.parametrize(
    ("raw", "fix"),
    [
        ("mysql://u:pw@h/db", "'mysql' databases are not supported"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_urls_say_what_to_write(raw: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix) as caught:
        parse_url(raw)
    assert "pw" not in caught.value.message


def test_passwords_are_masked() -> None:
    url = parse_url("postgresql://turnout:hunter2@db/turnout")
    assert safe_url(url) == "postgresql+asyncpg://turnout:***@db/turnout"
    assert "hunter2" not in str(url)


def test_a_config_error_does_not_echo_the_url(tmp_path: Path) -> None:
    env = {"TURNOUT_DATABASE_URL": "mongodb://admin:hunter2@db/turnout"}
    with pytest.raises(ConfigError, match=r"database\.url: not a database URL") as caught:
        load_config(None, env=env)
    assert "hunter2" not in caught.value.message
