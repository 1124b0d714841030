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


def test_stack_record_ids_are_never_reused(tmp_path: Path) -> None:
    from cartstatus.storage import stack

    db = open_database(f"sqlite:///{tmp_path / 'stack.db'}")
    row = {"store_id": "main", "order_number": "1", "destination": "seti", "payload": "{}", "created_at": 0,
           "attempts": 0, "next_attempt_at": 0, "parked": False}
    with db.begin() as conn:
        first = conn.execute(stack.insert().values(idempotency_key="k1", **row)).inserted_primary_key[0]
        conn.execute(stack.delete())  # the stack empties, as after a drain
        second = conn.execute(stack.insert().values(idempotency_key="k2", **row)).inserted_primary_key[0]
    assert (first, second) == (1, 2)
