"""End to end against a real Vendure (installed from npm, seeded, served on 127.0.0.1: tests/realcarts/vendure.py).

An order placed through Vendure's Shop API has its status changed through cartstatus (StatusEngine.fire, then
the stack controller with the real connector) and is read back from Vendure's Admin API: paid (its payment
settled), shipped with a tracking number, delivered, and a move Vendure refuses parked with Vendure's words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cartstatus import StackController, StatusEngine, load_config
from cartstatus.connector import Tracking
from cartstatus.connectors.vendure import VendureConnector
from cartstatus.outcomes import AlreadyDone, Delivered, Failed
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update

from ..conftest import base_setup
from .vendure import VendureCart, vendure_cart

pytestmark = pytest.mark.realcart
__all__ = ["vendure_cart"]  # the session fixture, used by every test here

PASSWORD_ENV = "VENDURE_TEST_PASSWORD"
EVENTS = (("Payment Received", "Payment Received"), ("Order Shipped", "Shipped"),
          ("Order Delivered", "Delivered"), ("Order Cancelled", "Cancelled"))


@pytest.fixture
def engine(vendure_cart: VendureCart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusEngine]:
    """cartstatus with one store on the real Vendure, its password from the environment as a merchant's is."""
    monkeypatch.setenv(PASSWORD_ENV, vendure_cart.password)
    setup = base_setup(
        status_events=[{"event": event, "order_status": label, "notify_cart": True} for event, label in EVENTS],
        stores=[{"id": "vendure", "cart": "vendure", "connector": {
            "url": vendure_cart.admin_api, "username": vendure_cart.username,
            "password": {"$env": PASSWORD_ENV}, "timeout": 20}}],
        stack={"url": f"sqlite:///{tmp_path / 'stack.db'}"},
        controller={"backoff_base": 0.01, "backoff_cap": 0.05, "lease_seconds": 30})
    path = tmp_path / "cartstatus.yaml"
    path.write_text(yaml.safe_dump(setup, sort_keys=False))
    eng = StatusEngine(load_config(path))
    yield eng
    eng.db.dispose()


def run_stack(engine: StatusEngine) -> Any:
    """The stack controller, with the connector the registry gives for the store's cart, until drained."""
    return asyncio.run(StackController(engine.config, engine.stack).run(drain=True))


def connector(cart: VendureCart) -> VendureConnector:
    return VendureConnector(wrap_secrets({"url": cart.admin_api, "username": cart.username,
                                          "password": cart.password}, VendureConnector.settings_schema))


def test_paid_shipped_delivered_and_a_refused_move_parked(vendure_cart: VendureCart, engine: StatusEngine) -> None:
    code = vendure_cart.place_order((2, 1))
    engine.upsert_orders([{"order_number": "5001", "store": "vendure", "status": "New", "cart_order_ref": code,
                           "email": "ada@example.com", "zip": "N1 1AA"}])

    engine.fire_event("5001", "Payment Received")
    assert run_stack(engine).delivered == 1
    order = vendure_cart.order(code)
    assert order["state"] == "PaymentSettled"
    assert [p["state"] for p in order["payments"]] == ["Settled"]

    engine.fire_event("5001", "Order Shipped", tracking=[Tracking("UPS", "1Z999AA10123456784")])
    assert run_stack(engine).delivered == 1
    order = vendure_cart.order(code)
    assert order["state"] == "Shipped"
    assert [(f["method"], f["trackingCode"], f["state"]) for f in order["fulfillments"]] == [
        ("UPS", "1Z999AA10123456784", "Shipped")]
    # The one fulfillment holds every item of the order.
    assert sorted((fl["orderLineId"], fl["quantity"]) for fl in order["fulfillments"][0]["lines"]) == sorted(
        (line["id"], line["quantity"]) for line in order["lines"])

    engine.fire_event("5001", "Order Delivered")
    assert run_stack(engine).delivered == 1
    order = vendure_cart.order(code)
    assert order["state"] == "Delivered"
    assert [f["state"] for f in order["fulfillments"]] == ["Delivered"]

    # Vendure's order process has no way back from Delivered to Shipped: refused, parked with its words.
    engine.fire_event("5001", "Order Shipped")
    stats = run_stack(engine)
    assert (stats.delivered, stats.parked) == (0, 1)
    [parked] = engine.stack.records(states=["parked"])
    assert parked.last_error is not None
    assert 'Cannot transition Order from "Delivered" to "Shipped"' in parked.last_error
    assert "ORDER_STATE_TRANSITION_ERROR" in parked.last_error
    assert vendure_cart.order(code)["state"] == "Delivered"


