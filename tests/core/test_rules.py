"""One test per rule of the requirements (1 to 6), internal-only mode, and UseStatusUpdates FALSE.

Each drives the public API: StatusEngine, Stack, StackController and the
script-cart simulator through httpx.ASGITransport.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cartstatus import Connector, StackController, StatusEngine, StatusUpdate
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.outcomes import Delivered, Outcome
from cartstatus.stack import Stack, StackRecord
from cartstatus.storage import open_database

from ..conftest import add_orders
from .conftest import connector_registered, run_until

SEND_NOW = {"backoff_base": 1000.0, "backoff_cap": 1000.0, "lease_seconds": 5, "concurrency": 1}


class RecordingOss(Connector):
    """Stands in for the OSS connector: rule 1 only needs one registered under the name ``oss``."""

    name = "oss"
    received: list[StatusUpdate] = []

    async def send(self, update: StatusUpdate) -> Outcome:
        self.received.append(update)
        return Delivered("OK")


@pytest.fixture
def oss_connector() -> Iterator[None]:
    RecordingOss.received = []
    with connector_registered(RecordingOss, "test-oss-connector"):
        yield


def history(engine: StatusEngine, number: str) -> list[dict[str, Any]]:
    return list(engine.show_order(number)["history"])


# -- rule 1 ------------------------------------------------------------------

async def test_rule_1_cart_must_accept_updates_else_oss_subscription_else_nothing(
    make_engine: Callable[..., StatusEngine], oss_connector: None,
    simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSS_TOKEN", "oss-token-value")
    seti = {"id": "main", "cart": "seti", "connector": {"url": "http://cart.test/seom.php", "user": "om",
                                                       "password": {"$env": "SHOP_PASSWORD"}, "code": "main",
                                                       "timeout": 3}}

    def oss(expires: str) -> dict[str, Any]:
        return {"url": "https://oss.test", "merchant": "shop-1", "token": {"$env": "OSS_TOKEN"},
                "subscription_expires": expires}

    # americart: the matrix says it takes no status updates. papercart: not in the matrix at all.
    engine = make_engine(stores=[
        seti,
        {"id": "paper", "cart": "americart"},  # no OSS subscription
        {"id": "hosted", "cart": "americart", "oss": oss("2099-12-31")},
        {"id": "lapsed", "cart": "americart", "oss": oss("2001-01-31")},
        {"id": "unknown", "cart": "papercart", "oss": oss("2099-12-31")},
    ])
    [native] = add_orders(engine, 1, store="main", prefix="N")
    [paper] = add_orders(engine, 1, store="paper", prefix="P")
    [hosted] = add_orders(engine, 1, store="hosted", prefix="H")
    [lapsed] = add_orders(engine, 1, store="lapsed", prefix="L")
    [unknown] = add_orders(engine, 1, store="unknown", prefix="U")

    results = {r.order_number: r for r in engine.fire("Order Shipped", [native, paper, hosted, lapsed, unknown])}

    # The cart takes updates through its connector: queued for that connector.
    assert (results[native].route, results[native].destination, results[native].queued) == ("native", "seti", True)
    # It does not, but the store subscribes to the OSS: queued for the OSS.
    assert (results[hosted].route, results[hosted].destination, results[hosted].queued) == ("oss", "oss", True)
    # It does not and there is no (active) subscription: the label changes, nothing is queued, the reason is kept.
    for number, why in ((paper, "has no OSS subscription"), (lapsed, "lapsed on 2001-01-31"),
                        (unknown, "is not in the shopping-cart matrix")):
        assert results[number].route == "none"
        assert not results[number].queued
        assert results[number].changed
        assert why in results[number].reason
        assert engine.show_order(number)["status"] == "Shipped"
        assert why in history(engine, number)[-1]["reason"]
        assert engine.show_order(number)["pending"] == []
    assert {(r.order_number, r.destination) for r in engine.stack.records()} == {(native, "seti"), (hosted, "oss")}

    # Each queued record reaches its own destination.
    def factory(record: StackRecord) -> Connector:
        return RecordingOss({}) if record.destination == "oss" else controller._make_connector(record)

    controller = StackController(engine.config, engine.stack, transport=sim_transport, connector_factory=factory)
    stats = await controller.run(drain=True)
    assert stats.delivered == 2
    assert [(r.refnumber, r.orderstatus) for r in simulator.received] == [(native, "Shipped")]
    assert [(u.order_number, u.store_id, u.status) for u in RecordingOss.received] == [(hosted, "hosted", "Shipped")]
    assert engine.stack.count() == 0


# -- rule 2 ------------------------------------------------------------------

def test_rule_2_use_status_updates_must_be_true(make_engine: Callable[..., StatusEngine]) -> None:
    on = make_engine("on.yaml", stack={"url": "sqlite:///on.db"})
    off = make_engine("off.yaml", system={"UseStatusUpdates": False}, stack={"url": "sqlite:///off.db"})
    for engine in (on, off):
        add_orders(engine, 2)

    fired_on = on.fire("Order Shipped", ["1000", "1001"])
    fired_off = off.fire("Order Shipped", ["1000", "1001"])

    assert all(r.changed and r.queued for r in fired_on)
    assert on.stack.count() == 2
    assert not any(r.changed or r.queued for r in fired_off)
    assert all(r.route == "off" and "UseStatusUpdates is FALSE" in r.reason for r in fired_off)
    assert off.stack.count() == 0
    assert off.show_order("1000")["status"] == "New"


def test_use_status_updates_false_changes_nothing(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine(system={"UseStatusUpdates": False})
    numbers = add_orders(engine, 3)
    before = [engine.show_order(n) for n in numbers]

    # Events with and without Notify Cart, one not defined at all, tracking and a note: nothing at all happens.
    results = [
        *engine.fire("Order Shipped", numbers, tracking=["UPS:1Z1"], note="on its way"),
        *engine.fire("Invoice Printed", numbers),
        *engine.fire("Backordered", numbers),
        engine.fire_event(numbers[0], "Order Cancelled"),
    ]

    assert all(not r.changed and not r.queued and r.route == "off" for r in results)
    assert [engine.show_order(n) for n in numbers] == before
    assert engine.stack.count() == 0


# -- rule 3 ------------------------------------------------------------------

def test_rule_3_event_must_be_defined_with_notify_cart(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine()
    notify, internal, undefined = add_orders(engine, 3)

    shipped = engine.fire_event(notify, "Order Shipped")  # defined, Notify Cart checked
    printed = engine.fire_event(internal, "Invoice Printed")  # defined, Notify Cart not checked
    backordered = engine.fire_event(undefined, "Backordered")  # a known event the setup file does not define

    assert shipped.queued and shipped.route == "native"
    assert printed.changed and not printed.queued and printed.route == "internal"
    assert "Notify Cart" in printed.reason
    assert not backordered.changed and not backordered.queued and backordered.route == "undefined"
    assert "no status event 'Backordered' is defined" in backordered.reason
    assert engine.show_order(undefined)["status"] == "New"
    assert [r.order_number for r in engine.stack.records()] == [notify]
    with pytest.raises(ValueError, match="not a known status event"):
        engine.fire_event(notify, "Order Teleported")


# -- rule 4 ------------------------------------------------------------------

def test_rule_4_only_a_label_change_queues_an_update(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine(status_events=[
        {"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True},
        {"event": "Tracking Number Imported", "order_status": "Shipped", "notify_cart": True},
        {"event": "Order Cancelled", "order_status": "Cancelled", "notify_cart": True},
    ])
    a, b = add_orders(engine, 2)

    first = engine.fire_event(a, "Order Shipped")
    again = engine.fire_event(a, "Order Shipped")  # same event again: label already Shipped
    same_label = engine.fire_event(a, "Tracking Number Imported")  # another event setting the same label
    twice_in_one_call = engine.fire("Order Shipped", [b, b])

    assert first.queued
    for r in (again, same_label, twice_in_one_call[1]):
        assert not r.changed and not r.queued and r.route == "unchanged"
        assert "nothing changed, nothing queued" in r.reason
    assert twice_in_one_call[0].queued
    assert engine.stack.count() == 2
    assert [h["to"] for h in history(engine, a)] == ["New", "Shipped"]

    # A -> B -> A is two changes: both are queued.
    cancelled = engine.fire_event(a, "Order Cancelled")
    shipped_again = engine.fire_event(a, "Order Shipped")
    assert cancelled.queued and (cancelled.from_status, cancelled.to_status) == ("Shipped", "Cancelled")
    assert shipped_again.queued and (shipped_again.from_status, shipped_again.to_status) == ("Cancelled", "Shipped")
    assert [r.update.status for r in engine.stack.records(order_number=a)] == ["Shipped", "Cancelled", "Shipped"]


# -- rule 5 ------------------------------------------------------------------

async def test_rule_5_record_is_queued_and_a_running_controller_sends_it(
    engine: StatusEngine, simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    [number] = add_orders(engine, 1)
    result = engine.fire_event(number, "Order Shipped", tracking=["UPS:1Z999"], note="left at the door")

    # What fire reported is on disk: a separate connection to the same file sees the whole record.
    other = open_database(engine.config.stack_url)
    try:
        [record] = Stack(other).records()
    finally:
        other.dispose()
    assert record.idempotency_key == result.idempotency_key
    assert (record.update.cart_order_ref, record.update.status, record.update.note) == (
        f"C{number}", "Shipped", "left at the door")

    # Queued, but no controller runs: nothing reaches the cart and stack status says so.
    status = engine.stack.status()
    assert (status.records, status.queued, status.controller_running) == (1, 1, False)
    assert status.oldest_age_seconds is not None and status.oldest_age_seconds >= 0
    assert simulator.received == []

    controller = StackController(engine.config, engine.stack, transport=sim_transport)
    seen_running: list[bool] = []

    def delivered() -> bool:
        seen_running.append(engine.stack.status().controller_running)
        return engine.stack.count() == 0

    await run_until(controller, delivered)
    assert True in seen_running  # its heartbeat showed while it ran
    assert [(r.refnumber, r.orderstatus, r.tracking) for r in simulator.received] == [
        (number, "Shipped", [("UPS", "1Z999", "")])]
    assert not engine.stack.status().controller_running  # signed off when stopped


# -- rule 6 ------------------------------------------------------------------

async def test_rule_6_only_the_ok_reply_deletes_the_record(
    make_engine: Callable[..., StatusEngine], simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    engine = make_engine(controller=SEND_NOW)
    garbled, refused, ok = add_orders(engine, 3)
    engine.fire("Order Shipped", [garbled, refused, ok])
    simulator.fail_next("garbled")
    simulator.fail_next("refuse")
    controller = StackController(engine.config, engine.stack, transport=sim_transport)

    await run_until(controller, lambda: simulator.requests >= 3 and controller.stats.delivered >= 1)

    left = {r.order_number: r for r in engine.stack.records()}
    assert set(left) == {garbled, refused}
    assert left[garbled].state() == "waiting"
    assert "unreadable reply" in (left[garbled].last_error or "")
    assert left[refused].state() == "parked"
    assert "Status change not allowed" in (left[refused].last_error or "")
    assert [r.refnumber for r in simulator.received] == [ok]
    assert engine.show_order(refused)["pending"][0]["last_error"] == left[refused].last_error


@pytest.mark.parametrize("style", ["colon", "equals", "upper"])
async def test_rule_6_every_variant_of_the_ok_reply_counts(
    style: str, engine: StatusEngine, simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    simulator.reply_style = style
    numbers = add_orders(engine, 2)
    engine.fire("Order Shipped", numbers)
    stats = await StackController(engine.config, engine.stack, transport=sim_transport).run(drain=True)
    assert (stats.delivered, stats.rescheduled, stats.parked) == (2, 0, 0)
    assert engine.stack.count() == 0


# -- internal only -----------------------------------------------------------

async def test_internal_only_labels_and_history_change_nothing_is_queued(
    make_engine: Callable[..., StatusEngine], simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    engine = make_engine(status_events=[
        {"event": "Invoice Printed", "order_status": "Printed"},  # Notify Cart defaults to unchecked
        {"event": "Order Shipped", "order_status": "Shipped", "notify_cart": False},
    ])
    numbers = add_orders(engine, 2)

    printed = engine.fire("Invoice Printed", numbers)
    shipped = engine.fire("Order Shipped", numbers)

    assert all(r.changed and not r.queued and r.route == "internal" for r in printed + shipped)
    for n in numbers:
        info = engine.show_order(n)
        assert info["status"] == "Shipped"
        assert [(h["event"], h["from"], h["to"], h["route"]) for h in info["history"]] == [
            (None, None, "New", "imported"),
            ("Invoice Printed", "New", "Printed", "internal"),
            ("Order Shipped", "Printed", "Shipped", "internal"),
        ]
        assert info["pending"] == []
    assert engine.stack.count() == 0
    await StackController(engine.config, engine.stack, transport=sim_transport).run(drain=True)
    assert simulator.requests == 0
