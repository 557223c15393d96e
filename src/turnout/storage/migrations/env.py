"""Alembic's environment for turnout: migrations run on a connection that turnout hands over.

turnout runs them itself (at gateway start and with ``turnout db upgrade``), inside one
transaction that holds the migration lock; see :mod:`turnout.storage.migrate`. Running the
``alembic`` command directly is not supported.
"""

from __future__ import annotations

from alembic import context

from turnout.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("turnout's migrations run through `turnout db upgrade`, not `alembic`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
