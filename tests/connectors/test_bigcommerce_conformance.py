"""The bigcommerce connector passes the conformance kit, every request checked against BigCommerce's own description."""

from cartstatus.connectors.bigcommerce import BigCommerceConnector
from cartstatus.connectors.bigcommerce.simulator import BigCommerceSimulator
from cartstatus.testing import connector_test_class

from .spec_openapi import OpenApiCheck

SETTINGS = {"store_hash": "kitstore1", "access_token": "bc-kit-access-token-1"}

TestBigCommerce = connector_test_class(
    BigCommerceConnector, settings=SETTINGS, simulator=BigCommerceSimulator,
    bad_settings=[{**SETTINGS, "api_base": "ftp://api.bigcommerce.com"}, {**SETTINGS, "store_hash": "a b"},
                  {**SETTINGS, "region": "us"}],
    check_request=OpenApiCheck("bigcommerce-orders-v2.openapi.yml", server="https://api.bigcommerce.com"))
