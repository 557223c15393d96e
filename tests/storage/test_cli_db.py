"""``turnout db upgrade|current|history``, and ``turnout serve`` refusing to start on a
database it cannot reach, through click's CliRunner (in process, no server)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from turnout.cli.main import cli
from turnout.storage import migrate

WIDE = {"COLUMNS": "400"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="turnout", env={**WIDE, **(env or {})})


def test_history_lists_the_shipped_migrations() -> None:
    result = invoke("db", "history")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("empty -> 0001  The first schema")


def test_current_then_upgrade_then_current(db_url: str) -> None:
    env = {"TURNOUT_DATABASE_URL": db_url}
    head = migrate.head()
    before = invoke("db", "current", env=env)
    assert before.exit_code == 0, before.output
    assert f": empty; the newest schema is {head}: run `turnout db upgrade`" in before.output
    upgraded = invoke("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"migrated from empty to {head} (head)" in upgraded.output
    assert f"already at {head} (head)" in invoke("db", "upgrade", env=env).output
    assert invoke("db", "current", env=env).output.strip().endswith(f": {head} (head)")


def test_an_unreachable_database_exits_1_without_the_password(unused_tcp_port: int) -> None:
    env = {"TURNOUT_DATABASE_URL": f"postgresql://app:pa55word@127.0.0.1:{unused_tcp_port}/t"}
    for command in (("db", "upgrade"), ("db", "current"), ("serve",)):
        result = invoke(*command, env={**env, "TURNOUT_MASTER_KEY": "sk-test"})
        assert result.exit_code == 1, (command, result.output)
        assert "Database error" in result.output
        assert f"app:***@127.0.0.1:{unused_tcp_port}" in result.output
        assert "pa55word" not in result.output


def test_a_bad_url_is_a_configuration_error() -> None:
    result = invoke("db", "upgrade", env={"TURNOUT_DATABASE_URL": "mysql://root:pw@db/x"})
    assert result.exit_code == 2, result.output
    assert "database.url: not a database URL" in result.output
    assert "pw@" not in result.output
