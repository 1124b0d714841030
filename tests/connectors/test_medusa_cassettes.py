"""The medusa connector's exchanges with Medusa's Admin API, replayed from cassettes.

Recorded from the simulator (``make cassettes``), which answers as Medusa 2.21 did on a real install
(tests/realcarts/); replayed here with the simulator never reached, so the connector's reading of Medusa's
recorded words is tested on its own.
"""

from __future__ import annotations

from cartstatus.connector import Tracking
from cartstatus.connectors.medusa import MedusaConnector
from cartstatus.connectors.medusa.simulator import MedusaSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = MedusaConnector
SETTINGS = {"url": "https://shop.test", "email": "om@shop.test", "password": "Cassette-Medusa&9 x"}
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


def simulator() -> MedusaSimulator:
    return MedusaSimulator(email=SETTINGS["email"], password=SETTINGS["password"])


def connector(sim: MedusaSimulator, **settings: str) -> MedusaConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim))


async def test_connection_delivery_with_two_tracking_numbers_repeat_and_unknown_order_replay() -> None:
    sim = simulator()
    sim.add_order("order_01CASSETTE1")
    cart = connector(sim)
    with cassette("medusa", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
            shipped = await cart.send(make_update("order_01CASSETTE1", "delivered", tracking=TRACKING))
            again = await cart.send(make_update("order_01CASSETTE1", "delivered", tracking=TRACKING))
            unknown = await cart.send(make_update("order_01NOSUCH", "shipped"))
        finally:
            await cart.aclose()
    assert tested.ok and SETTINGS["email"] in tested.detail, tested
    assert shipped == Delivered("items fulfilled; shipment created with 2 tracking numbers; "
                                "fulfillment marked delivered"), shipped
    assert isinstance(again, AlreadyDone), again  # read first: nothing made twice
    assert isinstance(unknown, Failed) and "Order id not found: order_01NOSUCH" in unknown.reason, unknown
    # login, me, read, fulfil, read, ship, read, deliver; read; read (unknown)
    assert sim.requests == (10 if recording() else 0)  # replayed: the cart was never reached


async def test_a_refused_credential_replay() -> None:
    sim = simulator()
    cart = connector(sim, password="wrong-" + SETTINGS["password"])
    with cassette("medusa", "refused_credential", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await cart.test_connection()
        finally:
            await cart.aclose()
    assert not tested.ok
    assert tested.detail == ("login refused: Medusa refused the admin credential: Invalid email or password "
                             "(HTTP 401)"), tested.detail
    assert sim.requests == (1 if recording() else 0)


async def test_medusas_refusal_to_cancel_a_completed_order_replay() -> None:
    sim = simulator()
    sim.add_order("order_01COMPLETED", "completed")
    cart = connector(sim)
    with cassette("medusa", "refused_cancel", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            refused = await cart.send(make_update("order_01COMPLETED", "canceled"))
        finally:
            await cart.aclose()
    assert refused == Failed("Medusa refused: Cannot cancel a completed order. Please use the return process to "
                             "handle refunds or exchanges. (not_allowed, HTTP 400)"), refused
    assert sim.requests == (3 if recording() else 0)


async def test_a_throttled_reply_and_a_busy_order_replay() -> None:
    """A host's 429 with Retry-After (Medusa has no limit of its own), then Medusa's 409 ``conflict``."""
    sim = simulator()
    sim.add_order("order_01THROTTLE")
    cart = connector(sim)
    with cassette("medusa", "throttled", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            assert (await cart.test_connection()).ok  # logged in: the faults meet the order's requests
            if recording():
                sim.fail_next("http_429")
            throttled = await cart.send(make_update("order_01THROTTLE", "captured"))
            if recording():
                sim.fail_next("http_409")
            busy = await cart.send(make_update("order_01THROTTLE", "captured"))
            captured = await cart.send(make_update("order_01THROTTLE", "captured"))
        finally:
            await cart.aclose()
    assert isinstance(throttled, RetryLater) and throttled.delay == 2.0, throttled
    assert cart.latest_limit_hint is not None and cart.latest_limit_hint.remaining is not None
    assert isinstance(busy, RetryLater) and "conflicted with another request" in busy.reason, busy
    assert captured == Delivered("payment captured"), captured
    assert sim.requests == (6 if recording() else 0)  # login, me, 429, 409, read, capture


async def test_an_expired_token_is_renewed_once_replay() -> None:
    sim = simulator()
    sim.add_order("order_01RELOGIN")
    cart = connector(sim)
    with cassette("medusa", "relogin", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            first = await cart.test_connection()
            if recording():
                sim.expire_tokens()
            completed = await cart.send(make_update("order_01RELOGIN", "completed"))
        finally:
            await cart.aclose()
    assert first.ok
    assert completed == Delivered("order completed"), completed
    if recording():
        assert sim.logins == 2


async def test_tracking_with_a_cancel_is_kept_in_the_orders_metadata_replay() -> None:
    """Medusa's special case: a label that ships nothing keeps its numbers in the order's metadata, written
    before the cancel (a canceled order takes no more changes); a book and an e-book are fulfilled apart."""
    sim = simulator()
    sim.add_order("order_01CANCEL")
    sim.add_order("order_01MIXED", items=2, digital=1)
    cart = connector(sim)
    with cassette("medusa", "metadata_and_mixed", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            canceled = await cart.send(make_update("order_01CANCEL", "canceled", tracking=TRACKING[:1]))
            shipped = await cart.send(make_update("order_01MIXED", "shipped", tracking=TRACKING[1:]))
        finally:
            await cart.aclose()
    assert canceled == Delivered("1 tracking numbers kept in the order's metadata; order canceled"), canceled
    assert shipped == Delivered("items fulfilled; items that need no shipping fulfilled; shipment created with 1 "
                                "tracking numbers; shipment created"), shipped
    # login; read, metadata, cancel; read, fulfil, fulfil, read, ship, ship
    assert sim.requests == (10 if recording() else 0)
