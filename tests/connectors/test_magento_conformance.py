"""Every conformance check of the kit for the magento connector, each request checked against Magento's own
Swagger 2.0 description (``../shared/specs/magento-admin-2.4.9.swagger.yml``; skipped, saying so, when absent)."""

from __future__ import annotations

import functools

import httpx
from cartstatus.connectors.magento import MagentoConnector
from cartstatus.connectors.magento.simulator import MagentoSimulator
from cartstatus.testing import connector_test_class

from .spec_swagger import SwaggerCheck
from .specs import spec_file

SPEC_NAME = "magento-admin-2.4.9.swagger.yml"
SETTINGS = {"url": "http://magento.test", "token": "magento-integration-token-0001", "store_code": "default"}


@functools.lru_cache(maxsize=1)
def magento_check() -> SwaggerCheck:
    """Made on first use (in a test, not at collection), so that a missing description skips the tests needing it."""
    return SwaggerCheck(spec_file(SPEC_NAME), base_path="/rest/default")


def check_request(request: httpx.Request) -> None:
    magento_check()(request)


TestMagento = connector_test_class(
    MagentoConnector, settings=SETTINGS, simulator=MagentoSimulator, check_request=check_request,
    bad_settings=[{**SETTINGS, "order_ref": "sku"}, {**SETTINGS, "url": "magento.test"},
                  {**SETTINGS, "store_code": "Default Store View"}, {**SETTINGS, "timeout": 0}])
