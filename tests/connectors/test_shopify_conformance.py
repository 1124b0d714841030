"""The shopify connector passes the conformance kit, every request checked against Shopify's 2026-07 schema."""

from cartstatus.connectors.shopify import ShopifyConnector
from cartstatus.connectors.shopify.simulator import ShopifySimulator
from cartstatus.testing import connector_test_class

from .spec_graphql import GraphQLCheck

SETTINGS = {"shop": "kit-store.myshopify.com", "access_token": "shpat_kit_access_token_1"}
# Every value but "cancelled", which ships nothing: the kit sends tracking numbers with every value and expects
# them recorded (test_shopify.py sends "cancelled" with and without them).
SENT = ("fulfilled", "paid", "closed", "processing", "on-hold", "backordered")

TestShopify = connector_test_class(
    ShopifyConnector, settings=SETTINGS, simulator=ShopifySimulator, statuses=SENT,
    bad_settings=[{**SETTINGS, "shop": "kit-store.example.com"}, {**SETTINGS, "api_base": "ftp://shop.test"},
                  {**SETTINGS, "api_version": "2026-08"}, {**SETTINGS, "store": "x"}],
    check_request=GraphQLCheck("shopify-admin-2026-07.graphql", path=r"/admin/api/2026-07/graphql\.json",
                               credential_header="X-Shopify-Access-Token"))
