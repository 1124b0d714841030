"""The Stone Edge cart-script connector (``seti``).

Its simulator is :mod:`cartstatus.connectors.seti.simulator`, imported only by
tests, the demo and the conformance kit (it needs Starlette, the cart does not).
"""

from .connector import SetiConnector

__all__ = ["SetiConnector"]
