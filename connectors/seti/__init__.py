"""The Stone Edge cart-script connector (``seti``) and its simulator."""

from .connector import SetiConnector
from .simulator import SetiSimulator

__all__ = ["SetiConnector", "SetiSimulator"]
