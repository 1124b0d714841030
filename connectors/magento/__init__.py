"""The ``magento`` connector: status changes and tracking numbers to Magento 2 / Adobe Commerce's admin REST API."""

from .connector import MagentoConnector

__all__ = ["MagentoConnector"]
