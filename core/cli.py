"""The ``cartstatus`` command.

The commands of this module are the core's; ``matrix``, ``diagnose``,
``plugins`` and ``new-connector`` come from built-in plugins through the
``register_commands`` hook, as a third-party plugin's commands do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from alembic.util.exc import CommandError as AlembicError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import plugins
from .config import Config, ConfigError, StatusEvent, config_path, write_status_events
from .connector import Tracking
from .controller import StackController
from .engine import OrderError, StatusEngine
from .events import DEFAULT_STATUS_EVENTS, KNOWN_EVENTS
from .orders import OrderImportError
from .routing import cart_problems, load_config
from .secrets import masked_logs
from .stack import Stack
from .terminal import console, echo_json, err_console, fail

#: Above this many orders, ``fire`` shows a progress bar.
PROGRESS_THRESHOLD = 2000


class Context:
    def __init__(self, config_option: str | None) -> None:
        self.config_option = config_option
        self._config: Config | None = None
        self._engine: StatusEngine | None = None

    @property
    def path(self) -> Path:
        return config_path(self.config_option)

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_option)
            except ConfigError as exc:
                fail(f"the setup file cannot be used:\n{exc}", 2)
        return self._config

    @property
    def engine(self) -> StatusEngine:
        """The engine on the stack database; a database that cannot be opened is a one-line error."""
        if self._engine is None:
            config = self.config
            try:
                self._engine = StatusEngine(config)
            except (sa.exc.SQLAlchemyError, AlembicError) as exc:
                fail(_database_failure(config, exc), 2)
        return self._engine


def _database_failure(config: Config, exc: BaseException, lead: str = "cannot open the stack database") -> str:
    """One line: which database (password masked), what went wrong, what to do."""
    url = sa.engine.make_url(config.stack_url)
    shown = url.render_as_string(hide_password=True)
    orig = getattr(exc, "orig", None) or exc
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0].strip()
    if url.password:
        reason = reason.replace(str(url.password), "***")
    where = f"stack.url in {config.path}"
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        file = Path(url.database)
        if not file.parent.is_dir():
            hint = f"the folder {file.parent} does not exist: create it, or change {where}"
        elif "not a database" in reason:
            hint = (f"{file} is not a SQLite database: point {where} at a stack file "
                    "(a missing one is created)")
        else:
            hint = f"check that {file} and its folder can be read and written, or change {where}"
    elif isinstance(exc, sa.exc.OperationalError):
        hint = f"is the database server running and reachable? Check the host, port, user and password in {where}"
    elif isinstance(exc, AlembicError):
        hint = f"the stack was made by another cartstatus version: upgrade cartstatus, or change {where}"
    else:
        hint = f"check {where}"
    return f"{lead} {shown}: {reason}; {hint}"


class _Main(click.Group):
    """The ``cartstatus`` group: the plugins' commands with its own; a database lost in the middle of a
    command is one line too, not a traceback."""

    _own: dict[str, click.Command] | None = None
    _plugins: tuple[tuple[str, int], ...] | None = None

    def _with_plugin_commands(self) -> None:
        """Let the plugins add their commands, again whenever the plugins change (tests install some)."""
        current = plugins.plugin_set()
        if current != self._plugins:
            if self._own is None:
                self._own = dict(self.commands)
            self.commands = dict(self._own)
            plugins.add_commands(self)
            self._plugins = current

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._with_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._with_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except sa.exc.OperationalError as exc:
            obj = ctx.obj
            if not isinstance(obj, Context) or obj._config is None:
                raise
            fail(_database_failure(obj._config, exc, "lost the stack database"), 2)


pass_ctx = click.make_pass_decorator(Context)


#: Fields of a shown record that carry a reason: a cart's words, which may echo a secret.
_REASON_FIELDS = frozenset({"last_error", "reason", "outcome", "detail"})


def masked_reasons(data: Any, mask: Callable[[str], str]) -> Any:
    """``data`` with every reason field masked, again: a reason stored by an older version may not be."""
    if isinstance(data, dict):
        return {k: mask(v) if k in _REASON_FIELDS and isinstance(v, str) else masked_reasons(v, mask)
                for k, v in data.items()}
    if isinstance(data, list):
        return [masked_reasons(v, mask) for v in data]
    return data


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(dt.timedelta(seconds=int(seconds)))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_option", metavar="PATH", envvar="CARTSTATUS_CONFIG",
              help="The setup file (default ./cartstatus.yaml; env CARTSTATUS_CONFIG).")
@click.version_option(package_name="cartstatus")
@click.pass_context
def main(ctx: click.Context, config_option: str | None) -> None:
    """Carry order status changes to shopping carts or the hosted Order Status System."""
    ctx.obj = Context(config_option)


# -- setup -------------------------------------------------------------------

@main.command("check")
@pass_ctx
def check(ctx: Context) -> None:
    """Check the setup file and say what it holds."""
    cfg = ctx.config
    problems = cart_problems(cfg)
    if problems:
        fail(f"the setup file cannot be used:\n{ConfigError(problems)}", 2)
    console.print(f"{cfg.path}: OK. UseStatusUpdates={cfg.use_status_updates}, "
                  f"{len(cfg.status_events)} status events, {len(cfg.stores)} stores.", markup=False)


@main.group()
def events() -> None:
    """Status events: the known ones and the ones defined in the setup file."""


@events.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def events_list(ctx: Context, as_json: bool) -> None:
    """List every status event, known or the merchant's own, and how the setup file defines it."""
    defined: dict[str, StatusEvent] = {}
    if ctx.path.exists():
        defined = ctx.config.status_events
    own = [e for e in defined if defined[e].custom]
    rows: list[dict[str, Any]] = [{"event": e, "kind": "merchant-defined" if e in own else "known",
                                   "defined": e in defined,
                                   "order_status": defined[e].order_status if e in defined else None,
                                   "notify_cart": defined[e].notify_cart if e in defined else None}
                                  for e in [*KNOWN_EVENTS, *own]]
    if as_json:
        echo_json(rows)
        return
    table = Table("event", "kind", "sets label", "Notify Cart", title="status events")
    for r in rows:
        table.add_row(escape(r["event"]), r["kind"],
                      escape(r["order_status"]) if r["order_status"] else "[dim](not defined)[/]",
                      "" if r["notify_cart"] is None else ("yes" if r["notify_cart"] else "no"))
    console.print(table)


