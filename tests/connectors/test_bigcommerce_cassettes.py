"""The bigcommerce connector's exchanges with a store, replayed from cassettes (recorded from the simulator).

Replayed with the simulator never reached (``make cassettes`` records them again), so the connector's reading
of BigCommerce's recorded replies is tested on its own; every recorded request is checked against the Orders
V2 description too.
"""

from __future__ import annotations

from typing import Any

import httpx
from cartstatus.connector import Tracking
from cartstatus.connectors.bigcommerce import BigCommerceConnector
from cartstatus.connectors.bigcommerce.simulator import BigCommerceSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import CASSETTES, cassette, recording
from .spec_openapi import OpenApiCheck

CONNECTOR = BigCommerceConnector
SETTINGS = {"store_hash": "abc123", "access_token": "Cassette-Token-7q!", "api_base": "https://shop.test"}
CHECK = OpenApiCheck("bigcommerce-orders-v2.openapi.yml", server=SETTINGS["api_base"])
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


def store(**kwargs: Any) -> BigCommerceSimulator:
    return BigCommerceSimulator(store_hash=SETTINGS["store_hash"], access_token=SETTINGS["access_token"], **kwargs)


def connector(sim: BigCommerceSimulator, **settings: str) -> BigCommerceConnector:
    return CONNECTOR(wrap_secrets({**SETTINGS, **settings}, CONNECTOR.settings_schema),
                     transport=simulator_transport(sim))


def tape_of(name: str) -> Any:
    """The cassette ``name``; recorded afresh when recording (vcrpy's "all" mode would add to the old one)."""
    if recording():
        (CASSETTES / "bigcommerce" / f"{name}.yaml").unlink(missing_ok=True)
    return cassette("bigcommerce", name, settings=SETTINGS, schema=CONNECTOR.settings_schema)


def check_tape(tape: Any) -> int:
    """Every request the cassette holds follows the description (its token header is there, filtered)."""
    for sent in tape.requests:
        CHECK(httpx.Request(sent.method, sent.uri, content=sent.body or b"", headers=dict(sent.headers)))
    return len(tape.requests)


async def test_a_delivery_with_two_tracking_numbers_then_its_repeat_replay() -> None:
    sim = store()
    sim.add_order("1001", "Awaiting Fulfillment")
    cart = connector(sim)
    with tape_of("deliver") as tape:
        try:
            tested = await cart.test_connection()
            shipped = await cart.send(make_update("1001", "Shipped", tracking=TRACKING))
            again = await cart.send(make_update("1001", "Shipped", tracking=TRACKING))
        finally:
            await cart.aclose()
    assert tested.ok, tested.detail
    assert isinstance(shipped, Delivered) and "2 shipment(s) added" in shipped.detail, shipped
    assert isinstance(again, AlreadyDone), again  # read first: nothing created twice
    methods = [r.method for r in tape.requests]
    assert methods.count("POST") == 2 and methods.count("PUT") == 1
    assert check_tape(tape) == 10
    assert sim.requests == (10 if recording() else 0)  # replayed: the store was never reached


async def test_an_unknown_order_replay() -> None:
    sim = store()
    cart = connector(sim)
    with tape_of("unknown_order") as tape:
        try:
            outcome = await cart.send(make_update("4040", "Shipped", tracking=TRACKING))
        finally:
            await cart.aclose()
    assert outcome == Failed("BigCommerce refused (HTTP 404): The requested resource was not found.")
    assert check_tape(tape) == 1
    assert sim.requests == (1 if recording() else 0)


async def test_a_refused_token_replay() -> None:
    sim = store()
    cart = connector(sim, access_token="Cassette-Wrong-Token-3")
    with tape_of("refused_token") as tape:
        try:
            tested = await cart.test_connection()
        finally:
            await cart.aclose()
    assert not tested.ok and tested.detail.startswith("BigCommerce refused the access token (HTTP 401)"), tested
    assert "Cassette-Wrong-Token-3" not in (CASSETTES / "bigcommerce" / "refused_token.yaml").read_text()
    assert check_tape(tape) == 1
    assert sim.requests == (1 if recording() else 0)


async def test_a_used_up_window_replay() -> None:
    """The store's quota runs out mid-send: a 429 whose X-Rate-Limit-Time-Reset-Ms is the delay."""
    sim = store(quota=3)
    sim.add_order("1002")
    cart = connector(sim)
    with tape_of("throttled") as tape:
        try:
            outcome = await cart.send(make_update("1002", "Shipped", tracking=TRACKING))
            hint = cart.latest_limit_hint
        finally:
            await cart.aclose()
    assert isinstance(outcome, RetryLater) and outcome.delay is not None and 0 < outcome.delay <= 30, outcome
    assert hint is not None and hint.remaining == 0 and hint.reset_in == outcome.delay
    assert tape.responses[-1]["status"]["code"] == 429
    assert check_tape(tape) == 4
    assert sim.requests == (4 if recording() else 0)


async def test_a_refusal_replay() -> None:
    """A request BigCommerce refuses for good (400, its V2 error list) is Failed in its words, not retried."""
    sim = store()
    sim.add_order("1003")
    sim.fail_next("http_4xx")
    cart = connector(sim)
    with tape_of("refusal") as tape:
        try:
            outcome = await cart.send(make_update("1003", "Cancelled"))
        finally:
            await cart.aclose()
    assert outcome == Failed("BigCommerce refused (HTTP 400): The field 'status_id' is invalid.")
    assert check_tape(tape) == 1
    assert sim.requests == (1 if recording() else 0)
