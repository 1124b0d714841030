"""The seti connector's exchanges with a script cart, replayed from cassettes (the pattern for every cart).

Recorded from the simulator (``make cassettes``); replayed here with the simulator never reached, so the
connector's reading of the cart's recorded words is tested on its own.
"""

from __future__ import annotations

from cartstatus.connector import Tracking
from cartstatus.connectors.seti import SetiConnector
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.outcomes import Delivered, Failed
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

from .cassettes import cassette, recording

CONNECTOR = SetiConnector
SETTINGS = {"url": "https://shop.test/seom.php", "user": "om", "password": "Cassette-Pass&9 x", "code": "main"}


async def test_a_delivery_with_two_tracking_numbers_and_a_refusal_replay() -> None:
    sim = SetiSimulator(password=SETTINGS["password"])
    sim.add_order("C-1001")
    connector = CONNECTOR(wrap_secrets(SETTINGS, CONNECTOR.settings_schema), transport=simulator_transport(sim))
    tracking = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))
    with cassette("seti", "deliver", settings=SETTINGS, schema=CONNECTOR.settings_schema):
        try:
            tested = await connector.test_connection()
            shipped = await connector.send(make_update("C-1001", "Shipped", tracking=tracking))
            unknown = await connector.send(make_update("C-4040", "Shipped"))
        finally:
            await connector.aclose()
    assert tested.ok, tested.detail
    assert isinstance(shipped, Delivered), shipped
    assert isinstance(unknown, Failed) and "C-4040" in unknown.reason, unknown
    assert sim.requests == (3 if recording() else 0)  # replayed: the cart was never reached
