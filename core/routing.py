"""Where a store's updates go (rule 1): the cart's own connector, the OSS, or nowhere, with the reason in words.

The one routing module: ``fire``, ``diagnose`` and ``check`` use it. It is
where the shopping-cart matrix (a library), the installed plugins and the
setup file meet: the matrix in force, the connector class serving a cart, and
the setup file checked against both.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from dataclasses import dataclass
from typing import Literal

from .config import Config, Problem, Store, read_config
from .connector import Connector
from .matrix import OSS_CONNECTOR, Matrix, MatrixError, find_cart, load_matrix
from .plugins import get_connectors, get_matrix_rows
from .problems import dotted

__all__ = ["OSS_CONNECTOR", "Route", "cart_matrix", "cart_problems", "connector_class_for_cart", "decide_route",
           "load_config", "route_for_store"]


@dataclass(frozen=True)
class Route:
    """A routing decision with its reason in words."""

    kind: Literal["native", "oss", "none"]
    connector: str | None
    reason: str


def cart_matrix(extra: str | os.PathLike[str] | None = None) -> Matrix:
    """The matrix in force: built-in rows, the rows plugins register, the operator's ``extra`` file,
    with the connectors plugins register as installed."""
    return load_matrix(extra, plugin_rows=get_matrix_rows(), installed=get_connectors())


def connector_class_for_cart(cart: str) -> type[Connector] | None:
    """The connector class the matrix names for ``cart``, if it is installed.

    A cart the matrix does not know, or whose row names no connector, has none;
    a connector registered under the cart's own key is still used for settings checks.
    """
    connectors = get_connectors()
    matrix = cart_matrix()
    row = matrix.get(cart) or matrix.by_name(cart)
    if row is not None and row.connector is not None:
        return connectors.get(row.connector)
    return connectors.get(cart)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and check the setup file: each store's ``connector:`` settings by the installed connector of its cart.

    Raises :class:`~cartstatus.config.ConfigError` naming every problem.
    """
    return read_config(path, connector_class_for_cart)


def decide_route(store: Store, matrix: Matrix, today: dt.date | None = None) -> Route:
    """Native when the matrix says the cart takes updates and its connector is installed;
    else the OSS while the store's subscription is active (and the OSS connector is
    installed); else none, saying why."""
    installed = matrix.installed
    row = matrix.get(store.cart) or matrix.by_name(store.cart)
    if row is None:
        return Route("none", None,
                     f"cart {store.cart!r} of store {store.id!r} is not in the shopping-cart matrix, so nothing "
                     f"is sent; set the store's cart: to a matrix key (see `cartstatus matrix check "
                     f"{store.cart}`) or add a row for it")
    blocked = row.why_not_native(installed)
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


def route_for_store(store: Store, today: dt.date | None = None,
                    matrix_extra: str | os.PathLike[str] | None = None) -> Route:
    """Native connector, else the OSS while the subscription is active, else none (see :func:`decide_route`)."""
    try:
        matrix = cart_matrix(matrix_extra)
    except MatrixError as exc:
        return Route("none", None, f"the extra matrix file cannot be used, so nothing is sent: {exc}")
    return decide_route(store, matrix, today)


def cart_problems(cfg: Config) -> list[Problem]:
    """Stores whose ``cart`` the shopping-cart matrix does not know, with the nearest keys.

    Kept out of :func:`load_config` (``check`` calls it): it needs the whole
    matrix, the operator's extra file included, which loading the setup file does not.
    """
    try:
        matrix = cart_matrix(cfg.matrix_extra)
    except MatrixError as exc:
        return exc.problems
    problems = []
    for i, store in enumerate(cfg.stores.values()):
        if matrix.get(store.cart) or matrix.by_name(store.cart):
            continue
        look = find_cart(matrix, store.cart)
        nearest = [look.row.key] if look.row else list(look.suggestions) or difflib.get_close_matches(
            store.cart.casefold(), [row.key for row in matrix], n=3, cutoff=0.0)
        data_path = ["stores", i, "cart"]
        problems.append(Problem(cfg.path, cfg.locate(data_path) if cfg.locate else None, dotted(data_path),
                                f"{store.cart!r} is not a key of the shopping-cart matrix, so nothing would be "
                                f"sent for store {store.id!r}; nearest in the matrix: {', '.join(nearest)} "
                                "(see `cartstatus matrix list`)"))
    return problems
