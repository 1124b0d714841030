"""The ``vendure`` connector: order states and tracking numbers through Vendure's Admin GraphQL API."""

from .connector import VendureConnector

__all__ = ["VendureConnector"]
