"""Alembic environment: the connection is handed in by cartstatus.storage.migrate."""

from alembic import context
from cartstatus.storage import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
