"""Where a store's updates go: the cart's own connector, the OSS, or nowhere.

Rule 1 of the requirements. The decision itself lives with the shopping-cart
matrix (:func:`cartstatus.matrix.routing.decide_route`); this module keeps the
names the engine and the setup-file loader use.
"""

from __future__ import annotations

import datetime as dt
import os
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
    """The connector class the matrix names for ``cart``, if it is installed.

    A cart the matrix does not know, or whose row names no connector, has none;
    a connector registered under the cart's own key is still used for settings checks.
    """
    from .matrix import load_matrix

    connectors = get_connectors()
    matrix = load_matrix()
    row = matrix.get(cart) or matrix.by_name(cart)
    if row is not None and row.connector is not None:
        return connectors.get(row.connector)
    return connectors.get(cart)


def route_for_store(store: Store, today: dt.date | None = None,
                    matrix_extra: str | os.PathLike[str] | None = None) -> Route:
    """Native connector, else the OSS while the subscription is active, else none (see the matrix)."""
    from .matrix import MatrixError, decide_route, load_matrix

    try:
        matrix = load_matrix(matrix_extra)
    except MatrixError as exc:
        return Route("none", None, f"the extra matrix file cannot be used, so nothing is sent: {exc}")
    return decide_route(store, matrix, today)
