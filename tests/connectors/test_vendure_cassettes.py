"""The vendure connector's exchanges with the Admin API, replayed from cassettes (recorded from the simulator with
``make cassettes``; replayed with the simulator never reached, so the connector's reading of the recorded replies
is tested on its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cartstatus.connector import ConnectionResult, Tracking
from cartstatus.connectors.vendure import VendureConnector
from cartstatus.connectors.vendure.simulator import VendureSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

T = TypeVar("T")
CONNECTOR = VendureConnector
SETTINGS = {"url": "https://shop.test/admin-api", "username": "superadmin", "password": "Cassette-Vendure&9 x"}
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


def replay(name: str, sim: VendureSimulator, steps: Callable[[VendureConnector], Awaitable[T]],
           settings: dict[str, Any] = SETTINGS) -> T:
    """``steps`` through one connector, inside cassette ``name``."""
    async def run() -> T:
        connector = CONNECTOR(wrap_secrets(settings, CONNECTOR.settings_schema), transport=simulator_transport(sim))
        try:
            return await steps(connector)
        finally:
            await connector.aclose()

    with cassette("vendure", name, settings=SETTINGS, schema=CONNECTOR.settings_schema):
        return asyncio.run(run())


def cart() -> VendureSimulator:
    sim = VendureSimulator(password=SETTINGS["password"])
    sim.add_order("7FXM3L0UL4N1CNGB")
    sim.add_order("9QWE2R5T8Y1U3IOP", "PaymentAuthorized")
    return sim


def test_the_connection_test_replay() -> None:
    sim = cart()
    result: ConnectionResult = replay("connection", sim, lambda c: c.test_connection())
    assert result.ok and "2 orders" in result.detail, result
    assert sim.requests == (2 if recording() else 0)  # replayed: the cart was never reached


def test_paid_then_shipped_with_two_numbers_then_a_repeat_replay() -> None:
    sim = cart()

    async def steps(connector: VendureConnector) -> list[Any]:
        ref = "9QWE2R5T8Y1U3IOP"
        return [await connector.send(make_update(ref, "PaymentSettled")),
                await connector.send(make_update(ref, "Shipped", tracking=TRACKING)),
                await connector.send(make_update(ref, "Shipped", tracking=TRACKING))]

    paid, shipped, again = replay("deliver", sim, steps)
    assert isinstance(paid, Delivered) and "payment" in paid.detail, paid
    assert isinstance(shipped, Delivered) and "UPS 1Z999AA10123456784" in shipped.detail, shipped
    assert "FedEx 794644790132" in shipped.detail
    assert isinstance(again, AlreadyDone), again
    assert sim.requests == (11 if recording() else 0)


def test_an_unknown_order_and_a_refused_move_replay() -> None:
    sim = cart()

    async def steps(connector: VendureConnector) -> list[Any]:
        return [await connector.send(make_update("NO-SUCH-ORDER", "Shipped", tracking=TRACKING)),
                await connector.send(make_update("9QWE2R5T8Y1U3IOP", "Delivered"))]

    unknown, refused = replay("refusals", sim, steps)
    assert isinstance(unknown, Failed) and "NO-SUCH-ORDER" in unknown.reason, unknown
    assert isinstance(refused, Failed), refused
    assert refused.reason == ('Vendure refused: ORDER_STATE_TRANSITION_ERROR: Cannot transition Order from '
                              '"PaymentAuthorized" to "Delivered"')
    assert sim.requests == (4 if recording() else 0)


def test_a_refused_credential_replay() -> None:
    sim = cart()
    wrong = {**SETTINGS, "password": "wrong-Cassette-pass"}
    result: ConnectionResult = replay("refused-credential", sim, lambda c: c.test_connection(), settings=wrong)
    assert not result.ok
    assert result.detail == "login refused: Vendure refused: INVALID_CREDENTIALS_ERROR: The provided credentials are " \
                            "invalid"


def test_a_forbidden_token_is_renewed_then_a_host_throttles_replay() -> None:
    sim = cart()

    async def steps(connector: VendureConnector) -> list[Any]:
        first = await connector.send(make_update("7FXM3L0UL4N1CNGB", "Shipped", tracking=TRACKING[:1]))
        if recording():
            sim.fail_next("forbidden")  # Vendure no longer knows the token: FORBIDDEN in an HTTP 200
        second = await connector.send(make_update("7FXM3L0UL4N1CNGB", "Delivered"))
        if recording():
            sim.fail_next("http_429")
        third = await connector.send(make_update("9QWE2R5T8Y1U3IOP", "PaymentSettled"))
        return [first, second, third]

    first, second, third = replay("token-and-throttle", sim, steps)
    assert isinstance(first, Delivered) and isinstance(second, Delivered), (first, second)
    assert isinstance(third, RetryLater) and third.delay == 3.0, third
