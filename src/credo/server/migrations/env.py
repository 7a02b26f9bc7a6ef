"""Alembic environment: credo configures it in code (``credo.server.database.upgrade``)."""

from __future__ import annotations

from alembic import context

from credo.server.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("credo runs its migrations with a connection in config.attributes")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
