"""The tables, as SQLAlchemy 2 typed declarative classes: the same schema on SQLite and PostgreSQL.

The migrations under ``migrations/versions`` create exactly these tables (a test compares them);
change both together, always by a new numbered migration, never by editing an old one.

Portable types only: ``BigInteger`` ids (plain ``INTEGER`` on SQLite, where only that is an
auto-incrementing row id), ``JSON``, ``Double`` and :class:`UTCDateTime` (``timestamptz`` on
PostgreSQL, ISO text on SQLite; always read back as an aware UTC ``datetime``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["ApiKey", "AuditEntry", "Base", "RequestLog", "UTCDateTime"]

#: constraint and index names spelled out, so that migrations can name what they change
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: a 64-bit id that auto-increments on both databases
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored in UTC; naive datetimes are refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class RequestLog(Base):
    """One row per request, written in batches off the request path.

    The columns are named after :class:`~turnout.telemetry.records.RequestRecord`'s fields
    (``started`` becomes ``started_at``), so a field added to the record needs only a column
    here and a migration. Columns the gateway does not fill yet are NULL.
    """

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: the x-request-id; clients may supply their own, so not unique
    request_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    #: the front door: chat, completions, embeddings, predict, messages, ...
    endpoint: Mapped[str] = mapped_column(String(32))
    #: the public model name (the route) the caller asked for
    model: Mapped[str] = mapped_column(String(256))
    #: who called: an API key's visible prefix, "master" or "anonymous"
    principal: Mapped[str] = mapped_column(String(128))
    #: the API key's id (api_keys.id; no foreign key: log rows outlive deleted keys)
    key_id: Mapped[int | None] = mapped_column(BigInteger)
    backend: Mapped[str | None] = mapped_column(String(128))
    upstream_model: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean)
    #: how many deployments were tried; ``tries`` holds one entry per try
    attempts: Mapped[int] = mapped_column(Integer)
    tries: Mapped[list[Any] | None]
    #: seconds from arrival to the last byte, and to the first token (streams)
    latency: Mapped[float] = mapped_column(Double)
    ttft: Mapped[float | None] = mapped_column(Double)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    #: characters of the prompt and of the reply
    input_chars: Mapped[int | None] = mapped_column(Integer)
    output_chars: Mapped[int | None] = mapped_column(Integer)
    #: US dollars
    cost: Mapped[float | None] = mapped_column(Double)
    cache_hit: Mapped[bool | None] = mapped_column(Boolean)
    #: what the privacy policy did (allow, local, redact, block), and the categories found
    privacy: Mapped[str | None] = mapped_column(String(16))
    privacy_categories: Mapped[list[Any] | None]

    __table_args__ = (
        Index(None, "started_at"),
        Index(None, "key_id", "started_at"),
        Index(None, "principal", "started_at"),
        Index(None, "model", "started_at"),
        Index(None, "request_id"),
    )


class ApiKey(Base):
    """An API key: only its hash is stored; the prefix is what people see and search for."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: the visible start of the key, e.g. ``tk_3f9a2c``; unique so it identifies the key
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    #: a hash of the whole key (the key itself is shown once, never stored)
    hash: Mapped[str] = mapped_column(String(128), unique=True)
    #: admin, developer or auditor
    role: Mapped[str] = mapped_column(String(16))
    #: who or what the key is for (a person, a team, a service)
    owner: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]
    #: changes with every change of the row: replicas poll it to drop cached keys promptly
    updated_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    #: public model names the key may call; NULL: all
    allowed_models: Mapped[list[Any] | None]
    #: the key's rate-limit rules (requests_per_minute, burst, tokens_per_minute); NULL: defaults
    limits: Mapped[dict[str, Any] | None]
    #: US dollars the key may spend (NULL: no budget), and what it has spent
    budget: Mapped[float | None] = mapped_column(Double)
    spent: Mapped[float] = mapped_column(Double, default=0.0)


class AuditEntry(Base):
    """One admin action. Append-only: the code has no path that updates or deletes a row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    #: the acting key's prefix, or "master"
    actor: Mapped[str] = mapped_column(String(128), index=True)
    #: what was done, e.g. key.create, key.revoke, model.deploy, route.weights
    action: Mapped[str] = mapped_column(String(64), index=True)
    #: what it was done to, e.g. a key prefix or a model name
    target: Mapped[str | None] = mapped_column(String(256))
    #: ok, denied or error
    outcome: Mapped[str] = mapped_column(String(16))
    #: the request that carried the action
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any] | None]
