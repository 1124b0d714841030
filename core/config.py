"""The setup file ``cartstatus.yaml``: loaded, validated against its schema, secrets resolved.

Each store's ``connector:`` settings are checked by the connector class that
serves its cart; finding that class (the matrix, the installed plugins) is the
caller's: :func:`read_config` is given it (``cartstatus.load_config`` gives the
installed connectors).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import ruamel.yaml
import sqlalchemy as sa

from .connector import Connector
from .events import KNOWN_EVENTS, match_event, nearest_events
from .problems import Problem, ProblemsError, dotted
from .schema_errors import Wording, explain_all
from .secrets import (
    Secret,
    SecretError,
    SecretMask,
    config_secret_mask,
    mask_url_passwords,
    resolve_secret,
    reveal_secrets,
    wrap_secrets,
)
from .yamlfile import Locator, YamlFileError, load_yaml

CONFIG_ENV = "CARTSTATUS_CONFIG"
DEFAULT_CONFIG = "cartstatus.yaml"

#: Finds the connector class that serves a store's cart (a key, name or alias of the matrix), or None.
ConnectorFor = Callable[[str], "type[Connector] | None"]


class ConfigError(ProblemsError):
    """The setup file cannot be used; ``problems`` says where and why."""


@dataclass(frozen=True)
class StatusEvent:
    event: str
    order_status: str
    notify_cart: bool = False
    #: An event of the merchant's own (``custom: true``), not one of the known status events.
    custom: bool = False


@dataclass(frozen=True)
class OssSettings:
    url: str
    merchant: str
    token: Secret
    subscription_expires: dt.date

    def active(self, today: dt.date | None = None) -> bool:
        """A subscription is active through its end date."""
        return (today or dt.date.today()) <= self.subscription_expires

    def connector_settings(self) -> dict[str, Any]:
        """The ``oss`` connector's settings for this account: to send, and for its connection test (which
        compares the OSS's end date with this file's)."""
        return {"url": self.url, "merchant": self.merchant, "token": self.token,
                "subscription_expires": self.subscription_expires.isoformat()}


@dataclass(frozen=True)
class Store:
    id: str
    cart: str
    connector: dict[str, Any] = field(default_factory=dict)
    status_map: dict[str, str] = field(default_factory=dict)
    oss: OssSettings | None = None

    def cart_status(self, label: str) -> str:
        return str(self.status_map.get(label, label))


#: A record that keeps failing is parked after this long (3 days), whatever its attempts.
DEFAULT_RETRY_HORIZON_SECONDS = 3 * 24 * 3600.0


@dataclass(frozen=True)
class ControllerSettings:
    """The stack controller's settings (``controller:`` in the setup file; README has the table)."""

    concurrency: int = 16  # sends in flight at once
    batch_size: int = 200  # records claimed at once
    lease_seconds: float = 60.0  # how long a claimed record is held: every send ends inside it
    backoff_base: float = 2.0  # seconds before the first retry, doubling after each failure
    backoff_cap: float = 3600.0  # the longest wait between retries
    max_attempts: int | None = None  # park after this many failed sends (None: the horizon alone)
    #: Seconds from a record's first failure after which it is parked with its last reason.
    retry_horizon_seconds: float = DEFAULT_RETRY_HORIZON_SECONDS

    @property
    def lease_margin(self) -> float:
        """The part of a lease no send may use: settling and clock skew between controllers."""
        return min(5.0, self.lease_seconds / 4)

    @property
    def longest_send(self) -> float:
        """The longest total deadline a send may have: it must end inside its lease, less the margin."""
        return self.lease_seconds - self.lease_margin

    @staticmethod
    def lease_for_send(send_seconds: float) -> float:
        """The shortest ``lease_seconds`` whose :attr:`longest_send` is ``send_seconds`` (the inverse of it)."""
        # longest_send = max(lease - 5, lease * 3/4): the smaller of the two inverses.
        return min(send_seconds + 5.0, send_seconds * 4 / 3)


@dataclass
class Config:
    path: Path
    use_status_updates: bool = False
    status_events: dict[str, StatusEvent] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    stack_url: str = "sqlite:///cartstatus.db"
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    matrix_extra: Path | None = None
    #: Data path -> line in the setup file, for problems found after loading (``cartstatus.routing.cart_problems``).
    locate: Locator | None = field(default=None, repr=False, compare=False)

    def store(self, store_id: str) -> Store:
        try:
            return self.stores[store_id]
        except KeyError:
            raise KeyError(
                f"store {store_id!r} is not in {self.path}; known stores: {', '.join(self.stores) or 'none'}"
            ) from None

    @cached_property
    def secret_mask(self) -> SecretMask:
        """Masks every secret this file holds, in any form: for every reason stored, shown or logged."""
        return config_secret_mask(self)


