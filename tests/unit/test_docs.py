"""The documentation says what the code does: README, docs/errors.md, docs/presets.md and
docs/configuration.md are checked against the error classes, presets and config models."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from turnout import exceptions
from turnout.backends.presets import PRESETS
from turnout.config import (
    BackendConfig,
    BreakerConfig,
    Config,
    CorsConfig,
    DatabaseConfig,
    Deployment,
    KeysConfig,
    LaunchConfig,
    LimitsConfig,
    ModelConfig,
    PrivacyConfig,
    RateLimitRule,
    RetryConfig,
    RollbackConfig,
    ServerConfig,
    Timeouts,
    TlsConfig,
)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: written by whoever runs the benchmarks; the README links to it
NOT_MINE = {"docs/benchmarks.md"}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def table_rows(text: str) -> list[list[str]]:
    """Every markdown table row, as stripped cells (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def unquote(cell: str) -> str:
    return cell.strip("`")


ERROR_CLASSES: list[type[exceptions.TurnoutError]] = [
    getattr(exceptions, name) for name in exceptions.__all__
]


def triple(cls: type[exceptions.TurnoutError]) -> tuple[int, str, str]:
    return cls.status, cls.type, cls.code


# ------------------------------------------------------------------------------ README


def test_readme_starts_with_make_serve_and_make_test() -> None:
    head = read(README).splitlines()[:40]
    assert head[0] == "# turnout"
    assert any(line.startswith("make serve") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_readme_and_docs_links_resolve() -> None:
    for doc in [README, *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", read(doc)):
            path = (doc.parent / target).resolve()
            if str(path.relative_to(ROOT)) in NOT_MINE:
                continue
            assert path.is_file(), f"{doc.name} links to missing {target}"


def test_readme_error_table_matches_the_hierarchy() -> None:
    known = {triple(cls) for cls in ERROR_CLASSES} | {
        (400, "invalid_request_error", "invalid_json")
    }
    rows = [r for r in table_rows(read(README)) if r[0].isdigit()]
    documented = {(int(r[0]), unquote(r[1]), unquote(r[2])) for r in rows}
    assert len(rows) >= 15
    assert documented <= known, documented - known
    client_facing = {triple(cls) for cls in ERROR_CLASSES if cls is not exceptions.ConfigError}
    client_facing -= {triple(exceptions.ClientError)}  # abstract: every client error is a subclass
    assert client_facing <= documented, client_facing - documented


def test_readme_endpoints_are_the_routes() -> None:
    from turnout.server.routes import PREFIX_ROUTES, ROUTES

    documented = {
        route_key(unquote(r[0])) for r in table_rows(read(README)) if r[0].startswith("`")
    }
    routes = {(m, p) for p, methods in ROUTES.items() for m in methods}
    routes |= {(m, prefix + "*") for prefix, methods in PREFIX_ROUTES for m in methods}
    assert routes <= documented, routes - documented


def route_key(cell: str) -> tuple[str, ...]:
    """``GET /admin/keys/{prefix}/rotate`` as the route table has it: ``/admin/keys/*``."""
    method, _, path = cell.partition(" ")
    return method, re.sub(r"\{[^}]+\}.*$", "*", path)


# -------------------------------------------------------------------------- errors.md


def test_errors_doc_table_matches_every_class() -> None:
    text = read(DOCS / "errors.md")
    rows = {unquote(r[0]): r for r in table_rows(text) if r[0].startswith("`")}
    for cls in ERROR_CLASSES:
        row = rows.get(cls.__name__)
        assert row is not None, f"{cls.__name__} is missing from docs/errors.md"
        assert (int(row[1]), unquote(row[2]), unquote(row[3])) == triple(cls), cls.__name__
        if issubclass(cls, exceptions.BackendError):
            assert row[4].startswith("yes" if cls.retryable else "no"), cls.__name__


def test_errors_doc_tree_is_the_module_docstring_tree() -> None:
    doc = exceptions.__doc__ or ""
    tree = textwrap.dedent(doc[doc.index("::") + 2 :]).strip()
    assert tree.startswith("TurnoutError ")
    assert tree in read(DOCS / "errors.md")
    for name in exceptions.__all__:
        assert re.search(rf"\b{name}\b", tree), f"{name} is missing from the docstring tree"


# -------------------------------------------------------------------------- presets.md


def test_presets_doc_matches_the_presets() -> None:
    rows = {unquote(r[0]): r for r in table_rows(read(DOCS / "presets.md")) if len(r) == 7}
    assert set(PRESETS) <= set(rows)
    for name, preset in PRESETS.items():
        _, title, url, auth, key_env, usage, local = rows[name]
        assert title.startswith(preset.title), name
        assert unquote(url) == (preset.base_url or unquote(url)), name
        if preset.base_url is None:
            assert "set `base_url`" in url, name
        assert auth == preset.auth, name
        assert unquote(key_env) == (preset.key_env or "–"), name
        assert usage == ("yes" if preset.stream_usage else "no"), name
        assert local == ("yes" if preset.local else "no"), name


# --------------------------------------------------------------------- configuration.md

SECTIONS: list[tuple[type[BaseModel], str]] = [
    (ServerConfig, ""),
    (TlsConfig, "tls."),
    (CorsConfig, "cors."),
    (BackendConfig, ""),
    (Timeouts, "timeout."),
    (LaunchConfig, "launch."),
    (ModelConfig, ""),
    (Deployment, "deployments[]."),
    (DatabaseConfig, "database."),
    (RollbackConfig, "rollback."),
    (RetryConfig, "retries."),
    (BreakerConfig, "breaker."),
    (KeysConfig, "keys."),
    (LimitsConfig, "limits."),
    (RateLimitRule, "limits.per_ip."),
    (PrivacyConfig, "privacy."),
    (Config, ""),
]


def _same(documented: str, value: Any) -> bool:
    """Whether the literal default written in the docs is ``value``."""
    if isinstance(value, bool):
        return documented == str(value).lower()
    if isinstance(value, int | float):
        return float(documented) == value
    if isinstance(value, str):
        return documented in (value, f'"{value}"')
    return documented == str(value)


@pytest.mark.parametrize(("model", "prefix"), SECTIONS, ids=[m.__name__ for m, _ in SECTIONS])
def test_configuration_doc_has_every_key_and_its_default(
    model: type[BaseModel], prefix: str
) -> None:
    rows = {unquote(r[0]): r for r in table_rows(read(DOCS / "configuration.md"))}
    for name, field in model.model_fields.items():
        if model is Config and name == "source":
            continue  # set by load_config, not a key
        if model is BackendConfig and name == "timeout":
            continue  # documented as timeout.connect, timeout.read, timeout.total
        key = prefix + name
        assert key in rows, f"{key} is missing from docs/configuration.md"
        default = rows[key][1]
        literal = re.match(r"`([^`]*)`", default)
        if literal and field.default is not None and not callable(field.default_factory):
            assert _same(literal.group(1), field.default), (key, literal.group(1), field.default)


def test_configuration_doc_lists_every_provider_variable() -> None:
    text = read(DOCS / "configuration.md")
    for preset in PRESETS.values():
        for variable in (preset.key_env, preset.base_url_env):
            if variable:
                assert f"`{variable}`" in text, variable
    for variable in (
        "TURNOUT_CONFIG",
        "TURNOUT_MASTER_KEY",
        "TURNOUT_HOME",
        "TURNOUT_REDIS_URL",
        "TURNOUT_DATABASE_URL",
        "GOOGLE_API_KEY",
    ):
        assert f"`{variable}`" in text
