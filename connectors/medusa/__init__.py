"""The Medusa 2.x connector (``medusa``): the Admin REST API, logged in with an admin user's e-mail and password.

Its simulator is :mod:`cartstatus.connectors.medusa.simulator`, imported only by tests, the demo and the
conformance kit (it needs Starlette, the cart does not).
"""

from .connector import MedusaConnector

__all__ = ["MedusaConnector"]
