"""What became of a queued update stays on the order's history after its record leaves the stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from cartstatus import StackController, StatusEngine
from cartstatus.cli import main
from cartstatus.diagnose import diagnose
from cartstatus.outcomes import Delivered, Failed
from cartstatus.storage import make_engine, migrate
from click.testing import CliRunner

from ..conftest import add_orders
from .conftest import Answers, ScriptedConnector

SLOW_RETRY = {"backoff_base": 1000.0, "backoff_cap": 1000.0, "lease_seconds": 5}


async def drain(engine: StatusEngine, connector: ScriptedConnector) -> None:
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)
    await controller.run(drain=True)


async def test_a_delivered_update_is_recorded_on_the_history(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine()
    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    await drain(engine, Answers({"Shipped": Delivered()}))
    shipped = engine.show_order(order)["history"][-1]
    assert (shipped["to"], shipped["outcome"]) == ("Shipped", "delivered")
    assert shipped["settled_at"] is not None
    rule6 = next(c for c in diagnose(engine.config, engine, order).checks if c.rule == 6)
    assert rule6.status == "pass" and f"answered OK at {shipped['settled_at']}" in rule6.detail


async def test_the_link_a_destination_answers_with_is_kept_and_the_newest_shown(
        make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine()
    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    await drain(engine, Answers({"Shipped": Delivered("OK", "https://oss.example/status/m?order=1&key=a")}))
    engine.fire("Order Cancelled", [order])
    await drain(engine, Answers({"Cancelled": Delivered("OK", "https://oss.example/status/m?order=1&key=b")}))
    engine.fire("Order Shipped", [order])
    # Not a web address (or too long): the history keeps no link, and the newest link stays the one shown.
    await drain(engine, Answers({"Shipped": Delivered("OK", "javascript:alert(1)")}))
    shown = engine.show_order(order)
    assert [h["link"] for h in shown["history"][-3:]] == [
        "https://oss.example/status/m?order=1&key=a", "https://oss.example/status/m?order=1&key=b", None]
    assert shown["status_url"] == "https://oss.example/status/m?order=1&key=b"
    printed = CliRunner().invoke(main, ["--config", str(engine.config.path), "orders", "show", order])
    assert "status page: https://oss.example/status/m?order=1&key=b" in printed.output


async def test_a_purged_update_is_recorded_and_diagnose_says_it_never_arrived(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine(controller=SLOW_RETRY)
    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    await drain(engine, Answers({"Shipped": Failed("Order 1000 could not be found")}))
    assert engine.stack.purge_failed() == 1
    shipped = engine.show_order(order)["history"][-1]
    assert shipped["outcome"] == "purged: Order 1000 could not be found"
    rule6 = next(c for c in diagnose(engine.config, engine, order).checks if c.rule == 6)
    assert rule6.status == "fail" and "parked and then purged (Order 1000 could not be found)" in rule6.detail


async def test_a_parked_update_overtaken_by_a_delivered_one_is_not_retried(
    make_engine: Callable[..., StatusEngine], tmp_path: Path,
) -> None:
    engine = make_engine(controller=SLOW_RETRY)
    first, other = add_orders(engine, 2)
    engine.fire("Order Shipped", [first, other])
    await drain(engine, Answers({"Shipped": Failed("refused")}))
    engine.fire("Order Cancelled", [first])  # overtakes the parked Shipped of `first`
    await drain(engine, Answers({"Cancelled": Delivered()}))
    parked = {r.order_number: r.id for r in engine.stack.records(states=["parked"])}
    assert engine.stack.overtaken() == [parked[first]]

    # Retrying everything brings back only `other`: the cart would otherwise end on Shipped.
    result = CliRunner().invoke(main, ["--config", str(engine.config.path), "stack", "retry", "--all-failed"])
    assert result.exit_code == 0, result.output
    assert "1 parked records queued again" in result.output
    assert f"not retried: {parked[first]}" in " ".join(result.output.split())
    assert [r.order_number for r in engine.stack.records(states=["parked"])] == [first]

    assert engine.stack.retry([parked[first]], force=True).retried == [parked[first]]
    assert engine.stack.records(states=["parked"]) == []


def test_a_stack_at_revision_0001_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = make_engine(url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "cartstatus:migrations")
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(sa.text("INSERT INTO orders (store_id, order_number, status, cart_order_ref, updated_at) "
                             "VALUES ('main', '1', 'New', 'C1', 0)"))
        conn.execute(sa.text("INSERT INTO order_history (order_id, at, route, to_status) "
                             "VALUES (1, 0, 'imported', 'New')"))
        conn.execute(sa.text("INSERT INTO stack (idempotency_key, store_id, order_number, destination, payload, "
                             "created_at, attempts, next_attempt_at, parked) "
                             "VALUES ('k1', 'main', '1', 'seti', '{}', 0, 2, 0, 0)"))
    migrate(db)
    with db.connect() as conn:
        row = conn.execute(sa.text("SELECT to_status, settled_at, outcome FROM order_history")).one()
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        stacked = conn.execute(sa.text("SELECT attempts, failing_since FROM stack")).one()
        table_sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'stack'")).scalar_one()
        beats_sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'controllers'")).scalar_one()
        history_sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'order_history'")).scalar_one()
    assert tuple(row) == ("New", None, None)
    assert tuple(stacked) == (2, None)  # 0003: its run of failures counts from its next failure
    assert "AUTOINCREMENT" in table_sql  # 0004: ids never reused
    assert "circuits" in beats_sql  # 0006: a heartbeat carries its open circuits
    assert "link" in history_sql  # 0007: the page a destination answered with (the OSS's status_url)
    assert version == "0007"

