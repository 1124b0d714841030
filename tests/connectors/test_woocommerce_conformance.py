"""Every standard check of the conformance kit, against the WooCommerce simulator.

WooCommerce publishes no machine-readable API description, so there is no check_request: the simulator
refuses what the real endpoints refuse (see connectors/woocommerce/simulator.py).
"""

from cartstatus.connectors.woocommerce import WooCommerceConnector
from cartstatus.connectors.woocommerce.simulator import WooCommerceSimulator
from cartstatus.testing import connector_test_class

SETTINGS = {"url": "https://shop.test", "consumer_key": WooCommerceSimulator.consumer_key,
            "consumer_secret": WooCommerceSimulator.consumer_secret}

TestWooCommerce = connector_test_class(
    WooCommerceConnector, settings=SETTINGS, simulator=WooCommerceSimulator,
    bad_settings=[{**SETTINGS, "url": "http://shop.test"}, {**SETTINGS, "statuses": ["trash"]}])
