"""The vendure connector passes the conformance kit against its simulator (Cancelled: tests/connectors/test_vendure.py,
since Vendure records no tracking number on a cancelled order and the kit sends two with every label)."""

from cartstatus.connectors.vendure import VendureConnector
from cartstatus.connectors.vendure.simulator import VendureSimulator
from cartstatus.testing import connector_test_class

PASSWORD = "kit-Vendure-Pass-9"
SETTINGS = {"url": "http://vendure.test/admin-api", "username": "superadmin", "password": PASSWORD}

TestVendure = connector_test_class(VendureConnector, settings=SETTINGS, simulator=lambda: VendureSimulator(
    password=PASSWORD), statuses=("PaymentSettled", "Shipped", "Delivered"))
