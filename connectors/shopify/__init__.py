"""The ``shopify`` connector: status changes as Shopify Admin GraphQL mutations (fulfil, mark paid, close,
cancel, a status tag)."""

from .connector import ShopifyConnector

__all__ = ["ShopifyConnector"]
