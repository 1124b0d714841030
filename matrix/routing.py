"""The routing decision (rule 1): the cart's own connector, the OSS, or nothing, with the reason in words.

This is the one routing function: the core's ``fire_event`` (through
``cartstatus.routing.route_for_store``), ``diagnose`` and ``matrix check`` all use it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cartstatus.plugins import get_connectors
from cartstatus.routing import OSS_CONNECTOR, Route

from .loader import CartRow, Matrix

if TYPE_CHECKING:
    from cartstatus.config import Store


def why_not_native(row: CartRow, installed: set[str]) -> str | None:
    """Why this cart cannot be sent to directly, or None when it can."""
    if not row.takes_updates:
        if row.updates == "batch_file":
            return f"{row.name} takes status updates only as a batch file it imports"
        return f"{row.name} cannot take status updates"
    if row.connector is None:
        return (f"{row.name} takes status updates {row.how}, but no cartstatus connector "
                f"for it is installed")
    if row.connector not in installed:
        return f"{row.name} takes status updates {row.how}, but its connector {row.connector!r} is not installed"
    return None


def decide_route(store: Store, matrix: Matrix, today: dt.date | None = None,
                 installed: set[str] | None = None) -> Route:
    """Native when the matrix says the cart takes updates and its connector is installed;
    else the OSS while the store's subscription is active (and the OSS connector is
    installed); else none, saying why."""
    installed = set(get_connectors()) if installed is None else installed
    row = matrix.get(store.cart) or matrix.by_name(store.cart)
    if row is None:
        return Route("none", None,
                     f"cart {store.cart!r} of store {store.id!r} is not in the shopping-cart matrix, so nothing "
                     f"is sent; set the store's cart: to a matrix key (see `cartstatus matrix check "
                     f"{store.cart}`) or add a row for it")
    blocked = why_not_native(row, installed)
    if blocked is None:
        assert row.connector is not None
        return Route("native", row.connector,
                     f"{row.name} takes status updates {row.how}; sent by connector {row.connector!r}")
    oss = store.oss
    if oss is None:
        return Route("none", None, f"{blocked}, and store {store.id!r} has no OSS subscription; "
                                   f"subscribe it to the OSS (oss: in the setup file) to send updates")
    if not oss.active(today):
        return Route("none", None, f"{blocked}, and store {store.id!r}'s OSS subscription lapsed on "
                                   f"{oss.subscription_expires}; renew it to send updates")
    if OSS_CONNECTOR not in installed:
        return Route("none", None, f"{blocked}, and the OSS connector {OSS_CONNECTOR!r} is not installed; "
                                   f"install it to send updates to the OSS")
    return Route("oss", OSS_CONNECTOR, f"{blocked}; sent to the OSS (subscription active until "
                                       f"{oss.subscription_expires})")
