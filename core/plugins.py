"""The plugin manager: built-ins and entry-point plugins, through the same hooks.

Modelled on datasette and llm: a pluggy ``PluginManager`` named ``cartstatus``,
built-in plugin modules in :data:`DEFAULT_PLUGINS`, third-party plugins from the
entry-point group ``cartstatus``. The ``register_*`` hooks are callback style:
cartstatus calls each implementation with a ``register`` function and keeps
what it is given, plugin by plugin, so that one plugin's garbage is reported
with its name and never hides another plugin's connectors.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import click
import jsonschema
import pluggy

from . import hookspecs
from .connector import Connector

log = logging.getLogger("cartstatus.plugins")

ENTRY_POINT_GROUP = "cartstatus"
LOAD_ENV = "CARTSTATUS_LOAD_PLUGINS"

#: Built-in connector plugins, registered exactly as third-party plugins are.
CONNECTOR_PLUGINS = (
    "cartstatus.connectors.seti.plugin",
    "cartstatus.connectors.oss.plugin",
    "cartstatus.connectors.woocommerce.plugin",
    "cartstatus.connectors.ecwid.plugin",
    "cartstatus.connectors.prestashop.plugin",
    "cartstatus.connectors.bigcommerce.plugin",
    "cartstatus.connectors.magento.plugin",
    "cartstatus.connectors.vendure.plugin",
    "cartstatus.connectors.shopify.plugin",
    "cartstatus.connectors.medusa.plugin",
)
#: Built-in command plugins: the ``cartstatus`` commands that come through ``register_commands``.
COMMAND_PLUGINS = (
    "cartstatus.plugin_commands",
    "cartstatus.matrix_commands",
    "cartstatus.diagnose",
    "cartstatus.test_command",
    "cartstatus.setup_wizard",
)
#: Every built-in plugin module; they register before any third-party plugin, so theirs win a clash.
DEFAULT_PLUGINS = CONNECTOR_PLUGINS + COMMAND_PLUGINS

#: A connector's name, as the shopping-cart matrix's ``connector`` field takes it.
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class PluginError:
    """A plugin that could not be loaded or whose registration was refused."""

    name: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.name, "error": self.error}


@dataclass
class _Loaded:
    """Where an entry-point plugin came from."""

    entry_point: str
    distribution: str | None
    version: str | None


@dataclass
class PluginState:
    load_errors: list[PluginError] = field(default_factory=list)
    #: What went wrong when the plugins last added their commands (see :func:`add_commands`).
    command_errors: list[PluginError] = field(default_factory=list)
    origins: dict[str, _Loaded] = field(default_factory=dict)  # plugin name -> where from
    loaded: bool = False

    @property
    def versions(self) -> dict[str, str]:
        return {name: o.version for name, o in self.origins.items() if o.version}

    @property
    def errors(self) -> list[PluginError]:
        """Every load and registration error, in the order found."""
        return [*self.load_errors, *_registry().errors, *self.command_errors]


@dataclass
class Registry:
    """What the ``register_*`` hooks gave, checked, with the plugin that gave each item."""

    connectors: dict[str, type[Connector]] = field(default_factory=dict)
    connector_plugins: dict[str, str] = field(default_factory=dict)  # connector name -> plugin name
    matrix_rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[PluginError] = field(default_factory=list)


pm = pluggy.PluginManager("cartstatus")
pm.add_hookspecs(hookspecs)
state = PluginState()
_cache: tuple[tuple[tuple[str, int], ...], Registry] | None = None


def _allowed() -> set[str] | None:
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {_normalise(name) for name in value.split(",") if name.strip()}


def _normalise(name: str) -> str:
    """Distribution names compare as PEP 503 says (``Cartstatus_Acme`` == ``cartstatus-acme``)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def load_plugins() -> None:
    """Register the built-ins and every installed entry-point plugin, once.

    ``CARTSTATUS_LOAD_PLUGINS`` (comma separated entry-point or distribution
    names, as with ``DATASETTE_LOAD_PLUGINS``) limits which third-party plugins
    load; an empty value loads none. Built-ins always load. A plugin that fails
    to import, or that pluggy refuses, is recorded in ``state.load_errors`` with
    its name and the error, and the others still load.
    """
    if state.loaded:
        return
    state.loaded = True
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is not None:
            continue
        try:
            pm.register(importlib.import_module(module_name), name=module_name)
        except Exception as exc:  # a broken built-in must not take the others down either
            state.load_errors.append(PluginError(module_name, f"{type(exc).__name__}: {exc}"))
    allowed = _allowed()
    matched: set[str] = set()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None:
            names = {_normalise(ep.name)} | ({_normalise(dist)} if dist else set())
            if not names & allowed:
                continue
            matched |= names & allowed
        if pm.has_plugin(ep.name):
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # one broken plugin must not take the others down
            state.load_errors.append(PluginError(dist or ep.name, f"{type(exc).__name__}: {exc}"))
            continue
        state.origins[ep.name] = _Loaded(ep.name, dist, ep.dist.version if ep.dist is not None else None)
        for caller in pm.get_hookcallers(module) or []:
            if not caller.has_spec():
                state.load_errors.append(PluginError(
                    dist or ep.name, f"implements {caller.name}(), which is not a cartstatus hook "
                    f"(the hooks are: {', '.join(hook_names())})"))
    for name in sorted((allowed or set()) - matched):
        state.load_errors.append(PluginError(name, f"named in {LOAD_ENV} but no installed plugin has that name"))


