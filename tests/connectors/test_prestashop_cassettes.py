"""The prestashop connector's exchanges with a PrestaShop webservice, replayed from cassettes.

Recorded from the simulator (``make cassettes``); replayed here with the simulator never reached, so the
connector's reading of the webservice's recorded replies (JSON bodies, error bodies, an empty 404, a 429)
is tested on its own.
"""

from __future__ import annotations

from cartstatus.connector import Tracking
from cartstatus.connectors.prestashop import PrestaShopConnector
from cartstatus.connectors.prestashop.simulator import PrestaShopSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = PrestaShopConnector
SETTINGS = {"url": "https://shop.test", "api_key": "CASSETTEKEY0123456789ABCDEFGHIJK"}
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132", "2024-05-02"))


def connector(sim: PrestaShopSimulator, **settings: str) -> PrestaShopConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim))


async def test_a_delivery_with_two_numbers_its_repeat_and_an_unknown_order_replay() -> None:
    sim = PrestaShopSimulator(api_key=SETTINGS["api_key"])
    sim.add_order("5")
    cart = connector(sim)
    with cassette("prestashop", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
            shipped = await cart.send(make_update("5", "Shipped", tracking=TRACKING))
            again = await cart.send(make_update("5", "Shipped", tracking=TRACKING))
            unknown = await cart.send(make_update("404", "Shipped", tracking=TRACKING))
        finally:
            await cart.aclose()
    assert tested.ok and "8.1.7" in tested.detail, tested.detail
    assert isinstance(shipped, Delivered) and "UPS" in shipped.detail and "FedEx" in shipped.detail, shipped
    assert isinstance(again, AlreadyDone), again
    assert isinstance(unknown, Failed) and "/api/orders/404" in unknown.reason, unknown
    # test_connection (which reads the statuses), 6 requests for the delivery, 2 reads for the repeat, 1
    assert sim.requests == (1 + 6 + 2 + 1 if recording() else 0)


async def test_an_order_by_reference_and_a_status_the_shop_lacks_replay() -> None:
    sim = PrestaShopSimulator(api_key=SETTINGS["api_key"])
    sim.order_states[4]["name"] = {1: "Sent", 2: "Envoyé"}
    sim.add_order("XKBKNABJK")
    cart = connector(sim)
    with cassette("prestashop", "reference", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            delivered = await cart.send(make_update("XKBKNABJK", "Delivered"))
            renamed = await cart.send(make_update("XKBKNABJK", "Shipped"))
            missing = await cart.send(make_update("QQQQQQQQQ", "Delivered"))
        finally:
            await cart.aclose()
    assert isinstance(delivered, Delivered), delivered
    assert isinstance(renamed, Failed) and "'Sent'" in renamed.reason, renamed
    assert isinstance(missing, Failed) and "QQQQQQQQQ" in missing.reason, missing
    assert sim.requests == (3 + 1 + 1 if recording() else 0)


async def test_a_refused_key_replay() -> None:
    sim = PrestaShopSimulator(api_key=SETTINGS["api_key"])
    sim.add_order("5")
    cart = connector(sim, api_key="NOTTHEKEY0123456789ABCDEFGHIJKLM")
    with cassette("prestashop", "refused_key", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
            outcome = await cart.send(make_update("5", "Shipped"))
        finally:
            await cart.aclose()
    assert not tested.ok and "Authentification key is not active (code 20)" in tested.detail, tested.detail
    assert isinstance(outcome, Failed) and "HTTP 401" in outcome.reason, outcome
    assert sim.requests == (2 if recording() else 0)


async def test_a_hosts_429_and_a_key_without_permission_replay() -> None:
    sim = PrestaShopSimulator(api_key=SETTINGS["api_key"], quota=3, window_seconds=60.0)
    sim.permissions["order_histories"] = {"GET"}
    sim.add_order("5")
    sim.add_order("6")
    cart = connector(sim)
    with cassette("prestashop", "throttled", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            refused = await cart.send(make_update("5", "Canceled"))  # 3 requests: the POST is refused (405)
            throttled = await cart.send(make_update("6", "Canceled"))  # the host's 4th request in 60 s: 429
        finally:
            await cart.aclose()
    assert isinstance(refused, Failed) and "(code 25)" in refused.reason, refused
    assert isinstance(throttled, RetryLater) and throttled.delay is not None and throttled.delay >= 59, throttled
    assert sim.requests == (4 if recording() else 0)
