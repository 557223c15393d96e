"""The first schema: request_log, api_keys, audit_log.

Migrations are numbered (revision "0001", "0002", ...), append-only, and never edited once
released; each one runs on SQLite and PostgreSQL alike (tests/storage runs them on both).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    _request_log()
    _api_keys()
    _audit_log()


def _request_log() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", ID, primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("key_id", sa.BigInteger(), nullable=True),
        sa.Column("backend", sa.String(128), nullable=True),
        sa.Column("upstream_model", sa.String(256), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tries", sa.JSON(), nullable=True),
        sa.Column("latency", sa.Double(), nullable=False),
        sa.Column("ttft", sa.Double(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("input_chars", sa.Integer(), nullable=True),
        sa.Column("output_chars", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Double(), nullable=True),
        sa.Column("cache_hit", sa.Boolean(), nullable=True),
        sa.Column("privacy", sa.String(16), nullable=True),
        sa.Column("privacy_categories", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_request_log"),
    )
    op.create_index("ix_request_log_started_at", "request_log", ["started_at"])
    op.create_index("ix_request_log_key_id_started_at", "request_log", ["key_id", "started_at"])
    op.create_index(
        "ix_request_log_principal_started_at", "request_log", ["principal", "started_at"]
    )
    op.create_index("ix_request_log_model_started_at", "request_log", ["model", "started_at"])
    op.create_index("ix_request_log_request_id", "request_log", ["request_id"])


def _api_keys() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", ID, primary_key=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("allowed_models", sa.JSON(), nullable=True),
        sa.Column("limits", sa.JSON(), nullable=True),
        sa.Column("budget", sa.Double(), nullable=True),
        sa.Column("spent", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        sa.UniqueConstraint("hash", name="uq_api_keys_hash"),
    )
    op.create_index("ix_api_keys_updated_at", "api_keys", ["updated_at"])


def _audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", ID, primary_key=True),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("request_log")
