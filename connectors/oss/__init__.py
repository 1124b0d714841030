"""The ``oss`` connector: a store's updates to the hosted Order Status System."""

from .connector import OssConnector

__all__ = ["OssConnector"]
