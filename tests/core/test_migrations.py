"""The Alembic migrations build exactly the tables the code declares."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cartstatus.storage import metadata, open_database


def test_migrations_match_the_declared_tables(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'stack.db'}")
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
