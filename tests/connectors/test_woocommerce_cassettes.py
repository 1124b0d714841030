"""The woocommerce connector's exchanges with a store, replayed from cassettes (recorded from the simulator with
``make cassettes``; replayed here with the simulator never reached, so the connector's reading of WooCommerce's
recorded replies is tested on its own)."""

from __future__ import annotations

from typing import Any

from cartstatus.connector import Tracking
from cartstatus.connectors.woocommerce import WooCommerceConnector
from cartstatus.connectors.woocommerce.simulator import WooCommerceSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = WooCommerceConnector
SETTINGS: dict[str, Any] = {"url": "https://shop.test", "consumer_key": "ck_cassette+Key/0123456789abcdef",
                            "consumer_secret": "cs_Cassette Secret&9=x/0123456789"}
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


def store(**kwargs: Any) -> WooCommerceSimulator:
    sim = WooCommerceSimulator(consumer_key=SETTINGS["consumer_key"], consumer_secret=SETTINGS["consumer_secret"],
                               **kwargs)
    for ref in ("1001", "1002", "1003"):
        sim.add_order(ref, "processing")
    return sim


def connector(sim: WooCommerceSimulator, **settings: Any) -> WooCommerceConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim))


def replayed(sim: WooCommerceSimulator, recorded: int) -> None:
    assert sim.requests == (recorded if recording() else 0)  # replayed: the store was never reached


async def test_a_delivery_with_two_tracking_numbers_a_repeat_and_an_unknown_order_replay() -> None:
    sim = store()
    woo = connector(sim)
    update = make_update("1001", "completed", tracking=TRACKING)
    with cassette("woocommerce", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await woo.test_connection()
            shipped = await woo.send(update)
            again = await woo.send(update)
            unknown = await woo.send(make_update("4040", "completed"))
            unknown_tracked = await woo.send(make_update("4040", "completed", tracking=TRACKING))
        finally:
            await woo.aclose()
    assert tested.ok, tested.detail
    assert isinstance(shipped, Delivered) and "2 tracking note(s) added" in shipped.detail, shipped
    assert isinstance(again, Delivered | AlreadyDone) and "tracking note" not in str(again), again
    assert isinstance(unknown, Failed) and "woocommerce_rest_shop_order_invalid_id" in unknown.reason
    assert isinstance(unknown_tracked, Failed) and "HTTP 404" in unknown_tracked.reason
    replayed(sim, 1 + 4 + 2 + 1 + 1)
    if recording():
        assert sim.tracking_numbers("1001") == [("UPS", "1Z999AA10123456784"), ("FedEx", "794644790132")]


async def test_a_refused_credential_replay() -> None:
    sim = store()
    woo = connector(sim, consumer_secret="cs_not-the-store-secret-000")
    with cassette("woocommerce", "refused", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await woo.test_connection()
            sent = await woo.send(make_update("1001", "completed"))
        finally:
            await woo.aclose()
    assert not tested.ok and "Consumer secret is invalid." in tested.detail
    assert isinstance(sent, Failed) and "woocommerce_rest_authentication_error" in sent.reason
    replayed(sim, 2)


async def test_a_batch_with_an_item_error_and_a_smaller_store_limit_replay() -> None:
    sim = store(batch_limit=2)
    woo = connector(sim)
    updates = [make_update("1001", "completed", tracking=TRACKING[:1]), make_update("4040", "completed"),
               make_update("1002", "cancelled")]
    with cassette("woocommerce", "batch", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            outcomes = await woo.send_batch(updates)
        finally:
            await woo.aclose()
    assert [type(o) for o in outcomes] == [Delivered, Failed, Delivered]
    assert "woocommerce_rest_shop_order_invalid_id" in outcomes[1].reason  # type: ignore[union-attr]
    assert woo.batch_limit == 2  # the 413's limit, read from WooCommerce's words
    replayed(sim, 2 + 3)  # the notes (read, one written), then 3 refused with 413, then 2 and 1


async def test_throttled_and_unavailable_replay() -> None:
    sim = store(quota=2, window_seconds=30.0)
    woo = connector(sim)
    with cassette("woocommerce", "throttled", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            first = await woo.send(make_update("1001", "completed"))
            sim.fail_next("http_503")
            unavailable = await woo.send(make_update("1002", "completed"))
            throttled = await woo.send(make_update("1003", "completed"))
        finally:
            await woo.aclose()
    assert isinstance(first, Delivered)
    assert isinstance(unavailable, RetryLater) and unavailable.delay == sim.retry_after
    assert isinstance(throttled, RetryLater) and throttled.delay is not None and throttled.delay >= 29
    replayed(sim, 3)