@events.command("load-defaults")
@click.option("--force", is_flag=True, help="Replace status events already defined.")
@pass_ctx
def events_load_defaults(ctx: Context, force: bool) -> None:
    """Write the default status events into the setup file (Load Default Status Events)."""
    path = ctx.path
    if path.exists():
        existing = ctx.config.status_events
        if existing and not force:
            fail(f"{path} already defines {len(existing)} status events; pass --force to replace them")
    write_status_events(path, [StatusEvent(e, label, notify) for e, label, notify in DEFAULT_STATUS_EVENTS])
    console.print(f"wrote {len(DEFAULT_STATUS_EVENTS)} default status events to {path}", markup=False)


# -- orders ------------------------------------------------------------------

@main.group()
def orders() -> None:
    """Orders: import them, look one up."""


@orders.command("import")
@click.argument("file", type=click.Path(path_type=Path))  # a directory etc.: the import's own one-line error
@pass_ctx
def orders_import(ctx: Context, file: Path) -> None:
    """Import orders from a CSV file (order_number,store,status,cart_order_ref,email,zip).

    A bad row stops the import: nothing from the file is written.
    """
    try:
        count = ctx.engine.import_orders(file)
    except OrderImportError as exc:
        fail(f"nothing imported:\n{exc}", 2)
    console.print(f"imported {count} orders from {file}", markup=False)