def test_a_cancellation_through_cartstatus(vendure_cart: VendureCart, engine: StatusEngine) -> None:
    code = vendure_cart.place_order((1,))
    engine.upsert_orders([{"order_number": "5002", "store": "vendure", "status": "New", "cart_order_ref": code,
                           "email": "ada@example.com", "zip": "N1 1AA"}])
    engine.fire_event("5002", "Order Cancelled", note="customer changed their mind")
    assert run_stack(engine).delivered == 1
    order = vendure_cart.order(code)
    assert order["state"] == "Cancelled"
    assert [line["quantity"] for line in order["lines"]] == [0]


def test_two_tracking_numbers_share_the_items_and_a_repeat_creates_nothing(vendure_cart: VendureCart) -> None:
    code = vendure_cart.place_order((2, 1))
    tracking = (Tracking("UPS", "1Z999AA10123456785"), Tracking("FedEx", "794644790133"))

    async def deliver() -> list[Any]:
        cart = connector(vendure_cart)
        try:
            outcomes = [await cart.send(make_update(code, "PaymentSettled"))]
            outcomes.append(await cart.send(make_update(code, "Shipped", tracking=tracking)))
            outcomes.append(await cart.send(make_update(code, "Shipped", tracking=tracking)))  # a repeat
            return outcomes
        finally:
            await cart.aclose()

    paid, shipped, again = asyncio.run(deliver())
    assert isinstance(paid, Delivered) and isinstance(shipped, Delivered), (paid, shipped)
    assert isinstance(again, AlreadyDone), again
    order = vendure_cart.order(code)
    assert order["state"] == "Shipped"
    lines = [line["id"] for line in order["lines"]]
    assert [(f["method"], f["trackingCode"], f["state"], [(fl["orderLineId"], fl["quantity"]) for fl in f["lines"]])
            for f in order["fulfillments"]] == [
        ("UPS", "1Z999AA10123456785", "Shipped", [(lines[0], 2)]),
        ("FedEx", "794644790133", "Shipped", [(lines[1], 1)])]


def test_an_unknown_order_and_a_refused_password(vendure_cart: VendureCart) -> None:
    async def deliver() -> tuple[Any, Any]:
        cart = connector(vendure_cart)
        wrong = VendureConnector(wrap_secrets({"url": vendure_cart.admin_api, "username": vendure_cart.username,
                                               "password": "wrong-password"}, VendureConnector.settings_schema))
        try:
            return await cart.send(make_update("NO-SUCH-ORDER", "Shipped")), await wrong.test_connection()
        finally:
            await cart.aclose()
            await wrong.aclose()

    unknown, refused = asyncio.run(deliver())
    assert isinstance(unknown, Failed) and "NO-SUCH-ORDER" in unknown.reason, unknown
    assert not refused.ok and "INVALID_CREDENTIALS_ERROR" in refused.detail, refused


def test_a_token_vendure_stopped_taking_is_renewed_once(vendure_cart: VendureCart) -> None:
    first, second = vendure_cart.place_order((1,)), vendure_cart.place_order((1,))

    async def deliver() -> tuple[Any, Any, int]:
        cart = connector(vendure_cart)
        try:
            before = await cart.send(make_update(first, "PaymentSettled"))
            token = cart.held_secrets()[-1]
            # The session ends at Vendure (as when it expires): the token is refused with FORBIDDEN in an HTTP 200.
            async with httpx.AsyncClient(timeout=30) as admin:
                await admin.post(vendure_cart.admin_api, json={"query": "mutation { logout { success } }"},
                                 headers={"Authorization": f"Bearer {token}"})
            after = await cart.send(make_update(second, "PaymentSettled"))
            return before, after, len(set(cart.held_secrets()))
        finally:
            await cart.aclose()

    before, after, tokens = asyncio.run(deliver())
    assert isinstance(before, Delivered) and isinstance(after, Delivered), (before, after)
    assert tokens == 2  # one login more
    assert vendure_cart.order(second)["state"] == "PaymentSettled"


def test_the_connection_test_and_delivered_straight_from_paid_without_a_number(vendure_cart: VendureCart) -> None:
    code = vendure_cart.place_order((1, 2))

    async def deliver() -> tuple[Any, list[Any]]:
        cart = connector(vendure_cart)
        try:
            tested = await cart.test_connection()
            return tested, [await cart.send(make_update(code, "PaymentSettled")),
                            await cart.send(make_update(code, "Delivered")),
                            await cart.send(make_update(code, "Delivered"))]
        finally:
            await cart.aclose()

    tested, (paid, delivered, again) = asyncio.run(deliver())
    assert tested.ok, tested
    assert isinstance(paid, Delivered) and isinstance(delivered, Delivered), (paid, delivered)
    assert isinstance(again, AlreadyDone), again
    order = vendure_cart.order(code)
    assert order["state"] == "Delivered"
    # One fulfillment without a tracking code holds every item, delivered (Pending to Delivered directly).
    assert [(f["trackingCode"], f["state"], sum(fl["quantity"] for fl in f["lines"])) for f in order["fulfillments"]] \
        == [("", "Delivered", 3)]