def reset_plugins() -> None:
    """Forget every plugin but the built-ins, and every error; the next call loads again.

    For tests that install or break plugins.
    """
    global _cache
    for name, plugin in list(pm.list_name_plugin()):
        if plugin is not None and name not in DEFAULT_PLUGINS:
            pm.unregister(name=name)
    state.load_errors.clear()
    state.command_errors.clear()
    state.origins.clear()
    state.loaded = False
    _cache = None


def hook_names() -> list[str]:
    """The names of every cartstatus hook."""
    return sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "cartstatus_spec"))


# -- the register_* hooks ------------------------------------------------------


def _check_connector(item: Any) -> str | None:
    """Why ``item`` cannot be registered as a connector, or None."""
    if not (isinstance(item, type) and issubclass(item, Connector)):
        return f"{item!r} is not a Connector subclass"
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not KEY_PATTERN.match(name):
        return f"{item.__name__}.name is {name!r}: it must be lowercase letters, digits, '_' or '-'"
    if item.send is Connector.send:
        return f"{item.__name__} does not implement send()"
    schema = item.settings_schema
    if not isinstance(schema, dict):
        return f"{item.__name__}.settings_schema is not a JSON Schema object"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"{item.__name__}.settings_schema is not a valid JSON Schema: {exc.message}"
    return None


def _any_row(item: Any) -> str | None:
    """Rows are checked by the matrix loader against matrix/schema.json, which reports bad ones."""
    return None


