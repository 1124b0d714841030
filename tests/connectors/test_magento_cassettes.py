"""The magento connector's exchanges with a store, replayed from cassettes (recorded from the simulator with
``make cassettes``; replayed with the simulator never reached, so the connector's reading of Magento's recorded
replies is tested on its own)."""

from __future__ import annotations

from typing import Any

from cartstatus.connector import Tracking
from cartstatus.connectors.magento import MagentoConnector
from cartstatus.connectors.magento.simulator import MagentoSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = MagentoConnector
SETTINGS = {"url": "https://shop.test", "token": "cassette-Magento-token-7f2c", "store_code": "default"}
TRACKS = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


def store(sim: MagentoSimulator, **settings: Any) -> MagentoConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim))


async def test_a_delivery_with_two_tracking_numbers_its_repeat_and_an_unknown_order_replay() -> None:
    sim = MagentoSimulator(token=SETTINGS["token"])
    sim.add_order("000000101")
    connector = store(sim)
    update = make_update("000000101", "complete", tracking=TRACKS, note="shipped")
    with cassette("magento", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await connector.test_connection()
            shipped = await connector.send(update)
            again = await connector.send(update)
            unknown = await connector.send(make_update("000000404", "complete"))
        finally:
            await connector.aclose()
    assert tested.ok, tested.detail
    assert isinstance(shipped, Delivered) and "2 tracking numbers" in shipped.detail, shipped
    assert isinstance(again, AlreadyDone), again
    assert unknown == Failed("Magento has no order with increment id '000000404'")
    assert sim.requests == (10 if recording() else 0)  # replayed: the store was never reached


async def test_a_refused_token_replay() -> None:
    sim = MagentoSimulator(token=SETTINGS["token"])
    settings = {**SETTINGS, "token": "cassette-wrong-token-99"}
    connector = store(sim, token=settings["token"])
    with cassette("magento", "refused_token", settings=settings, schema=CONNECTOR.settings_schema):
        try:
            result = await connector.test_connection()
        finally:
            await connector.aclose()
    assert not result.ok
    assert "Magento refused the access token (HTTP 401)" in result.detail
    assert "Magento_Sales::actions_view" in result.detail
    assert sim.requests == (1 if recording() else 0)


async def test_magentos_own_cases_replay() -> None:
    """An invoiced order cannot be canceled, an order in payment review takes nothing, and a tracking number
    that comes after the whole order shipped joins its latest shipment."""
    sim = MagentoSimulator(token=SETTINGS["token"])
    sim.add_order("000000201", "processing")
    sim.add_order("000000202", "payment_review")
    connector = store(sim)
    late = Tracking("DHL", "JD014600006281234567")
    with cassette("magento", "special_cases", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            cancel = await connector.send(make_update("000000201", "canceled"))
            review = await connector.send(make_update("000000202", "holded"))
            shipped = await connector.send(make_update("000000201", "complete", tracking=TRACKS[:1]))
            later = await connector.send(make_update("000000201", "complete", tracking=(*TRACKS[:1], late)))
        finally:
            await connector.aclose()
    assert cancel == Failed("Magento cannot cancel an order that is wholly invoiced: refund it with a credit memo")
    assert review == Failed("the order is payment_review in Magento (payment review): settle its payment first")
    assert isinstance(shipped, Delivered), shipped
    assert isinstance(later, Delivered) and "added to shipment 000000001" in later.detail, later
    assert sim.requests == (12 if recording() else 0)


async def test_a_hosts_throttling_replay() -> None:
    sim = MagentoSimulator(token=SETTINGS["token"], quota=1, window_seconds=60)
    sim.add_order("000000301")
    connector = store(sim)
    with cassette("magento", "throttled", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            outcome = await connector.send(make_update("000000301", "processing"))
        finally:
            await connector.aclose()
    assert isinstance(outcome, RetryLater) and outcome.delay == 60.0, outcome
    assert sim.requests == (2 if recording() else 0)
