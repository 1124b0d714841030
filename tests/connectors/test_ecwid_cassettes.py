"""The ecwid connector's exchanges with Ecwid's REST API, replayed from cassettes.

Recorded from the simulator (``make cassettes``); replayed here with the simulator never reached, so the
connector's reading of Ecwid's recorded answers (its error bodies, its 429 with Retry-After) is tested on its own.
"""

from __future__ import annotations

from typing import Any

from cartstatus.connector import ConnectionResult, Tracking
from cartstatus.connectors.ecwid import EcwidConnector
from cartstatus.connectors.ecwid.simulator import EcwidSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = EcwidConnector
SETTINGS = {"store_id": 1003, "token": "secret_CassetteEcwidToken42xyz", "api_base": "https://shop.test/api/v3"}
TWO = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132", "2024-05-02"))


def simulator(**kwargs: Any) -> EcwidSimulator:
    return EcwidSimulator(token=SETTINGS["token"], **kwargs)


def connector(sim: EcwidSimulator, **settings: Any) -> EcwidConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim))


def reached(sim: EcwidSimulator, requests: int) -> None:
    assert sim.requests == (requests if recording() else 0)  # replayed: the cart was never reached


async def test_connection_a_delivery_with_two_numbers_a_repeat_and_a_payment_status_replay() -> None:
    sim = simulator()
    sim.add_order("C-1001")
    cart = connector(sim)
    shipped = make_update("C-1001", "SHIPPED", tracking=TWO)
    with cassette("ecwid", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
            outcomes = [await cart.send(shipped), await cart.send(shipped),
                        await cart.send(make_update("C-1001", "PAID"))]
        finally:
            await cart.aclose()
    assert tested.ok and "1003" in tested.detail, tested
    assert isinstance(outcomes[0], Delivered) and "2 tracking number(s)" in outcomes[0].detail, outcomes
    assert isinstance(outcomes[1], AlreadyDone), outcomes  # the repeat: one GET, no PUT
    assert isinstance(outcomes[2], Delivered) and "paymentStatus PAID" in outcomes[2].detail, outcomes
    reached(sim, 1 + 2 + 1 + 2)


async def test_an_unknown_order_and_a_token_without_the_update_scope_replay() -> None:
    sim = simulator(scopes=frozenset({"read_store_profile", "read_orders"}))
    sim.add_order("C-1002")
    cart = connector(sim)
    with cassette("ecwid", "refusals", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            unknown = await cart.send(make_update("C-4040", "SHIPPED", tracking=TWO))
            no_scope = await cart.send(make_update("C-1002", "SHIPPED"))
        finally:
            await cart.aclose()
    assert isinstance(unknown, Failed) and "404" in unknown.reason and "ORDER_NOT_FOUND" in unknown.reason, unknown
    assert isinstance(no_scope, Failed) and "INSUFFICIENT_APP_SCOPE" in no_scope.reason, no_scope
    reached(sim, 1 + 2)


async def test_a_refused_token_replay() -> None:
    sim = simulator()
    sim.add_order("C-1003")
    cart = connector(sim, token="secret_NotTheStoresToken0000")
    with cassette("ecwid", "refused-token", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested: ConnectionResult = await cart.test_connection()
            sent: Outcome = await cart.send(make_update("C-1003", "SHIPPED"))
        finally:
            await cart.aclose()
    assert not tested.ok and "403" in tested.detail and "INVALID_API_TOKEN" in tested.detail, tested
    assert isinstance(sent, Failed) and "INVALID_API_TOKEN" in sent.reason, sent
    reached(sim, 2)


async def test_ecwids_429_with_retry_after_replay() -> None:
    sim = simulator(quota=1)
    sim.add_order("C-1004")
    cart = connector(sim)
    with cassette("ecwid", "throttled", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
            throttled = await cart.send(make_update("C-1004", "SHIPPED"))
            hint = cart.latest_limit_hint
        finally:
            await cart.aclose()
    assert tested.ok, tested
    assert isinstance(throttled, RetryLater) and throttled.delay == 60.0, throttled
    assert hint is not None and hint.remaining == 0 and hint.reset_in == 60.0
    reached(sim, 2)
