"""The ``ecwid`` connector: an order's status and tracking numbers to Ecwid's REST API v3."""

from .connector import EcwidConnector

__all__ = ["EcwidConnector"]
