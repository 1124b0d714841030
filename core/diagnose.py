"""``cartstatus diagnose ORDER``: which of the six rules stops an order's update, and how to fix it.

A built-in plugin: its command comes through ``register_commands`` as a third party's does.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import click
from rich.markup import escape

from .config import Config
from .engine import OrderError, StatusEngine
from .hookspecs import hookimpl
from .routing import route_for_store
from .stack import StackRecord
from .terminal import console, echo_json, fail

Status = Literal["pass", "fail", "wait", "skip"]

RULES = {
    1: "the cart takes updates (matrix and connector), or the store has an active OSS subscription",
    2: "UseStatusUpdates is TRUE",
    3: "a status event that sets the order's label has Notify Cart checked",
    4: "the order's label actually changed",
    5: "the record was queued on the stack and a stack controller is running",
    6: "the cart or OSS answered OK (no error left on the record)",
}


@dataclass(frozen=True)
class Check:
    rule: int
    status: Status
    detail: str
    fix: str | None = None

    @property
    def title(self) -> str:
        return RULES[self.rule]


@dataclass
class Diagnosis:
    order_number: str
    store: str
    label: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def failing(self) -> Check | None:
        return next((c for c in self.checks if c.status == "fail"), None)

    @property
    def summary(self) -> str:
        bad = self.failing
        if bad is not None:
            return f"Rule {bad.rule} fails: {bad.detail}." + (f" Fix: {bad.fix}." if bad.fix else "")
        waiting = next((c for c in self.checks if c.status == "wait"), None)
        if waiting is not None:
            return f"Nothing is wrong yet, but the update has not arrived: {waiting.detail}."
        return "All six rules hold: the update reached the cart or the OSS."

    def as_dict(self) -> dict[str, Any]:
        return {"order": self.order_number, "store": self.store, "label": self.label,
                "failing_rule": self.failing.rule if self.failing else None, "summary": self.summary,
                "checks": [{**asdict(c), "title": c.title} for c in self.checks]}


def _fix_for_route(reason: str) -> str:
    if "not in the shopping-cart matrix" in reason:
        return "set the store's cart: to a matrix key (`cartstatus matrix check NAME` finds it)"
    if "lapsed" in reason:
        return "renew the OSS subscription and update oss.subscription_expires in the setup file"
    if "OSS connector" in reason:
        return "install the OSS connector plugin"
    return "install a connector for the cart, or subscribe the store to the OSS (oss: in the setup file)"


def diagnose(config: Config, engine: StatusEngine, number: str, store: str | None = None,
             today: dt.date | None = None, now: float | None = None) -> Diagnosis:
    """Check the six rules for one order, in order; raises :class:`OrderError` for an unknown order."""
    now = time.time() if now is None else now
    order = engine.show_order(number, store)
    store_id, label = order["store"], order["status"]
    history = order["history"]
    records = [r for r in engine.stack.records(order_number=number) if r.store_id == store_id]
    # A reason quoted below is masked again: one stored by an older version may hold a secret.
    mask = config.secret_mask
    result = Diagnosis(number, store_id, label)
    checks = result.checks

    # Rule 1: the route the store's updates take now.
    st = config.stores.get(store_id)
    if st is None:
        checks.append(Check(1, "fail", f"store {store_id!r} is not in {config.path}",
                            "add the store (id, cart) to the setup file"))
    else:
        route = route_for_store(st, today, config.matrix_extra)
        if route.kind == "none":
            checks.append(Check(1, "fail", route.reason, _fix_for_route(route.reason)))
        else:
            checks.append(Check(1, "pass", route.reason))

    # Rule 2.
    if config.use_status_updates:
        checks.append(Check(2, "pass", "UseStatusUpdates is TRUE"))
    else:
        checks.append(Check(2, "fail", "UseStatusUpdates is FALSE, so status events change nothing",
                            "set system: {UseStatusUpdates: true} in the setup file"))

    # Rule 3: an event that sets the current label, with Notify Cart.
    setting = [e for e in config.status_events.values() if e.order_status == label]
    notifying = [e.event for e in setting if e.notify_cart]
    if label is None:
        checks.append(Check(3, "fail", "the order has no status label",
                            "fire a status event that sets a label (`cartstatus fire EVENT ORDER`)"))
    elif not setting:
        checks.append(Check(3, "fail", f"no status event sets the label {label!r}",
                            f"define a status event with order_status {label!r} and notify_cart: true"))
    elif not notifying:
        names = ", ".join(repr(e.event) for e in setting)
        checks.append(Check(3, "fail", f"status event {names} sets {label!r} but does not have Notify Cart checked",
                            f"set notify_cart: true on {names}, then fire it at an order whose label differs"))
    else:
        checks.append(Check(3, "pass", f"{', '.join(map(repr, notifying))} sets {label!r} with Notify Cart"))

    # Rule 4: the label change that should have sent the update.
    change = next((h for h in reversed(history)
                   if h["event"] is not None and h["to"] == label and h["from"] != h["to"]), None)
    if change is None:
        checks.append(Check(4, "fail", f"no status event changed the label to {label!r} (it was imported or set "
                                       "before); firing an event that sets the label the order already has "
                                       "queues nothing",
                            "fire a status event that changes the label (A to B)"))
    else:
        checks.append(Check(4, "pass", f"{change['event']!r} changed the label {change['from']!r} -> "
                                       f"{change['to']!r} at {change['at']}"))

    # Rule 5: queued, and a controller running while it is still on the stack.
    record: StackRecord | None = None
    if change is None:
        checks.append(Check(5, "skip", "no label change to look for on the stack"))
    elif change["idempotency_key"] is None:
        rule = {"internal": 3, "none": 1, "off": 2}.get(change["route"])
        because = f" (rule {rule} at the time)" if rule else ""
        checks.append(Check(5, "fail", f"nothing was queued for that change{because}: {mask(change['reason'])}",
                            "fix the cause above, then fire the event again at an order whose label differs"))
    else:
        record = next((r for r in records if r.idempotency_key == change["idempotency_key"]), None)
        status = engine.stack.status(now)
        running = status.controller_running
        if record is None:
            checks.append(Check(5, "pass", f"the record ({change['route']} to {change['destination']}) was queued and "
                                           "has left the stack"))
        elif record.parked:
            checks.append(Check(5, "pass", f"record #{record.id} was queued and tried {record.attempts} times"))
        elif not running:
            checks.append(Check(5, "fail", f"record #{record.id} is queued on the stack ({record.state(now)}) but "
                                           "no stack controller is running",
                                "start one with `cartstatus controller` (or check its heartbeat with "
                                "`cartstatus stack status`)"))
        else:
            ctl = status.controllers[0]
            checks.append(Check(5, "pass", f"record #{record.id} is on the stack ({record.state(now)}) and controller "
                                           f"{ctl['id']} is running (heartbeat {ctl['beat_age_seconds']}s ago)"))

    # Rule 6: the reply.
    if change is None or change["idempotency_key"] is None:
        checks.append(Check(6, "skip", "no record to look at"))
    elif record is None and (change["outcome"] or "").startswith("purged"):
        purged = mask(change["outcome"].removeprefix("purged: ")) or "no error recorded"
        checks.append(Check(6, "fail", f"never delivered: the record was parked and then purged ({purged})",
                            "fix the cause, then fire the event again (the label must change)"))
    elif record is None:
        when = f" at {change['settled_at']}" if change["settled_at"] else ""
        said = f"; the cart said: {mask(change['detail'])}" if change.get("detail") else ""
        checks.append(Check(6, "pass", f"delivered: {change['destination']} answered OK{when} and the record was "
                                       f"deleted from the stack{said}"))
    elif record.parked:
        checks.append(Check(6, "fail", f"record #{record.id} is parked after a permanent failure: "
                                       f"{mask(record.last_error or '')}",
                            f"fix the cause, then `cartstatus stack retry {record.id}`"))
    elif record.last_error:
        checks.append(Check(6, "wait", f"record #{record.id} will be retried; last error: {mask(record.last_error)}"))
    else:
        checks.append(Check(6, "wait", f"record #{record.id} has not been answered yet ({record.state(now)})"))
    return result


class _Obj(Protocol):
    """What the ``cartstatus`` command hands its commands (``cartstatus.cli.Context``)."""

    @property
    def config(self) -> Config: ...

    @property
    def engine(self) -> StatusEngine: ...


@click.command("diagnose")
@click.argument("order")
@click.option("--store", help="The store, when the order number is in several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def diagnose_command(obj: _Obj, order: str, store: str | None, as_json: bool) -> None:
    """Check the six status-update rules for ORDER; say which one fails and how to fix it.

    Exit status: 0 nothing fails, 1 a rule fails, 2 the order is unknown.
    """
    try:
        found = diagnose(obj.config, obj.engine, order, store)
    except OrderError as exc:
        fail(str(exc), 2)
    if as_json:
        echo_json(found.as_dict())
    else:
        console.print(f"order [bold]{escape(found.order_number)}[/] (store {escape(found.store)}), label "
                      f"{escape(found.label or '(none)')}", highlight=False)
        marks = {"pass": "[green]ok  [/]", "fail": "[red]FAIL[/]", "wait": "[yellow]wait[/]", "skip": "[dim]-   [/]"}
        for c in found.checks:
            console.print(f" {marks[c.status]} rule {c.rule}: {c.title}: {escape(c.detail)}", highlight=False)
            if c.fix and c.status == "fail":
                console.print(f"      fix: {c.fix}", markup=False, highlight=False)
        console.print(found.summary, markup=False, highlight=False)
    sys.exit(1 if found.failing else 0)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(diagnose_command)
