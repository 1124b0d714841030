"""``cartstatus setup``: the Store Setup Wizard, asking (or taking from flags) what ``cartstatus.yaml`` needs.

In the original's order: use status updates and the OSS account (with Test
Settings); the status events, Notify Cart asked for each (the defaults
offered); then a store: its cart found through the shopping-cart matrix
(forgiving names), its connector's settings asked from the connector's
settings schema and checked, Test Settings run. The OSS account belongs to a
store (``stores[].oss``): it is saved with the store set up, whatever its cart
(one that takes updates falls back on it should its connector be missing);
without a store, with the file's stores that use that account or need one.
Secrets are written as ``$env``/``$file`` references, in clear only when
asked. An existing file is edited, its comments and order kept.

Every question has a flag; a question whose flag is given is not asked, and
``--no-input`` asks nothing (a missing answer is an error), for scripts.
A built-in plugin: its command comes through ``register_commands``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import jsonschema

from .config import ConfigError, OssSettings, config_path, config_schema, edit_setup_file
from .connector import Connector
from .events import DEFAULT_STATUS_EVENTS, match_event, nearest_events
from .hookspecs import hookimpl
from .matrix import MatrixError, find_cart
from .plugins import get_connectors
from .routing import cart_matrix, load_config
from .schema_errors import Wording, explain_all
from .secrets import SecretError, resolve_secret, wrap_secrets
from .settings_test import try_connector, try_oss
from .terminal import console, fail, warn
from .yamlfile import load_yaml

#: How a secret is written: a reference, or the value itself.
SECRET_KINDS = ("env", "file", "inline")


class _Asker:
    """Asks a question unless its answer came as a flag; with ``--no-input`` a missing answer is an error."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def ask(self, given: Any, text: str, flag: str, default: Any = None, **prompt: Any) -> Any:
        if given is not None:
            return given
        if not self.interactive:
            if default is not None:
                return default
            fail(f"{flag} is needed with --no-input ({text})", 2)
        return click.prompt(text, default=default, **prompt)

    def confirm(self, given: bool | None, text: str, default: bool) -> bool:
        if given is not None:
            return given
        return click.confirm(text, default=default) if self.interactive else default


