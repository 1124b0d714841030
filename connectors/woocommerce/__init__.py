"""The WooCommerce connector (``woocommerce``): the store's REST API v3 with a consumer key and secret.

Its simulator is :mod:`cartstatus.connectors.woocommerce.simulator`, imported only by tests, the demo and
the conformance kit (it needs Starlette, the cart does not).
"""

from .connector import WooCommerceConnector

__all__ = ["WooCommerceConnector"]
