"""The shopify connector's exchanges with a Shopify store, replayed from cassettes (recorded from the simulator
with ``make cassettes``); replayed, the simulator is never reached, so the connector's reading of Shopify's
recorded words (userErrors, THROTTLED with its cost, the 401 body) is tested on its own."""

from __future__ import annotations

from cartstatus.connector import Tracking
from cartstatus.connectors.shopify import ShopifyConnector
from cartstatus.connectors.shopify.simulator import ShopifySimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = ShopifyConnector
SETTINGS = {"shop": "cassette-store.myshopify.com", "access_token": "shpat_cassette_Token-9x",
            "api_base": "https://shop.test"}
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


def connector(sim: ShopifySimulator, **settings: str) -> ShopifyConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim, timeout_cap=5.0))


def simulator(**kw: float) -> ShopifySimulator:
    return ShopifySimulator(access_token=SETTINGS["access_token"], **kw)  # type: ignore[arg-type]


async def test_a_delivery_with_two_carriers_its_repeat_and_an_unknown_order_replay() -> None:
    sim = simulator()
    sim.add_order("820982911946154508")
    cart = connector(sim)
    with cassette("shopify", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
            shipped = await cart.send(make_update("820982911946154508", "fulfilled", tracking=TRACKING))
            again = await cart.send(make_update("820982911946154508", "fulfilled", tracking=TRACKING))
            unknown = await cart.send(make_update("404", "fulfilled", tracking=TRACKING))
        finally:
            await cart.aclose()
    assert tested.ok, tested.detail
    assert isinstance(shipped, Delivered) and "UPS 1Z999AA10123456784" in shipped.detail, shipped
    assert isinstance(again, AlreadyDone), again
    assert isinstance(unknown, Failed) and "gid://shopify/Order/404" in unknown.reason, unknown
    assert sim.requests == (1 + 3 + 1 + 1 if recording() else 0)  # replayed: Shopify was never reached


async def test_a_refused_token_replay() -> None:
    sim = simulator()
    cart = connector(sim, access_token="shpat_not_the_token_1")
    with cassette("shopify", "refused_token", settings={**SETTINGS, "access_token": "shpat_not_the_token_1"},
                  schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
        finally:
            await cart.aclose()
    assert not tested.ok and "HTTP 401" in tested.detail and "Invalid API key or access token" in tested.detail
    assert sim.requests == (1 if recording() else 0)


async def test_shopify_refusing_a_cancel_and_a_close_then_cancel_replay() -> None:
    sim = simulator()
    sim.add_order("1001", "fulfilled")
    sim.add_order("1002")
    cart = connector(sim)
    with cassette("shopify", "cancel", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            refused = await cart.send(make_update("1001", "cancelled"))
            closed = await cart.send(make_update("1002", "closed"))
            cancelled = await cart.send(make_update("1002", "cancelled", note="customer asked"))
        finally:
            await cart.aclose()
    assert refused == Failed("the cart refused: INVALID: Cannot cancel an order with fulfillments that can't be "
                             "cancelled (orderId)"), refused
    assert isinstance(closed, Delivered) and isinstance(cancelled, Delivered) and "job" in cancelled.detail
    assert sim.requests == (6 if recording() else 0)


async def test_a_throttled_read_is_sent_again_once_the_bucket_has_room_replay() -> None:
    sim = simulator(bucket_size=200.0, restore_rate=1000.0)
    sim.add_order("1003")
    cart = connector(sim)
    with cassette("shopify", "throttled", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            sim.available()
            sim._available = 100.0  # less than the order read's 179 points
            outcome = await cart.send(make_update("1003", "paid"))
        finally:
            await cart.aclose()
    assert isinstance(outcome, Delivered), outcome
    assert cart.throttled == 1
    assert sim.requests == (3 if recording() else 0)
    assert cart.latest_limit_hint is not None