def _typed(value: str, schema: dict[str, Any]) -> Any:
    """A setting typed at the prompt or in a flag, as its schema's type wants it."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
    except ValueError:
        return value  # the schema says what is wrong
    if kind == "boolean":
        return value.strip().lower() in ("true", "yes", "y", "1", "on")
    return value


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{flag} takes KEY=VALUE, not {item!r}", 2)
        pairs[key.strip()] = value
    return pairs


def _secret_spec(asker: _Asker, key: str, given: str | None, description: str,
                 existing: Any = None) -> dict[str, str] | str:
    """A secret as the file will hold it: ``{$env: NAME}``, ``{$file: PATH}``, or inline when asked.

    The secret the file has already is the default (never shown when it is inline).
    """
    if isinstance(existing, dict) and len(existing) == 1:
        was_kind, was_where = next(iter(existing.items()))
        was_kind = str(was_kind).lstrip("$")
    else:
        was_kind, was_where = ("inline", existing) if isinstance(existing, str) else ("env", None)
    if given is None and asker.interactive:
        kind = click.prompt(f"{key} ({description}) is a secret: keep it in an environment variable, a file, or "
                            "inline (written in clear)", type=click.Choice(SECRET_KINDS), default=was_kind)
        keep = was_where if kind == was_kind and kind != "inline" else None
        where = click.prompt({"env": "  the variable's name", "file": "  the file's path (beside the setup file)",
                              "inline": "  the value"}[kind], hide_input=kind == "inline", default=keep)
        given = f"{kind}:{where}"
    if given is None and was_where is not None:
        return existing
    if given is None:
        fail(f"--secret {key}=env:NAME (or file:PATH, inline:VALUE) is needed with --no-input", 2)
    kind, sep, where = given.partition(":")
    if not sep or kind not in SECRET_KINDS or not where:
        fail(f"a secret is given as env:NAME, file:PATH or inline:VALUE, not {kind}:...", 2)
    return where if kind == "inline" else {f"${kind}": where}


def _connector_settings(asker: _Asker, cls: type[Connector], existing: dict[str, Any], flags: dict[str, str],
                        secrets: dict[str, str]) -> dict[str, Any]:
    """Each setting of the connector's schema asked (required ones, and optional ones given or already set),
    each checked against its schema as it is answered; a wrong one is asked again."""
    schema = cls.settings_schema
    properties: dict[str, Any] = schema.get("properties", {})
    required = list(schema.get("required", []))
    unknown = sorted(set(flags) - set(properties) | set(secrets) - set(properties))
    if unknown:
        fail(f"connector {cls.name!r} has no setting {', '.join(unknown)}; its settings: {', '.join(properties)}", 2)
    misplaced = sorted({k for k in flags if properties[k].get("secret")}
                       | {k for k in secrets if not properties[k].get("secret")})
    if misplaced:
        fail(f"{', '.join(misplaced)}: a secret is given with --secret KEY=env:NAME, any other setting with "
             "--setting KEY=VALUE", 2)
    wanted = required + [k for k in properties if k not in required and (k in flags or k in secrets or k in existing)]
    settings: dict[str, Any] = {}
    wording = Wording(quote_values=False, whose=cls.name)
    for key in wanted:
        prop = properties.get(key, {})
        if prop.get("secret"):
            settings[key] = _secret_spec(asker, key, secrets.get(key), prop.get("description", key),
                                         existing.get(key))
        else:
            settings[key] = _ask_valid(asker, flags.get(key), f"{key} ({prop.get('description', 'text')})",
                                       f"--setting {key}", prop, existing.get(key, prop.get("default")), wording)
    return settings


def _ask_valid(asker: _Asker, given: str | None, text: str, flag: str, schema: dict[str, Any], default: Any,
               wording: Wording) -> Any:
    """One answer, typed and checked against ``schema``: asked again when wrong, an error when it came as a flag."""
    shown = None if default is None else str(default).lower() if isinstance(default, bool) else str(default)
    while True:
        value = _typed(str(asker.ask(given, text, flag, default=shown)), schema)
        problems = explain_all(jsonschema.Draft202012Validator(schema).iter_errors(value), wording)
        if not problems:
            return value
        message = f"{flag.removeprefix('--setting ').removeprefix('--')}: {problems[0][1]}"
        if not asker.interactive or given is not None:
            fail(message, 2)
        warn(message)


def _find_row(asker: _Asker, given: str | None, extra: Path | None) -> Any:
    try:
        matrix = cart_matrix(extra)
    except MatrixError as exc:
        fail(f"the shopping-cart matrix cannot be used: {exc}", 2)
    while True:
        query = asker.ask(given, "Which shopping cart does the store run (a name as you know it)", "--cart")
        look = find_cart(matrix, query)
        if look.row is not None:
            if look.matched_by == "fuzzy":
                console.print(f"  taking {query!r} for {look.row.name} ({look.row.key})", highlight=False)
            return look.row, matrix
        near = ", ".join(look.suggestions) or "see `cartstatus matrix list`"
        if given is not None or not asker.interactive:
            fail(f"{query!r} is not a cart of the shopping-cart matrix; nearest: {near}", 2)
        warn(f"{query!r} is not a cart of the shopping-cart matrix; nearest: {near}")


def _report(what: str, ok: bool, detail: str) -> bool:
    console.print(f"  Test Settings, {what}: " + ("[green]OK[/]" if ok else "[red]refused[/]"), highlight=False,
                  end=" ")
    console.print(detail, markup=False, highlight=False)
    return ok


def _readable(read: Callable[[], Any]) -> Any:
    """Settings with their secrets read, for Test Settings; None (the test skipped, saying why) when one
    cannot be read yet (a variable this shell has not exported)."""
    try:
        return read()
    except SecretError as exc:
        warn(f"{exc}: Test Settings skipped; run `cartstatus test` once it is set")
        return None


#: A status event as page 2 lists it: its name (as the file has it), its label, Notify Cart, custom or not.
_Event = tuple[str, str, bool, bool]


def _notify_flags(values: tuple[str, ...], events: list[_Event]) -> dict[str, bool]:
    """``--notify-cart EVENT=yes|no`` answers, by the listed event each names (case and spacing do not count)."""
    names = [e[0] for e in events]
    answers: dict[str, bool] = {}
    for given, value in _pairs(values, "--notify-cart").items():
        event = match_event(given, names)
        if event is None:
            near = nearest_events(given, names)
            fail(f"--notify-cart: no status event {given!r} in the list"
                 + (f"; did you mean {' or '.join(map(repr, near))}?" if near else f"; its events: {', '.join(names)}"),
                 2)
        try:
            answers[event] = click.BOOL.convert(value, None, None)
        except click.BadParameter:
            fail(f"--notify-cart {given}=...: yes or no, not {value!r}", 2)
    return answers


def _status_events(asker: _Asker, load: bool, current: list[Any], flags: tuple[str, ...]) -> list[_Event]:
    """Page 2: the events the file will hold (the defaults loaded, else its own), Notify Cart asked for each:
    the file's answer is offered, else the original's default."""
    had = {str(e.get("event")): bool(e.get("notify_cart", False)) for e in current if isinstance(e, dict)}
    if load:
        events = [(e, label, had.get(match_event(e, had) or "", notify), False)
                  for e, label, notify in DEFAULT_STATUS_EVENTS]
    else:
        events = [(str(e["event"]), str(e["order_status"]), bool(e.get("notify_cart", False)),
                   bool(e.get("custom", False))) for e in current if isinstance(e, dict)]
    answers = _notify_flags(flags, events)
    if events and asker.interactive and len(answers) < len(events):
        console.print("Notify Cart: which status events your shoppers see in the cart (or the OSS).", highlight=False)
    return [(e, label, asker.confirm(answers.get(e), f"  Notify Cart for {e} (sets {label})?", notify), custom)
            for e, label, notify, custom in events]


def _uses_account(store: dict[str, Any], account: dict[str, Any], matrix: Any) -> bool:
    """A store of the file the OSS account is saved with when no store is set up: one that has this account
    already (a new token, a renewal), or none while its cart cannot take updates."""
    had = store.get("oss")
    if isinstance(had, dict):
        return (str(had.get("url", "")).rstrip("/"), had.get("merchant")) == (account["url"], account["merchant"])
    row = matrix.get(str(store.get("cart"))) or matrix.by_name(str(store.get("cart")))
    return row is not None and row.why_not_native(matrix.installed) is not None


@click.command("setup")
@click.option("--no-input", is_flag=True, help="Ask nothing: every answer comes from the flags (for scripts).")
@click.option("--use-status-updates/--no-use-status-updates", default=None,
              help="UseStatusUpdates: send status updates at all (rule 2).")
@click.option("--oss-url", help="The OSS's address (the OSS account, for stores whose cart takes no updates).")
@click.option("--oss-merchant", help="Your merchant name at the OSS.")
@click.option("--oss-token", help="The OSS token, as env:NAME, file:PATH or inline:VALUE.")
@click.option("--oss-expires", type=click.DateTime(["%Y-%m-%d"]), help="The OSS subscription's last day (YYYY-MM-DD).")
@click.option("--default-events/--no-default-events", default=None,
              help="Load the default status events (with Notify Cart as the original set it).")
@click.option("--notify-cart", "notify", multiple=True, metavar="EVENT=yes|no",
              help="Notify Cart for one status event (repeat); the others keep the default offered.")
@click.option("--store", "store_id", help="The store's id (letters, digits, _ . -).")
@click.option("--cart", help="The store's cart, as you call it (the matrix finds it: `cartstatus matrix check`).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="A connector setting (repeat).")
@click.option("--secret", "secrets", multiple=True, metavar="KEY=env:NAME",
              help="A connector secret: env:NAME, file:PATH or inline:VALUE (repeat).")
@click.option("--test/--no-test", "run_tests", default=True, help="Run Test Settings (the default).")
@click.pass_context
def setup_command(ctx: click.Context, no_input: bool, use_status_updates: bool | None, oss_url: str | None,
                  oss_merchant: str | None, oss_token: str | None, oss_expires: dt.datetime | None,
                  default_events: bool | None, notify: tuple[str, ...], store_id: str | None, cart: str | None,
                  settings: tuple[str, ...], secrets: tuple[str, ...], run_tests: bool) -> None:
    """The Store Setup Wizard: write or edit the setup file, question by question.

    Page 1: use status updates, and the OSS account (Test Settings). Page 2:
    the status events ("Load Default Status Events"), Notify Cart for each.
    Then a store: its cart, its connector's settings, Test Settings; the OSS
    account is saved with it. Re-run it to add a store or change one: the file
    keeps its comments and order.

    Exit status: 0 written and every test passed, 1 written but a test was refused, 2 a wrong answer.
    """
    asker = _Asker(not no_input)
    root = ctx.find_root()
    path = config_path(root.params.get("config_option"))
    base_dir = path.parent.resolve()
    current: dict[str, Any] = {}
    if path.exists():
        try:
            load_config(path)
            current = load_yaml(path, kind="setup file")[0] or {}
        except ConfigError as exc:
            fail(f"the setup file cannot be used, fix it first:\n{exc}", 2)
        console.print(f"Editing {path}.", highlight=False)
    else:
        console.print(f"Writing a new setup file {path}.", highlight=False)
    passed = True

    # Page 1: status updates and the OSS account.
    use = asker.confirm(use_status_updates, "Use status updates (send order status changes to carts or the OSS)?",
                        bool(current.get("system", {}).get("UseStatusUpdates", True)))
    # The file's OSS account is offered again: the named store's own, else the first store's.
    accounts = [s for s in current.get("stores", []) if isinstance(s.get("oss"), dict)]
    own = next((s["oss"] for s in accounts if s.get("id") == store_id), None)
    known: dict[str, Any] = own or (accounts[0]["oss"] if accounts else {})
    # From flags alone, only the named store's own account is kept: another store's is never copied unasked.
    have_oss = oss_url is not None or (click.confirm(
        "Do you have an Order Status System (OSS) account, for stores whose cart takes no updates?",
        default=bool(known)) if asker.interactive else own is not None)
    oss_block: dict[str, Any] | None = None
    if have_oss:
        oss_schema = config_schema()["properties"]["stores"]["items"]["properties"]["oss"]["properties"]
        oss_block = {
            "url": _ask_valid(asker, oss_url, "The OSS's address", "--oss-url", oss_schema["url"],
                              known.get("url"), Wording()).rstrip("/"),
            "merchant": _ask_valid(asker, oss_merchant, "Your merchant name at the OSS", "--oss-merchant",
                                   oss_schema["merchant"], known.get("merchant"), Wording()),
            "token": _secret_spec(asker, "token", oss_token, "the store's OSS token", known.get("token")),
        }
        expires = asker.ask(oss_expires, "The subscription's last day (YYYY-MM-DD)", "--oss-expires",
                            default=known.get("subscription_expires"), type=click.DateTime(["%Y-%m-%d"]))
        # A date from the file (text) when kept without a prompt, else click's datetime.
        oss_block["subscription_expires"] = (expires.date() if isinstance(expires, dt.datetime)
                                             else dt.date.fromisoformat(str(expires)))
        token = _readable(lambda: resolve_secret(oss_block["token"], base_dir=base_dir)) if run_tests else None
        if token is not None:
            oss = OssSettings(oss_block["url"], oss_block["merchant"], token, oss_block["subscription_expires"])
            result = asyncio.run(try_oss(oss))
            passed &= _report("the OSS", result.ok, result.detail)

    # Page 2: status events.
    load = asker.confirm(default_events, "Load Default Status Events (with Notify Cart as the original set it)?",
                         not current.get("status_events"))
    events = _status_events(asker, load, current.get("status_events") or [], notify)

    # A store.
    store: dict[str, Any] | None = None
    if store_id is not None or (asker.interactive and click.confirm("Set up a store now?", default=True)):
        id_schema = config_schema()["properties"]["stores"]["items"]["properties"]["id"]
        sid = _ask_valid(asker, store_id, "The store's id (letters, digits, _ . -)", "--store", id_schema, None,
                         Wording())
        old: dict[str, Any] = next((s for s in current.get("stores", []) if s.get("id") == sid), {})
        extra = current.get("matrix", {}).get("extra")
        row, matrix = _find_row(asker, cart, base_dir / extra if extra else None)
        store = {"id": sid, "cart": row.key}
        blocked = row.why_not_native(matrix.installed)
        if oss_block is not None:
            store["oss"] = oss_block
        if blocked is None:
            cls = get_connectors()[row.connector]
            store["connector"] = _connector_settings(asker, cls, old.get("connector", {}),
                                                     _pairs(settings, "--setting"), _pairs(secrets, "--secret"))
            connector = store["connector"]
            resolved = _readable(lambda: wrap_secrets(connector, cls.settings_schema, base_dir)) if run_tests \
                else None
            if resolved is not None:
                result = asyncio.run(try_connector(cls, resolved))
                passed &= _report(f"{row.name} ({cls.name})", result.ok, result.detail)
            if oss_block is not None:
                console.print(f"  The OSS account is saved with store {sid}: its updates go to the OSS should "
                              f"connector {cls.name!r} not be installed.", highlight=False)
        elif oss_block is not None:
            console.print(f"  {blocked}: its updates go to the OSS.", highlight=False)
        else:
            warn(f"{blocked}, and no OSS account was given: nothing will be sent for store {sid} until it has one "
                 "(run cartstatus setup again with the OSS account)")

    keepers: list[int] = []  # with no store set up: the file's stores the OSS account is saved with
    if oss_block is not None and store is None:
        extra = current.get("matrix", {}).get("extra")
        try:
            matrix = cart_matrix(base_dir / extra if extra else None)
        except MatrixError as exc:
            fail(f"the shopping-cart matrix cannot be used: {exc}", 2)
        keepers = [i for i, s in enumerate(current.get("stores", [])) if _uses_account(s, oss_block, matrix)]
        if keepers:
            ids = ", ".join(str(current["stores"][i].get("id")) for i in keepers)
            console.print(f"  The OSS account is saved with store {ids}.", highlight=False)
        else:
            warn("the OSS account belongs to a store, and no store of the file uses it: it is not saved; run "
                 "cartstatus setup again and set up the store it is for")

    def change(data: Any) -> None:
        data.setdefault("system", {})["UseStatusUpdates"] = use
        if load:
            data["status_events"] = [{"event": e, "order_status": label, "notify_cart": notify}
                                     for e, label, notify, _ in events]
        else:  # the file's own events: Notify Cart changed where answered so, the rest as written
            for entry, (_, _, notify, _) in zip(data.get("status_events") or [], events, strict=True):
                if bool(entry.get("notify_cart", False)) != notify:
                    entry["notify_cart"] = notify
        for i in keepers:
            if data["stores"][i].get("oss") != oss_block:  # unchanged, it keeps its own layout
                data["stores"][i]["oss"] = oss_block
        if store is not None:
            stores = data.setdefault("stores", [])
            at = next((i for i, s in enumerate(stores) if s.get("id") == store["id"]), None)
            if at is None:
                stores.append(store)
            else:
                for gone in {"connector", "oss"} - set(store):  # a cart changed from native to the OSS or back
                    stores[at].pop(gone, None)
                stores[at].update(store)  # the keys it had stay where they were (status_map too)

    before = path.read_bytes() if path.exists() else None
    edit_setup_file(path, change)
    try:
        load_config(path)
    except ConfigError as exc:  # put the file back as it was: a setup file that cannot be used stops everything
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
        fail(f"the answers make a setup file that cannot be used, so {path} is left as it was:\n{exc}", 2)
    console.print(f"Wrote {path}. Next: `cartstatus check`, `cartstatus test`, then `cartstatus controller`.",
                  highlight=False)
    sys.exit(0 if passed else 1)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(setup_command)
