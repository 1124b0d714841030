"""The plugin manager: built-ins and entry-point plugins, through the same hooks."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .connector import Connector

ENTRY_POINT_GROUP = "cartstatus"
LOAD_ENV = "CARTSTATUS_LOAD_PLUGINS"

#: Built-in plugin modules, registered exactly as third-party plugins are.
DEFAULT_PLUGINS = ("cartstatus.connectors.seti.plugin", "cartstatus.connectors.oss.plugin")


@dataclass
class PluginError:
    """A plugin that could not be loaded or could not register."""

    name: str
    error: str


@dataclass
class PluginState:
    errors: list[PluginError] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


pm = pluggy.PluginManager("cartstatus")
pm.add_hookspecs(hookspecs)
state = PluginState()


def _allowed() -> set[str] | None:
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins() -> None:
    """Register the built-ins and every installed entry-point plugin, once.

    A plugin that fails to import is recorded in ``state.errors`` and skipped.
    ``CARTSTATUS_LOAD_PLUGINS`` (comma separated entry-point names) limits which
    third-party plugins load; an empty value loads none.
    """
    if getattr(load_plugins, "_done", False):
        return
    load_plugins._done = True  # type: ignore[attr-defined]
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    allowed = _allowed()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # one broken plugin must not take the others down
            state.errors.append(PluginError(ep.name, f"{type(exc).__name__}: {exc}"))
            continue
        if ep.dist is not None:
            state.versions[ep.name] = ep.dist.version


def _collect(hook_name: str) -> list[tuple[str, Any]]:
    """Call a ``register_*`` hook plugin by plugin, keeping who registered what."""
    load_plugins()
    found: list[tuple[str, Any]] = []
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        items: list[Any] = []
        try:
            impl.function(items.append)
        except Exception as exc:
            state.errors.append(PluginError(plugin_name, f"{hook_name}: {type(exc).__name__}: {exc}"))
            continue
        found.extend((plugin_name, item) for item in items)
    return found


def get_connectors() -> dict[str, type[Connector]]:
    """Every registered connector class by name; the first registration of a name wins."""
    connectors: dict[str, type[Connector]] = {}
    for plugin_name, cls in _collect("register_connectors"):
        if not (isinstance(cls, type) and issubclass(cls, Connector) and cls.name):
            state.errors.append(
                PluginError(plugin_name, f"register_connectors: {cls!r} is not a named Connector")
            )
            continue
        connectors.setdefault(cls.name, cls)
    return connectors


def get_connector_plugins() -> list[tuple[str, type[Connector]]]:
    """(plugin name, connector class) pairs, for listing."""
    return [(p, c) for p, c in _collect("register_connectors") if isinstance(c, type)]


def get_matrix_rows() -> list[tuple[str, dict[str, Any]]]:
    """(plugin name, row) pairs registered through ``register_matrix_rows``."""
    return _collect("register_matrix_rows")
