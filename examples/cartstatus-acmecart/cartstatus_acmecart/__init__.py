"""A cartstatus connector for AcmeCart, with its simulator: an example third-party plugin."""

from .connector import AcmeCartConnector
from .simulator import AcmeCartSimulator

__all__ = ["AcmeCartConnector", "AcmeCartSimulator"]
