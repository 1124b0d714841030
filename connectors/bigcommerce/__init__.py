"""The ``bigcommerce`` connector: order statuses and tracking numbers to BigCommerce's V2 Orders API."""

from .connector import BigCommerceConnector

__all__ = ["BigCommerceConnector"]