@cache
def config_schema() -> dict[str, Any]:
    text = resources.files("cartstatus").joinpath("schemas/cartstatus.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``CARTSTATUS_CONFIG``, else ``./cartstatus.yaml``."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def _schema_problems(path: Path, data: Any, locate: Locator) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(
        config_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [Problem(path, locate(data_path), dotted(data_path), message)
            for data_path, message in explain_all(validator.iter_errors(data))]


def read_config(path: str | os.PathLike[str] | None, connector_for: ConnectorFor) -> Config:
    """Load and check the setup file; raise :class:`ConfigError` naming every problem.

    ``connector_for`` finds the connector class serving a store's cart: its
    settings schema checks the store's ``connector:`` settings (and marks their
    secrets), its timeout must fit inside the lease. A store whose cart it has
    no class for keeps its settings as written.
    """
    p = config_path(path)
    try:
        data, locate = load_yaml(p, kind="setup file")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(p, None, "(file)", "no such setup file; create one (see README) or pass --config")]
        ) from None
    except OSError as exc:
        raise ConfigError([Problem(p, None, "(file)", f"cannot read: {exc.strerror}")]) from None
    except YamlFileError as exc:
        raise ConfigError([Problem(p, exc.line, exc.field, exc.message)]) from None
    if data is None:
        data = {}
    problems = _schema_problems(p, data, locate)
    if problems:
        raise ConfigError(sorted(problems, key=lambda q: (q.line or 0)))
    return _build(p, data, locate, connector_for)


def _build(p: Path, data: dict[str, Any], locate: Locator, connector_for: ConnectorFor) -> Config:
    problems: list[Problem] = []
    base_dir = p.parent.resolve()

    def bad(data_path: list[Any], message: str) -> None:
        problems.append(Problem(p, locate(data_path), dotted(data_path), message))

    cfg = Config(path=p, locate=locate)
    cfg.controller = ControllerSettings(**data.get("controller", {}))
    backoff = cfg.controller
    if backoff.backoff_base > backoff.backoff_cap:
        bad(["controller", "backoff_base"], f"{backoff.backoff_base:g} is more than backoff_cap "
                                            f"{backoff.backoff_cap:g}: the first wait cannot be longer than the "
                                            "longest; lower backoff_base or raise backoff_cap")
    cfg.use_status_updates = bool(data.get("system", {}).get("UseStatusUpdates", False))
    for i, raw in enumerate(data.get("status_events", [])):
        custom = bool(raw.get("custom", False))
        event = match_event(raw["event"])
        if custom:
            if event is not None:
                bad(["status_events", i, "custom"], f"{event!r} is a known status event: leave out custom: true")
                continue
            event = " ".join(raw["event"].split())
        elif event is None:
            near = nearest_events(raw["event"])
            bad(["status_events", i, "event"],
                f"{raw['event']!r} is not a known status event"
                + (f"; did you mean {' or '.join(map(repr, near))}?" if near else
                   f"; expected one of: {', '.join(KNOWN_EVENTS)}")
                + " (an event of your own needs custom: true)")
            continue
        if match_event(event, cfg.status_events) is not None:
            bad(["status_events", i, "event"], f"{event!r} is defined twice; keep one")
            continue
        cfg.status_events[event] = StatusEvent(event, raw["order_status"], bool(raw.get("notify_cart", False)),
                                               custom)

    classes: dict[str, type[Connector] | None] = {}  # one lookup per cart, not per store
    for i, raw in enumerate(data.get("stores", [])):
        sid = raw["id"]
        if sid in cfg.stores:
            bad(["stores", i, "id"], f"store id {sid!r} is used twice; ids must be unique")
            continue
        oss = None
        try:
            if "oss" in raw:
                o = raw["oss"]
                oss = OssSettings(
                    url=o["url"].rstrip("/"),
                    merchant=o["merchant"],
                    token=resolve_secret(o["token"], base_dir=base_dir),
                    # The schema's format: date checked it is a real YYYY-MM-DD date.
                    subscription_expires=dt.date.fromisoformat(o["subscription_expires"]),
                )
        except SecretError as exc:
            bad(["stores", i, "oss", "token"], str(exc))
        if raw["cart"] not in classes:
            classes[raw["cart"]] = connector_for(raw["cart"])
        cls = classes[raw["cart"]]
        settings_schema = cls.settings_schema if cls is not None else {}
        try:
            settings = wrap_secrets(raw.get("connector", {}), settings_schema, base_dir)
        except SecretError as exc:
            bad(["stores", i, "connector", *exc.data_path], str(exc))
            continue
        before = len(problems)
        if cls is not None:  # settings left out are checked too: a required one is missing
            # Never quote a value that breaks the connector's schema: it may be a secret.
            wording = Wording(quote_values=False, whose=cls.name)
            errors = jsonschema.Draft202012Validator(settings_schema).iter_errors(reveal_secrets(settings))
            for data_path, message in explain_all(errors, wording):
                bad(["stores", i, "connector", *data_path], message)
        if cls is not None and len(problems) == before:  # settings the connector takes: does its timeout fit?
            unfit = _timeout_unfit(cls, settings, cfg.controller)
            if unfit:
                bad(["stores", i, *unfit[0]], unfit[1])
        own_map = {k: str(v) for k, v in raw.get("status_map", {}).items()}
        status_map = {**(cls.default_status_map if cls is not None else {}), **own_map}
        vocabulary = cls.vocabulary_for(reveal_secrets(settings)) if cls is not None and len(problems) == before \
            else None
        if cls is not None and vocabulary is not None:
            for label, value, event in _unmapped_labels(cfg, status_map, vocabulary):
                bad(["stores", i, "status_map" if "status_map" in raw else "cart"],
                    f"event {event!r} notifies the cart with label {label!r}, which maps to {value!r}: not one of "
                    f"{cls.name}'s statuses ({', '.join(vocabulary)}); map it in status_map, "
                    f"for example {label}: {vocabulary[0]}")
        cfg.stores[sid] = Store(id=sid, cart=raw["cart"], connector=settings, status_map=status_map, oss=oss)

    url = data.get("stack", {}).get("url", "sqlite:///cartstatus.db")
    try:
        sa.engine.make_url(url).get_dialect()  # a port that is not a number, a driver that is not installed
    except (sa.exc.ArgumentError, ValueError) as exc:
        bad(["stack", "url"], mask_url_passwords(f"{url!r} is not a database URL cartstatus can use ({exc})")
            + "; write sqlite:///FILE or postgresql://USER:PASSWORD@HOST/NAME")
    cfg.stack_url = _anchor_sqlite(url, base_dir)
    extra = data.get("matrix", {}).get("extra")
    if extra:
        cfg.matrix_extra = (base_dir / extra) if not Path(extra).is_absolute() else Path(extra)
    if problems:
        raise ConfigError(sorted(problems, key=lambda q: (q.line or 0)))
    return cfg


