"""The conformance kit against the PrestaShop connector and its simulated webservice.

PrestaShop publishes no machine-readable description of its webservice (no OpenAPI file in ../shared/specs):
there is no check_request; the simulator refuses what the real webservice refuses (see test_prestashop.py).
"""

from cartstatus.connectors.prestashop import PrestaShopConnector
from cartstatus.connectors.prestashop.simulator import PrestaShopSimulator
from cartstatus.testing import connector_test_class

SETTINGS = {"url": "http://prestashop.test", "api_key": PrestaShopSimulator.api_key}

TestPrestaShop = connector_test_class(PrestaShopConnector, settings=SETTINGS, simulator=PrestaShopSimulator)
