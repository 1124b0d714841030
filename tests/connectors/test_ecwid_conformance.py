"""The ecwid connector passes the conformance kit (Ecwid publishes no API description to check requests against:
the simulator refuses, with Ecwid's 400, any update body Ecwid would refuse or the connector should not send)."""

from cartstatus.connectors.ecwid import EcwidConnector
from cartstatus.connectors.ecwid.simulator import EcwidSimulator
from cartstatus.testing import connector_test_class

TOKEN = "secret_kitEcwidToken0123456789"
SETTINGS = {"store_id": 1003, "token": TOKEN, "api_base": "http://ecwid.test/api/v3"}

TestEcwid = connector_test_class(EcwidConnector, settings=SETTINGS, simulator=lambda: EcwidSimulator(token=TOKEN))
