"""The bulk fire path: one lookup, rows as tuples, payloads from a per-store template.

Each runs on SQLite and, under ``make test`` (scripts/test-services.sh), on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cartstatus import StatusEngine, StatusUpdate, Tracking, load_config
from cartstatus.engine import FireResult, OrderError
from cartstatus.stack import PayloadTemplate
from cartstatus.storage import Prepared, make_engine, open_database, order_history, orders

from ..conftest import add_orders, base_setup
from ..services import fresh_postgres_database


@pytest.mark.parametrize("fields", [
    ("k-1", "1001", "C1001", "New", "a@b.example", "12345"),
    ("k-2", "1002", "C1002", None, None, None),
    ("k-3", 'odd "quoted" \\ number', "Ré/f\u2603\n", "Envoyé", "é@b.example", "\x00 1"),
])
def test_payload_template_renders_the_compact_json_of_the_payload(fields: tuple[str | None, ...]) -> None:
    key, number, ref, before, email, zip_ = fields
    shared = dict(store_id="main", status="Shipped", cart_status="shipped", event="Order Shipped",
                  occurred_at="2025-01-02T03:04:05Z",
                  tracking=(Tracking("UPS", "1Z\"9", "2025-01-02"), Tracking("USPS", "94")), note="two\tboxes \u00e9")
    template = PayloadTemplate(StatusUpdate(idempotency_key="", order_number="", cart_order_ref="",
                                            previous_status=None, **shared))  # type: ignore[arg-type]
    update = StatusUpdate(idempotency_key=key or "", order_number=number or "", cart_order_ref=ref or "",
                          previous_status=before, email=email, zip=zip_, **shared)  # type: ignore[arg-type]
    text = template.render(key or "", number or "", ref or "", before, email, zip_)
    assert text == json.dumps(update.to_payload(), separators=(",", ":"))
    assert StatusUpdate.from_payload(json.loads(text)) == update


def test_fire_result_keeps_its_dataclass_surface() -> None:
    result = FireResult("1001", "main", True, "New", "Shipped", "native", "seti", "k", "why")
    assert result == FireResult(order_number="1001", store_id="main", changed=True, from_status="New",
                                to_status="Shipped", route="native", destination="seti", idempotency_key="k",
                                reason="why")
    assert result.queued and result.as_dict()["to_status"] == "Shipped"
    with pytest.raises(AttributeError):
        result.route = "oss"  # type: ignore[misc]


def test_prepared_rows_go_to_the_driver_in_the_statements_parameter_order() -> None:
    engine = make_engine("sqlite://")
    update = Prepared(orders.update().where(orders.c.id == sa.bindparam("oid"))
                      .values(status=sa.bindparam("status"), updated_at=sa.bindparam("at")), engine.dialect)
    seen: list[object] = []

    class Cursor:
        def executemany(self, sql: str, rows: object) -> None:
            seen.append(rows)

    rows = [("Shipped", 1.0, 7)]
    update.executemany_rows(Cursor(), ("status", "at", "oid"), rows)
    update.executemany_rows(Cursor(), ("oid", "status", "at"), [(7, "Shipped", 1.0)])
    update.executemany_rows(Cursor(), ("oid", "status", "at"), [])
    assert seen[0] is rows  # as they are
    assert seen[1] == [("Shipped", 1.0, 7)]  # reordered
    assert len(seen) == 2


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, write_setup: Callable[..., Path]) -> Iterator[StatusEngine]:
    """An engine on a fresh SQLite stack, or on a fresh PostgreSQL database."""
    setup = base_setup()
    setup["stores"].append({"id": "outlet", "cart": "seti",
                            "connector": {"url": "http://outlet.test/seom.php", "user": "om",
                                          "password": "outlet-Pass-1", "code": "outlet", "timeout": 3},
                            "status_map": {"Shipped": "sent"}})
    config = load_config(write_setup(setup))
    if request.param == "sqlite":
        eng = StatusEngine(config)
        yield eng
        eng.db.dispose()
        return
    with fresh_postgres_database() as url:
        db = open_database(url)
        eng = StatusEngine(config, engine=db)
        try:
            yield eng
        finally:
            db.dispose()


def test_one_fire_over_many_orders_of_two_stores(any_engine: StatusEngine) -> None:
    engine = any_engine
    main = add_orders(engine, 1200)
    outlet = add_orders(engine, 300, store="outlet", prefix="O")
    engine.upsert_orders([{"order_number": main[5], "store": "main", "status": "Shipped",
                           "cart_order_ref": f"C{main[5]}", "email": None, "zip": None}])
    asked = main + outlet + [main[0], "NOPE-1"]  # a repeat and an unknown order
    seen: list[int] = []
    results = engine.fire("Order Shipped", asked, note="bulk", tracking=["UPS:1Z1"], progress=seen.append)

    assert [r.order_number for r in results] == asked
    assert seen == [1000]
    by_route = {(r.route, r.reason.split(":")[0]) for r in results if not r.queued}
    assert by_route == {("unchanged", "label is already 'Shipped'"),
                        ("unknown", "order NOPE-1 is not known (import it first)")}
    # main[5] (already Shipped), the repeat of main[0], the unknown order
    assert [r.route for r in results if not r.queued] == ["unchanged", "unchanged", "unknown"]
    queued = [r for r in results if r.queued]
    assert len(queued) == 1200 + 300 - 1
    assert all(r.changed and r.from_status == "New" and r.to_status == "Shipped" and r.destination == "seti"
               for r in queued)

    records = {r.idempotency_key: r for r in engine.stack.records()}
    assert set(records) == {r.idempotency_key for r in queued}
    first = records[results[0].idempotency_key or ""]
    assert first.update == StatusUpdate(
        idempotency_key=first.idempotency_key, store_id="main", order_number=main[0], cart_order_ref=f"C{main[0]}",
        status="Shipped", cart_status="Shipped", previous_status="New", event="Order Shipped",
        occurred_at=first.update.occurred_at, tracking=(Tracking("UPS", "1Z1"),), note="bulk",
        email=f"shopper{main[0]}@example.com", zip="12345")
    last = records[results[1499].idempotency_key or ""]
    assert (last.store_id, last.order_number, last.update.cart_status) == ("outlet", outlet[-1], "sent")

    with engine.db.connect() as conn:
        labels = dict(conn.execute(sa.select(orders.c.order_number, orders.c.status)).all())
        history = conn.execute(sa.select(order_history.c.idempotency_key, order_history.c.to_status,
                                         order_history.c.route)
                               .where(order_history.c.event == "Order Shipped")).all()
    assert set(labels.values()) == {"Shipped"}
    assert sorted(h.idempotency_key for h in history) == sorted(records)
    assert {(h.to_status, h.route) for h in history} == {("Shipped", "native")}


def test_fire_by_store_and_an_order_number_in_two_stores(any_engine: StatusEngine) -> None:
    engine = any_engine
    (number,) = add_orders(engine, 1)
    add_orders(engine, 1, store="outlet")
    with pytest.raises(OrderError, match="several stores"):
        engine.fire_event(number, "Order Shipped")
    assert engine.stack.count() == 0
    result = engine.fire_event(number, "Order Shipped", store="outlet")
    assert (result.store_id, result.route) == ("outlet", "native")
    internal = engine.fire_event(number, "Invoice Printed", store="main")
    assert (internal.route, internal.queued, internal.from_status) == ("internal", False, "New")
    assert [r.store_id for r in engine.stack.records()] == ["outlet"]
