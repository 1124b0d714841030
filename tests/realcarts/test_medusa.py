"""End to end against a real Medusa 2.x: status events fired in cartstatus, carried by the stack controller
through the ``medusa`` connector, and read back from Medusa's own Admin API.

The cart is installed once into ``.cache/realcarts/medusa/`` and started for the session (see
``tests/realcarts/medusa.py``); its orders are placed through the Store API as a shopper would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cartstatus import StatusEngine, load_config
from cartstatus.connector import Tracking
from cartstatus.connectors.medusa import MedusaConnector
from cartstatus.controller import StackController
from cartstatus.outcomes import AlreadyDone, Delivered, Failed
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update

from .medusa import MedusaCart, medusa_cart  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.realcart

PASSWORD_ENV = "MEDUSA_ADMIN_PASSWORD"
UPS = "1Z999AA10123456784"
FEDEX = "794644790132"


@pytest.fixture
def engine(medusa_cart: MedusaCart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusEngine]:  # noqa: F811
    """A setup file with one Medusa store, as a merchant would write it (the password from the environment)."""
    monkeypatch.setenv(PASSWORD_ENV, medusa_cart.password)
    setup: dict[str, Any] = {
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": event, "order_status": label, "notify_cart": True} for event, label in (
            ("Payment Received", "Payment Received"), ("Order Shipped", "Shipped"),
            ("Order Delivered", "Delivered"), ("Order Completed", "Completed"), ("Order Cancelled", "Cancelled"))],
        "stores": [{"id": "medusa", "cart": "medusa",
                    "connector": {"url": medusa_cart.url, "email": medusa_cart.email,
                                  "password": {"$env": PASSWORD_ENV}, "timeout": 30}}],
        "stack": {"url": f"sqlite:///{tmp_path / 'stack.db'}"},
        "controller": {"backoff_base": 0.01, "backoff_cap": 0.05},
    }
    path = tmp_path / "cartstatus.yaml"
    path.write_text(yaml.safe_dump(setup, sort_keys=False))
    eng = StatusEngine(load_config(path))
    yield eng
    eng.db.dispose()


def add_order(engine: StatusEngine, cart: MedusaCart, number: str, *, ebook: bool = False) -> str:
    """A shopper's order in Medusa, known to cartstatus by ``number`` with Medusa's id as its cart reference."""
    order_id = cart.place_order(ebook=ebook)
    engine.upsert_orders([{"order_number": number, "store": "medusa", "status": "New", "cart_order_ref": order_id,
                           "email": "shopper@example.com", "zip": "12345"}])
    return order_id


async def drain(engine: StatusEngine) -> tuple[int, int]:
    stats = await StackController(engine.config, engine.stack).run(drain=True)
    return stats.delivered, stats.parked


READ_BACK = ("id,status,payment_status,fulfillment_status,metadata,fulfillments.id,fulfillments.shipped_at,"
             "fulfillments.requires_shipping,"
             "fulfillments.delivered_at,fulfillments.metadata,fulfillments.labels.tracking_number,"
             "fulfillments.labels.tracking_url,fulfillments.labels.label_url")


async def test_paid_shipped_with_tracking_then_delivered(engine: StatusEngine, medusa_cart: MedusaCart) -> None:  # noqa: F811
    order_id = add_order(engine, medusa_cart, "M-1001")
    before = medusa_cart.order(order_id, READ_BACK)
    assert (before["status"], before["payment_status"], before["fulfillment_status"]) == (
        "pending", "authorized", "not_fulfilled")

    engine.fire("Payment Received", ["M-1001"])
    assert await drain(engine) == (1, 0)
    paid = medusa_cart.order(order_id, READ_BACK)
    assert paid["payment_status"] == "captured", paid

    engine.fire("Order Shipped", ["M-1001"], tracking=[f"UPS:{UPS}", f"FedEx:{FEDEX}"])
    assert await drain(engine) == (1, 0)
    shipped = medusa_cart.order(order_id, READ_BACK)
    assert shipped["fulfillment_status"] == "shipped", shipped
    [fulfillment] = shipped["fulfillments"]
    assert fulfillment["shipped_at"] and not fulfillment["delivered_at"]
    labels = {label["tracking_number"]: label for label in fulfillment["labels"]}
    assert sorted(labels) == sorted([UPS, FEDEX])
    assert labels[UPS]["tracking_url"] == f"https://www.ups.com/track?tracknum={UPS}"
    assert fulfillment["metadata"] == {"cartstatus_carriers": {UPS: "UPS", FEDEX: "FedEx"}}

    engine.fire("Order Delivered", ["M-1001"])
    assert await drain(engine) == (1, 0)
    delivered = medusa_cart.order(order_id, READ_BACK)
    assert delivered["fulfillment_status"] == "delivered", delivered
    assert [len(f["labels"]) for f in delivered["fulfillments"]] == [2]  # nothing made twice
    assert [r.state() for r in engine.stack.records()] == []


async def test_an_order_with_an_ebook_is_fulfilled_in_two_and_shipped_whole(
        engine: StatusEngine, medusa_cart: MedusaCart) -> None:  # noqa: F811
    """Medusa refuses one fulfillment of items that need shipping and items that do not."""
    order_id = add_order(engine, medusa_cart, "M-3001", ebook=True)
    engine.fire("Order Shipped", ["M-3001"], tracking=[f"UPS:{UPS}"])
    assert await drain(engine) == (1, 0)
    order = medusa_cart.order(order_id, READ_BACK)
    assert order["fulfillment_status"] == "shipped", order
    assert sorted((f["requires_shipping"], [label["tracking_number"] for label in f["labels"]])
                  for f in order["fulfillments"]) == [(False, []), (True, [UPS])]


async def test_a_refused_transition_is_parked_with_medusas_message(
        engine: StatusEngine, medusa_cart: MedusaCart) -> None:  # noqa: F811
    order_id = add_order(engine, medusa_cart, "M-2001")
    engine.fire("Order Completed", ["M-2001"])
    assert await drain(engine) == (1, 0)
    assert medusa_cart.order(order_id, READ_BACK)["status"] == "completed"

    engine.fire("Order Cancelled", ["M-2001"])
    assert await drain(engine) == (0, 1)
    [record] = engine.stack.records()
    assert record.state() == "parked"
    assert "Cannot cancel a completed order" in (record.last_error or ""), record.last_error
    assert "not_allowed" in (record.last_error or "")
    assert medusa_cart.order(order_id, READ_BACK)["status"] == "completed"  # Medusa left it as it was


def connector(cart: MedusaCart, password: str | None = None) -> MedusaConnector:
    settings = {"url": cart.url, "email": cart.email, "password": password or cart.password, "timeout": 30}
    return MedusaConnector(wrap_secrets(settings, MedusaConnector.settings_schema))


async def test_a_repeat_creates_nothing_twice_on_the_real_cart(medusa_cart: MedusaCart) -> None:  # noqa: F811
    order_id = medusa_cart.place_order()
    update = make_update(order_id, "delivered", tracking=(Tracking("UPS", UPS), Tracking("FedEx", FEDEX)))
    first = connector(medusa_cart)
    try:
        assert isinstance(await first.send(update), Delivered)
        assert isinstance(await first.send(update), AlreadyDone)
    finally:
        await first.aclose()
    second = connector(medusa_cart)  # a controller restarted: a new login, the same answer
    try:
        assert isinstance(await second.send(update), AlreadyDone)
    finally:
        await second.aclose()
    order = medusa_cart.order(order_id, READ_BACK)
    assert order["fulfillment_status"] == "delivered"
    assert [sorted(label["tracking_number"] for label in f["labels"]) for f in order["fulfillments"]] == [
        sorted([UPS, FEDEX])]


async def test_connection_unknown_order_and_a_wrong_password_on_the_real_cart(
        medusa_cart: MedusaCart) -> None:  # noqa: F811
    good = connector(medusa_cart)
    try:
        tested = await good.test_connection()
        assert tested.ok and medusa_cart.email in tested.detail, tested
        unknown = await good.send(make_update("order_01NOSUCHORDER", "shipped"))
        assert isinstance(unknown, Failed) and "Order id not found: order_01NOSUCHORDER" in unknown.reason, unknown
    finally:
        await good.aclose()
    bad = connector(medusa_cart, "wrong-" + medusa_cart.password)
    try:
        refused = await bad.test_connection()
        assert not refused.ok and "Invalid email or password" in refused.detail, refused
        assert medusa_cart.password not in refused.detail
    finally:
        await bad.aclose()
