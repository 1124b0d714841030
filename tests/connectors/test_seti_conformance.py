"""The built-in script connector passes the conformance kit, with the one line a plugin author writes."""

from cartstatus.connectors.seti import SetiConnector
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.testing import connector_test_class

PASSWORD = "kit-Script-Pass-9"
SETTINGS = {"url": "http://cart.test/seom.php", "user": "om", "password": PASSWORD, "code": "main"}

TestSeti = connector_test_class(SetiConnector, settings=SETTINGS, simulator=lambda: SetiSimulator(password=PASSWORD))