def _call_register(hook_name: str, check: Callable[[Any], str | None],
                   registry: Registry) -> list[tuple[str, Any]]:
    """Call one ``register_*`` hook implementation at a time, keeping who gave what."""
    found: list[tuple[str, Any]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        items: list[Any] = []
        try:
            impl.function(items.append)
        except Exception as exc:
            # Half a registration is worse than none: drop everything this plugin gave.
            registry.errors.append(PluginError(_display(plugin_name), f"{hook_name}: {type(exc).__name__}: {exc}"))
            continue
        for item in items:
            problem = check(item)
            if problem:
                registry.errors.append(PluginError(_display(plugin_name), f"{hook_name}: {problem}"))
            else:
                found.append((plugin_name, item))
    return found


def _build_registry() -> Registry:
    registry = Registry()
    for plugin_name, cls in _call_register("register_connectors", _check_connector, registry):
        owner = registry.connector_plugins.get(cls.name)
        if owner is None:
            registry.connectors[cls.name] = cls
            registry.connector_plugins[cls.name] = plugin_name
        elif registry.connectors[cls.name] is not cls:
            # First come wins: built-ins load first, so no plugin can hijack a built-in name.
            registry.errors.append(PluginError(
                _display(plugin_name), f"register_connectors: connector {cls.name!r} is already registered by "
                f"{_display(owner)}; this one is ignored"))
    for plugin_name, row in _call_register("register_matrix_rows", _any_row, registry):
        registry.matrix_rows.append((plugin_name, copy.deepcopy(row)))
    return registry


def plugin_set() -> tuple[tuple[str, int], ...]:
    """The plugins registered, loading them first: it changes whenever one is added or removed."""
    load_plugins()
    return tuple((name, id(plugin)) for name, plugin in pm.list_name_plugin())


def _registry() -> Registry:
    """The registry, rebuilt whenever the set of registered plugins changes."""
    global _cache
    key = plugin_set()
    if _cache is None or _cache[0] != key:
        _cache = (key, _build_registry())
    return _cache[1]


def get_connectors() -> dict[str, type[Connector]]:
    """Every registered connector class by name; the first registration of a name wins."""
    return dict(_registry().connectors)


def get_connector_plugins() -> list[tuple[str, type[Connector]]]:
    """(plugin name, connector class) pairs, for listing; a plugin is named by its distribution."""
    registry = _registry()
    return [(_display(registry.connector_plugins[name]), cls) for name, cls in registry.connectors.items()]


def get_matrix_rows() -> list[tuple[str, dict[str, Any]]]:
    """(plugin name, row) pairs registered through ``register_matrix_rows``; a plugin is named by its distribution."""
    return [(_display(p), copy.deepcopy(r)) for p, r in _registry().matrix_rows]


# -- commands ------------------------------------------------------------------


def add_commands(cli: click.Group) -> None:
    """Let each plugin add its commands to ``cli`` (the ``cartstatus`` click group), built-ins first.

    Each ``register_commands`` implementation is called on its own. One that
    raises, or that would replace a command already there, is reported (in
    ``state.errors``: ``cartstatus plugins`` lists it) and none of its commands
    are kept; the CLI and every other plugin's commands still work.
    """
    load_plugins()
    state.command_errors.clear()
    for impl in pm.hook.register_commands.get_hookimpls():
        plugin_name = _display(pm.get_name(impl.plugin) or repr(impl.plugin))
        before = dict(cli.commands)
        try:
            impl.function(**{name: cli for name in impl.argnames})
        except Exception as exc:  # a plugin's bug must not take the CLI down
            problem: str | None = f"{type(exc).__name__}: {exc}"
        else:
            replaced = sorted(name for name, command in before.items() if cli.commands.get(name) is not command)
            problem = (f"command {', '.join(map(repr, replaced))} is already taken, so none of this plugin's "
                       "commands are added; rename it") if replaced else None
        if problem is not None:
            cli.commands = before  # half a registration is worse than none
            state.command_errors.append(PluginError(plugin_name, f"register_commands: {problem}"))


# -- observers -----------------------------------------------------------------


def _observe(hook_name: str, **kwargs: Any) -> None:
    """Call each observer on its own: one that raises is logged, the others still hear."""
    load_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception:
            log.exception("plugin %s raised in %s", _display(pm.get_name(impl.plugin) or "?"), hook_name)


def notify_delivered(record: Any, outcome: Any) -> None:
    """Tell every ``update_delivered`` observer that a record was delivered."""
    _observe("update_delivered", record=record, outcome=outcome)


def notify_parked(record: Any, reason: str) -> None:
    """Tell every ``update_parked`` observer that a record was parked."""
    _observe("update_parked", record=record, reason=reason)


# -- listing -------------------------------------------------------------------


def _display(plugin_name: str) -> str:
    origin = state.origins.get(plugin_name)
    return (origin.distribution or plugin_name) if origin else plugin_name


@dataclass
class PluginInfo:
    """One plugin as ``cartstatus plugins`` lists it."""

    name: str
    entry_point: str | None
    version: str | None
    builtin: bool
    loaded: bool
    hooks: list[str]
    connectors: list[str]
    matrix_rows: list[str]
    errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "entry_point": self.entry_point, "version": self.version,
                "builtin": self.builtin, "loaded": self.loaded, "hooks": self.hooks,
                "connectors": self.connectors, "matrix_rows": self.matrix_rows, "errors": self.errors}


def plugin_info(more_errors: Iterable[PluginError] = (), all_builtins: bool = False) -> list[PluginInfo]:
    """Every plugin, loaded or not, with what it registered and what went wrong.

    ``more_errors``: what others found wrong with a plugin's gifts (the matrix
    with its rows). The built-in command plugins are listed only with
    ``all_builtins`` or when something is wrong with them.
    """
    registry = _registry()
    errors = [*state.errors, *more_errors]
    infos: list[PluginInfo] = []
    for plugin_name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        display = _display(plugin_name)
        origin = state.origins.get(plugin_name)
        builtin = origin is None
        if plugin_name in COMMAND_PLUGINS and not all_builtins and not any(e.name == display for e in errors):
            continue
        rows = [r["key"] for p, r in registry.matrix_rows
                if p == plugin_name and isinstance(r, dict) and isinstance(r.get("key"), str)]
        infos.append(PluginInfo(
            name=display,
            entry_point=origin.entry_point if origin else None,
            version=origin.version if origin else _own_version(),
            builtin=builtin,
            loaded=True,
            hooks=sorted(c.name for c in (pm.get_hookcallers(plugin) or [])),
            connectors=sorted(n for n, p in registry.connector_plugins.items() if p == plugin_name),
            matrix_rows=rows,
            errors=[e.error for e in errors if e.name == display],
        ))
    known = {i.name for i in infos}
    for err in errors:
        if err.name not in known:
            known.add(err.name)
            infos.append(PluginInfo(err.name, None, None, False, False, [], [], [],
                                    [e.error for e in errors if e.name == err.name]))
    return infos


def _own_version() -> str | None:
    """cartstatus's version: the built-ins'."""
    try:
        return importlib.metadata.version("cartstatus")
    except importlib.metadata.PackageNotFoundError:
        return None
