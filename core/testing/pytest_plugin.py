"""The pytest plugin (entry point ``pytest11``) that ships the conformance kit.

It registers the ``cartstatus_conformance`` marker, which every kit check
carries (``pytest -m cartstatus_conformance`` runs only them, and
``--strict-markers`` suites accept it), and offers a ``cartstatus_update``
fixture for a plugin's own tests. It loads no cartstatus plugins itself, so
``CARTSTATUS_LOAD_PLUGINS`` set by a test still applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cartstatus.connector import StatusUpdate

# Nothing from cartstatus is imported at load time: this module loads in every pytest run
# of the environment, and a pytest plugin that fails to import stops them all.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cartstatus_conformance: a standard check from the cartstatus connector conformance kit")


@pytest.fixture
def cartstatus_update() -> Callable[..., StatusUpdate]:
    """A factory for status updates: ``cartstatus_update("C-1", "shipped", tracking=[...])``."""
    from cartstatus.testing.kit import make_update

    def make(cart_order_ref: str, cart_status: str, **kwargs: Any) -> StatusUpdate:
        return make_update(cart_order_ref, cart_status, **kwargs)

    return make
