"""The pytest plugin (entry point ``pytest11``) that ships the conformance kit.

It registers the ``cartstatus_conformance`` marker, which every kit check
carries (``pytest -m cartstatus_conformance`` runs only them, and
``--strict-markers`` suites accept it), and offers fixtures for a plugin's own
tests: ``cartstatus_update`` (a status update factory) and ``cartstatus_serve``
(serves any ASGI simulator on a free port of 127.0.0.1 for the test). It loads no cartstatus plugins itself, so
``CARTSTATUS_LOAD_PLUGINS`` set by a test still applies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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


@pytest.fixture
def cartstatus_serve() -> Iterator[Callable[[Any], str]]:
    """``cartstatus_serve(simulator.app())`` serves the ASGI app on a free port of 127.0.0.1 until the test
    ends and gives its base URL (``http://127.0.0.1:PORT``); send to it with ``SocketTransport(url)``."""
    from cartstatus.testing.simulator import serve_app

    with contextlib.ExitStack() as servers:
        yield lambda app: servers.enter_context(serve_app(app))
