"""The medusa connector passes the conformance kit against its simulator, with the one line."""

from cartstatus.connectors.medusa import MedusaConnector
from cartstatus.connectors.medusa.simulator import MedusaSimulator
from cartstatus.testing import connector_test_class

SETTINGS = {"url": "http://medusa.test", "email": "admin@medusa.test", "password": "medusa-test-pass-1"}

TestMedusa = connector_test_class(MedusaConnector, settings=SETTINGS, simulator=MedusaSimulator)