def _unmapped_labels(cfg: Config, status_map: dict[str, str],
                     vocabulary: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(label, mapped value, event) for each Notify Cart event whose label the cart would refuse."""
    return [(e.order_status, status_map.get(e.order_status, e.order_status), e.event)
            for e in cfg.status_events.values()
            if e.notify_cart and status_map.get(e.order_status, e.order_status) not in vocabulary]


def _timeout_unfit(cls: type[Connector], settings: dict[str, Any],
                   controller: ControllerSettings) -> tuple[list[Any], str] | None:
    """The field and the words when the connector's timeout cannot end inside a lease, else None.

    A send still running when its lease ends may land after a newer update of
    the same order (issue 8): the timeout must fit in ``controller.longest_send``.
    """
    given = settings.get("timeout")
    own = isinstance(given, int | float) and not isinstance(given, bool)
    timeout = float(given) if isinstance(given, int | float) and own else float(cls.timeout)
    longest = controller.longest_send
    if timeout <= longest:
        return None
    raise_lease = f"raise controller.lease_seconds to {ControllerSettings.lease_for_send(timeout):g} or more"
    within = (f"a send may last at most {longest:g} s (controller.lease_seconds {controller.lease_seconds:g} "
              f"less a {controller.lease_margin:g} s margin)")
    if own:
        return ["connector", "timeout"], (f"a timeout of {timeout:g} s cannot fit inside the lease: {within}; "
                                          f"lower it to {longest:g} or less, or {raise_lease}")
    return ["cart"], (f"connector {cls.name!r} times out after {timeout:g} s by default, which cannot fit inside "
                      f"the lease: {within}; set the store's connector timeout to {longest:g} or less, "
                      f"or {raise_lease}")


def _anchor_sqlite(url: str, base_dir: Path) -> str:
    """A relative SQLite path is relative to the setup file, not to where the command runs."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(base_dir / url[len(prefix):])
    return url


def edit_setup_file(path: Path, change: Callable[[Any], None]) -> None:
    """Change the setup file's data in place, keeping its comments, order and quoting (``cartstatus setup``,
    ``events load-defaults``); a file not there yet is started. Written whole, then moved over the old one."""
    rt = ruamel.yaml.YAML()  # round-trip: comments and order come back as they were
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096  # a long line stays one line
    data = rt.load(path.read_text(encoding="utf-8")) if path.exists() else None
    if data is None:
        data = ruamel.yaml.CommentedMap()
    change(data)
    out = io.StringIO()
    rt.dump(data, out)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def write_status_events(path: Path, events: list[StatusEvent]) -> None:
    """Replace the ``status_events`` section, keeping the rest of the file as it is."""

    def change(data: Any) -> None:
        data["status_events"] = [
            {"event": e.event, "order_status": e.order_status, "notify_cart": e.notify_cart} | (
                {"custom": True} if e.custom else {}) for e in events
        ]
        data.setdefault("system", {}).setdefault("UseStatusUpdates", True)

    edit_setup_file(path, change)
