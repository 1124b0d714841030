"""Every conformance check of the kit for the magento connector, each request checked against Magento's own
Swagger 2.0 description (``../shared/specs/magento-admin-2.4.9.swagger.yml``; skipped, saying so, when absent)."""

from cartstatus.connectors.magento import MagentoConnector
from cartstatus.connectors.magento.simulator import MagentoSimulator
from cartstatus.testing import connector_test_class

from .magento_spec import SETTINGS, SPEC_CHECK

TestMagento = connector_test_class(
    MagentoConnector, settings=SETTINGS, simulator=MagentoSimulator, check_request=SPEC_CHECK,
    bad_settings=[{**SETTINGS, "order_ref": "sku"}, {**SETTINGS, "url": "magento.test"},
                  {**SETTINGS, "store_code": "Default Store View"}, {**SETTINGS, "timeout": 0}])
