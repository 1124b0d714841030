"""Alembic environment for the OSS tables: the connection is handed in by cartstatus.oss.storage.migrate."""

from alembic import context
from cartstatus.oss.storage import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
