"""Where a store's updates go: the cart's own connector, the OSS, or nowhere.

Rule 1 of the requirements. The shopping-cart matrix (``cartstatus.matrix``)
decides whether a cart takes updates; until a matrix row exists for a cart,
a connector registered under the cart's key is taken as its native route.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .connector import Connector
from .plugins import get_connectors

if TYPE_CHECKING:
    from .config import Store

OSS_CONNECTOR = "oss"


@dataclass(frozen=True)
class Route:
    """A routing decision with its reason in words."""

    kind: Literal["native", "oss", "none"]
    connector: str | None
    reason: str


def connector_class_for_cart(cart: str) -> type[Connector] | None:
    """The connector class that sends to ``cart`` natively, if one is installed."""
    return get_connectors().get(cart)


def route_for_store(store: Store, today: dt.date | None = None) -> Route:
    """Native connector, else the OSS while the subscription is active, else none."""
    connectors = get_connectors()
    if store.cart in connectors:
        return Route("native", store.cart, f"cart {store.cart!r} takes status updates through its connector")
    if store.oss is not None and OSS_CONNECTOR in connectors:
        if store.oss.active(today):
            return Route("oss", OSS_CONNECTOR,
                         f"cart {store.cart!r} takes no status updates; sent to the OSS "
                         f"(subscription active until {store.oss.subscription_expires})")
        return Route("none", None,
                     f"cart {store.cart!r} takes no status updates and the OSS subscription "
                     f"lapsed on {store.oss.subscription_expires}; renew it to send updates")
    return Route("none", None,
                 f"cart {store.cart!r} takes no status updates (no connector installed) and the "
                 f"store has no OSS subscription")