@orders.command("show")
@click.argument("order")
@click.option("--store", help="The store, when the order number is in several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def orders_show(ctx: Context, order: str, store: str | None, as_json: bool) -> None:
    """Show an order's label, its history and any update still pending."""
    try:
        info = masked_reasons(ctx.engine.show_order(order, store), ctx.config.secret_mask)
    except OrderError as exc:
        fail(str(exc), 1)
    if as_json:
        echo_json(info)
        return
    console.print(f"order [bold]{escape(info['order_number'])}[/] (store {escape(info['store'])}, cart ref "
                  f"{escape(info['cart_order_ref'])}): [bold]{escape(info['status'] or '(no label)')}[/]")
    table = Table("when", "event", "from", "to", "route", "why", "what became of it", title="history")
    for h in info["history"]:
        became = "; ".join(v for v in (h["outcome"], h["detail"]) if v)
        table.add_row(*(escape(h[k] or "") for k in ("at", "event", "from", "to", "route", "reason")), escape(became))
    console.print(table)
    if info["status_url"]:
        console.print(f"status page: {info['status_url']}", markup=False, highlight=False, soft_wrap=True)
    if info["pending"]:
        for p in info["pending"]:
            error = f" - {p['last_error']}" if p["last_error"] else ""
            console.print(f"pending update #{p['id']} to {p['destination']}: {p['status']} "
                          f"({p['state']}, {p['attempts']} attempts){error}", markup=False)
    else:
        console.print("no update pending on the stack")


@main.command("fire")
@click.argument("event")
@click.argument("order_numbers", nargs=-1, required=True, metavar="ORDER [ORDER ...]")
@click.option("--store", help="The store, when an order number is in several.")
@click.option("--tracking", multiple=True, metavar="CARRIER:NUMBER", help="A tracking number; may repeat.")
@click.option("--note", help="A note sent with the update.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per order.")
@pass_ctx
def fire(ctx: Context, event: str, order_numbers: tuple[str, ...], store: str | None,
         tracking: tuple[str, ...], note: str | None, as_json: bool) -> None:
    """Fire a status EVENT at one or many orders (one transaction)."""
    try:
        tracks = [Tracking.parse(t) for t in tracking]
    except ValueError as exc:
        fail(f"--tracking: {exc}", 2)
    engine = ctx.engine
    try:
        if len(order_numbers) >= PROGRESS_THRESHOLD and not as_json:
            with _progress() as bar:
                task = bar.add_task("firing", total=len(order_numbers))
                results = engine.fire(event, order_numbers, tracking=tracks, note=note, store=store,
                                      progress=lambda n: bar.update(task, completed=n))
                bar.update(task, completed=len(order_numbers))
        else:
            results = engine.fire(event, order_numbers, tracking=tracks, note=note, store=store)
    except (ValueError, OrderError) as exc:
        fail(str(exc), 2)
    if as_json:
        echo_json([r.as_dict() for r in results])
        return
    queued = sum(r.queued for r in results)
    changed = sum(r.changed for r in results)
    if len(results) <= 20:
        for r in results:
            mark = "[green]queued[/]" if r.queued else ("[yellow]changed[/]" if r.changed else "[dim]no change[/]")
            console.print(f"{escape(r.order_number)}: {mark} {escape(r.from_status or '-')} -> "
                          f"{escape(r.to_status or '-')}: {escape(r.reason)}", highlight=False)
    console.print(f"{len(results)} orders: {changed} changed, {queued} updates queued on the stack")
    if any(r.route == "unknown" for r in results):
        sys.exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


# -- the stack ---------------------------------------------------------------

@main.group("stack")
def stack_group() -> None:
    """The stack of update records: status, list, retry, purge."""


def _stack(ctx: Context) -> Stack:
    return ctx.engine.stack


@stack_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def stack_status(ctx: Context, as_json: bool) -> None:
    """What Ctrl-Shift-S answered: records queued, controller running, oldest age, failures."""
    st = _stack(ctx).status()
    if as_json:
        echo_json(masked_reasons(st.as_dict(), ctx.config.secret_mask))
        return
    console.print(f"{st.records} records on the stack ({st.queued} queued, {st.waiting} waiting to retry, "
                  f"{st.in_flight} in flight, {st.parked} failed and parked)")
    if st.controller_running:
        for c in st.controllers:
            console.print(f"stack controller running: {c['mode']} on {c['host']} pid {c['pid']} "
                          f"(heartbeat {c['beat_age_seconds']}s ago, {c['delivered']} delivered)", markup=False)
    else:
        console.print("[yellow]no stack controller is running[/]: start one with `cartstatus controller`")
    console.print(f"oldest record: {_age(st.oldest_age_seconds)} old")
    if st.destinations:
        table = Table("store", "to", "waiting to go", "oldest", "in flight", "retrying", "parked")
        for d in st.destinations:
            states = d["states"]
            table.add_row(escape(d["store"]), escape(d["destination"]), str(d["depth"]),
                          _age(d["oldest_age_seconds"]), str(states.get("in flight", 0)),
                          str(states.get("waiting", 0)), str(states.get("parked", 0)))
        console.print(table)
    mask = ctx.config.secret_mask
    for c in st.circuits:
        console.print(f"[red]circuit {c['state']}[/]: store {escape(str(c['store']))} ({escape(str(c['destination']))})"
                      f" after {c['failures']} failures in a row, probed every {c['pause_seconds']:g} s by "
                      f"{escape(str(c['controller']))}: {escape(mask(str(c['last_error'] or '')))}")
    if st.parked:
        console.print(f"[red]{st.parked} failures[/]: see `cartstatus stack list --state parked`")


@stack_group.command("list")
@click.option("--state", type=click.Choice(["queued", "waiting", "in flight", "parked"]), multiple=True,
              help="Only records in this state; may repeat.")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many records.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def stack_list(ctx: Context, state: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List queued, waiting and parked records with attempts and last error."""
    now = time.time()
    records = _stack(ctx).records(states=state or None, limit=limit)
    mask = ctx.config.secret_mask
    if as_json:
        echo_json(masked_reasons([r.as_dict(now) for r in records], mask))
        return
    table = Table("id", "store", "order", "status", "to", "state", "attempts", "age", "last error")
    for r in records:
        table.add_row(str(r.id), *map(escape, (r.store_id, r.order_number, r.update.status, r.destination)),
                      r.state(now), str(r.attempts), _age(now - r.created_at), escape(mask(r.last_error or "")))
    console.print(table)
    if not records:
        console.print("the stack is empty" if not state else "no records in that state")


@stack_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Retry every parked record.")
@click.option("--force", is_flag=True,
              help="Also retry records a later update of the same order would overtake "
                   "(the cart could end on an older status).")
@pass_ctx
def stack_retry(ctx: Context, ids: tuple[int, ...], all_failed: bool, force: bool) -> None:
    """Put parked records back in the queue: by ID, or --all-failed.

    A parked record is not retried (unless --force) while a later update of the
    same order is on the stack (queued, waiting, in flight, or parked and not
    retried with it) or was delivered: sent now, it would land after the newer
    status. Records retried together go out oldest first.
    """
    if bool(ids) == all_failed:
        fail("give record IDs or --all-failed (not both)", 2)
    stack = _stack(ctx)
    result = stack.retry(None if all_failed else list(ids), force=force)
    console.print(f"{len(result.retried)} parked records queued again")
    if result.refused:
        console.print(f"[yellow]not retried[/]: {', '.join(map(str, result.refused))} - a later update of the same "
                      "order is on the stack or was delivered, so sending these now would put an older status "
                      "on the cart after a newer one; retry them together with the later ones, purge them "
                      "(`cartstatus stack purge-failed`) or pass --force")
    unknown = sorted(set(ids) - set(result.retried) - set(result.refused))
    if unknown:
        fail(f"not parked records: {', '.join(map(str, unknown))} (see `cartstatus stack list --state parked`)", 1)


@stack_group.command("purge-failed")
@click.option("--yes", is_flag=True, help="Do not ask.")
@pass_ctx
def stack_purge_failed(ctx: Context, yes: bool) -> None:
    """Delete every parked record (their updates will never be sent)."""
    stack = _stack(ctx)
    parked = stack.status().parked
    if parked and not yes:
        click.confirm(f"delete {parked} parked records? Their updates will never be sent", abort=True)
    console.print(f"{stack.purge_failed()} parked records deleted")


# -- the controller ----------------------------------------------------------

@main.command("controller")
@click.option("--drain", is_flag=True, help="Exit once every record is delivered or parked.")
@click.option("--mode", type=click.Choice(["local", "shared", "external"]), default="local", show_default=True,
              help="How this controller relates to the stack (for status reports).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve Prometheus metrics on http://HOST:PORT/metrics (0: a free port, shown at start).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="The address the metrics are served on.")
@pass_ctx
def controller(ctx: Context, drain: bool, mode: str, metrics_port: int | None, metrics_host: str) -> None:
    """Run the stack controller until stopped (Ctrl-C), or with --drain until done."""
    engine = ctx.engine
    ctl = StackController(ctx.config, engine.stack, mode=mode)
    stop_metrics = None
    if metrics_port is not None:
        try:
            stop_metrics = ctl.metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}", 2)
        err_console.print(f"metrics on http://{metrics_host}:{ctl.metrics.port}/metrics", markup=False)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, ctl.stop)
        if drain:
            total = engine.stack.status()
            with _progress() as bar:
                task = bar.add_task("delivering", total=total.records - total.parked)

                def progress(stats: Any, remaining: int) -> None:
                    bar.update(task, completed=stats.delivered + stats.parked,
                               total=stats.delivered + stats.parked + remaining)
                stats = await ctl.run(drain=True, progress=progress)
        else:
            err_console.print(f"stack controller {ctl.worker_id} running ({mode}); Ctrl-C stops it", markup=False)
            stats = await ctl.run()
        console.print(f"delivered {stats.delivered}, rescheduled {stats.rescheduled}, parked {stats.parked}")

    try:
        with masked_logs(ctx.config.secret_mask):  # a reason in a log line, a connector's traceback
            asyncio.run(run())
    finally:
        if stop_metrics is not None:
            stop_metrics()
    st = engine.stack.status()
    if drain and st.parked:
        console.print(f"[red]{st.parked} records parked[/]: see `cartstatus stack list --state parked`")
        sys.exit(1)
