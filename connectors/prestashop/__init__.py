"""The PrestaShop webservice connector (``prestashop``).

Its simulator is :mod:`cartstatus.connectors.prestashop.simulator`, imported only by
tests, the demo and the conformance kit (it needs Starlette, the cart does not).
"""

from .connector import PrestaShopConnector

__all__ = ["PrestaShopConnector"]
