"""The engine: firing status events at orders (rules 2 to 4); the orders themselves are in :mod:`.orders`."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from .config import Config, Store
from .connector import StatusUpdate, Tracking
from .events import match_event
from .orders import CONTROL, Order, OrderError, Orders, column_limit, read_orders_csv, text_problem
from .plugins import pm
from .routing import Route, route_for_store
from .stack import PayloadTemplate, Stack, new_keys
from .storage import open_database, orders, transaction
from .times import iso_utc

#: What fire sends along, limited as the OSS wire format limits it (the strictest destination).
NOTE_MAX, CARRIER_MAX, TRACKING_NUMBER_MAX, TRACKINGS_MAX = 2000, 40, 64, 50


def _fire_problems(numbers: Sequence[str], tracking: Sequence[Tracking], note: str | None,
                   store: str | None) -> Iterable[str]:
    """What fire refuses to store or send: control characters and over-long values, by field."""
    number_limit = column_limit(orders.c.order_number)
    # One regex pass over every number (a bulk fire has thousands); the loop only to name the bad one.
    if CONTROL.search("\t".join(numbers)) or max(map(len, numbers), default=0) > (number_limit or 0):
        for i, number in enumerate(numbers, 1):
            problem = text_problem(number, number_limit)
            if problem:
                yield f"order number {i} ({number[:20]!r}{'...' if len(number) > 20 else ''}): {problem}"
                break
    if store is not None:
        problem = text_problem(store, column_limit(orders.c.store_id))
        if problem:
            yield f"store: {problem}"
    if note is not None:
        problem = text_problem(note, NOTE_MAX)
        if problem:
            yield f"note: {problem}"
    if len(tracking) > TRACKINGS_MAX:
        yield f"tracking: {len(tracking)} tracking numbers, more than the {TRACKINGS_MAX} an update may carry"
    for i, t in enumerate(tracking, 1):
        for part, value, limit in (("carrier", t.carrier, CARRIER_MAX), ("number", t.number, TRACKING_NUMBER_MAX)):
            problem = text_problem(value, limit)
            if problem:
                yield f"tracking {i} {part}: {problem}"


@dataclass(frozen=True, init=False)
class FireResult:
    """What firing one event did to one order."""

    order_number: str
    store_id: str | None
    changed: bool
    from_status: str | None
    to_status: str | None
    route: str  # native | oss | none | internal | unchanged | off | undefined | unknown
    destination: str | None
    idempotency_key: str | None
    reason: str

    def __init__(self, order_number: str, store_id: str | None, changed: bool, from_status: str | None,
                 to_status: str | None, route: str, destination: str | None, idempotency_key: str | None,
                 reason: str) -> None:
        # One dict update instead of the frozen dataclass's object.__setattr__
        # per field: a bulk fire makes one result per order (bench/enqueue.py).
        self.__dict__.update(order_number=order_number, store_id=store_id, changed=changed,
                             from_status=from_status, to_status=to_status, route=route,
                             destination=destination, idempotency_key=idempotency_key, reason=reason)

    @property
    def queued(self) -> bool:
        return self.idempotency_key is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StatusEngine:
    """Fires status events against orders and writes label, history and stack record together."""

    def __init__(
        self,
        config: Config,
        engine: Engine | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.config = config
        self.db = engine if engine is not None else open_database(config.stack_url)
        self.stack = Stack(self.db)
        self.orders = Orders(self.db)
        self.today = today
        self._routes: dict[tuple[int, dt.date], tuple[Store, tuple[Any, ...], Route]] = {}

    # -- orders ------------------------------------------------------------

    def import_orders(self, path: str | Path) -> int:
        """Import orders from CSV; a bad row stops the whole file (:class:`~cartstatus.orders.OrderImportError`),
        nothing is written."""
        rows = read_orders_csv(path, self.config)
        self.orders.upsert(rows)
        return len(rows)

    def upsert_orders(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add or update orders (``order_number, store, status, cart_order_ref, email, zip``)."""
        self.orders.upsert(rows)

    def find_order(self, number: str, store: str | None = None) -> Order:
        """The order numbered ``number`` (in ``store``); :class:`OrderError` when it is not known, or is in
        several stores and ``store`` is not given."""
        with transaction(self.db) as cur:
            found = self.orders.locate(cur, [number], store).get(number)
        if found is None:
            raise OrderError(f"order {number} is not known" + (f" in store {store}" if store else ""))
        return Order._make(found)

    def _route_inputs(self) -> tuple[Any, ...] | None:
        """What a route depends on besides the store and the day; None when it cannot be told."""
        extra = self.config.matrix_extra
        try:
            stamp = None if extra is None else (str(extra), os.stat(extra).st_mtime_ns, os.stat(extra).st_size)
        except OSError:
            return None
        return (tuple(pm.hook.register_connectors.get_hookimpls()),
                tuple(pm.hook.register_matrix_rows.get_hookimpls()), stamp)

    def _route(self, store: Store, today: dt.date) -> Route:
        """route_for_store, remembered while the store, the day, the plugins and the extra matrix file stay.

        Loading the matrix takes longer than the rest of a single fire.
        """
        inputs = self._route_inputs()
        cached = self._routes.get((id(store), today))
        if inputs is not None and cached is not None and cached[0] is store and cached[1] == inputs:
            return cached[2]
        route = route_for_store(store, today, self.config.matrix_extra)
        # Loading plugins (on the first call) changes the hooks' implementations: key on what follows.
        after = self._route_inputs()
        if after is not None:
            self._routes[(id(store), today)] = (store, after, route)
        return route

    # -- firing ------------------------------------------------------------

    def fire_event(self, order: str, event: str, *, tracking: Sequence[Tracking | str] = (),
                   note: str | None = None, store: str | None = None) -> FireResult:
        """Fire ``event`` at one order; see :meth:`fire`."""
        return self.fire(event, [order], tracking=tracking, note=note, store=store)[0]

    def fire(self, event: str, order_numbers: Sequence[str], *, tracking: Sequence[Tracking | str] = (),
             note: str | None = None, store: str | None = None,
             progress: Callable[[int], None] | None = None) -> list[FireResult]:
        """Fire ``event`` at many orders in one transaction.

        Rule 2: nothing changes unless ``UseStatusUpdates`` is true. Rule 3: an
        update is queued only when the event is defined with Notify Cart. Rule 4:
        only a label that actually changes is written and queued. Rule 1: the
        route (cart, OSS, none) is decided per store. Label, history and stack
        record are written in the same transaction.
        """
        tracks = tuple(t if isinstance(t, Tracking) else Tracking.parse(t) for t in tracking)
        refused = list(_fire_problems(order_numbers, tracks, note, store))
        if refused:
            raise ValueError(f"nothing fired: {'; '.join(refused)}")
        cfg = self.config
        known = match_event(event) or match_event(event, [e.event for e in cfg.status_events.values() if e.custom])
        if known is None:
            raise ValueError(f"{event!r} is not a known status event nor one of the setup file's own "
                             "(see `cartstatus events list`)")
        if not cfg.use_status_updates:
            return [FireResult(n, store, False, None, None, "off", None, None,
                               "UseStatusUpdates is FALSE: status events change nothing (rule 2)")
                    for n in order_numbers]
        definition = cfg.status_events.get(known)
        if definition is None:
            return [FireResult(n, store, False, None, None, "undefined", None, None,
                               f"no status event {known!r} is defined in {cfg.path} (rule 3)")
                    for n in order_numbers]
        label = definition.order_status
        now = time.time()
        occurred = iso_utc(now)
        results: list[FireResult] = []
        append = results.append
        # Rows as tuples in the statements' column order (storage.Prepared.executemany_rows).
        relabelled: list[int] = []  # every changed order gets the same label: one UPDATE
        history: list[tuple[Any, ...]] = []
        records: list[tuple[Any, ...]] = []
        # Per store: the route kind, reason and destination, and the payload
        # every update of this call to the store shares (None: nothing queued).
        plans: dict[str, tuple[str, str, str | None, PayloadTemplate | None]] = {}
        keys = iter(new_keys(len(order_numbers)) if definition.notify_cart else ())
        unchanged = f"label is already {label!r}: nothing changed, nothing queued (rule 4)"
        today = self.today()
        # One durable transaction on the DB-API cursor: the hot path of every
        # event fired (see storage.Prepared for why not conn.execute).
        with transaction(self.db) as cur:
            found = self.orders.locate(cur, order_numbers, store)
            changed: set[str] = set()  # a number given twice changes only once (rule 4)
            for done, number in enumerate(order_numbers, 1):
                row = found.get(number)
                if row is None:
                    append(FireResult(number, store, False, None, None, "unknown", None, None,
                                      f"order {number} is not known (import it first)"))
                    continue
                oid, sid, _, before, cart_order_ref, email, zip_ = row
                if number in changed:
                    before = label
                if before == label:
                    append(FireResult(number, sid, False, before, label, "unchanged", None, None, unchanged))
                    continue
                changed.add(number)
                relabelled.append(oid)
                plan = plans.get(sid)
                if plan is None:
                    plan = plans[sid] = self._plan(sid, known, definition.notify_cart, label, occurred, tracks,
                                                   note, today)
                kind, reason, destination, template = plan
                key = None
                if template is not None:
                    key = next(keys)
                    records.append((key, sid, number, destination or "",
                                    template.render(key, number, cart_order_ref, before, email, zip_),
                                    now, 0, now, False))
                history.append((oid, now, known, before, label, kind, destination, key, reason))
                append(FireResult(number, sid, True, before, label, kind, destination, key, reason))
                if progress is not None and done % 1000 == 0:
                    progress(done)
            self.orders.relabel(cur, relabelled, label, now)
            self.orders.add_history(cur, history)
            self.stack.enqueue_values(cur, records)
        if records:  # committed: a controller of this process sends them at once (others: Stack.notifications)
            self.stack.announce()
        return results

    def _plan(self, store_id: str, event: str, notify_cart: bool, label: str, occurred: str,
              tracking: tuple[Tracking, ...], note: str | None,
              today: dt.date) -> tuple[str, str, str | None, PayloadTemplate | None]:
        """What one fire call does for the changed orders of one store (rules 1 and 3)."""
        if not notify_cart:
            return "internal", f"{event!r} does not have Notify Cart checked: internal only (rule 3)", None, None
        st = self.config.stores.get(store_id)
        if st is None:
            return "none", f"store {store_id!r} is not in the setup file: nothing queued", None, None
        route = self._route(st, today)
        if route.kind == "none":
            return route.kind, route.reason, route.connector, None
        # Built by StatusUpdate itself; each order fills in only its own fields.
        template = PayloadTemplate(StatusUpdate(
            idempotency_key="", store_id=st.id, order_number="", cart_order_ref="", status=label,
            cart_status=st.cart_status(label), previous_status=None, event=event, occurred_at=occurred,
            tracking=tracking, note=note))
        return route.kind, route.reason, route.connector, template

    # -- reading -----------------------------------------------------------

    def show_order(self, number: str, store: str | None = None) -> dict[str, Any]:
        """The order's label, its history and any update still on the stack."""
        order = self.find_order(number, store)
        history = self.orders.history(order.id)
        pending = self.stack.records(order_number=order.order_number, store_id=order.store_id)
        now = time.time()
        return {
            "order_number": order.order_number,
            "store": order.store_id,
            "status": order.status,
            "cart_order_ref": order.cart_order_ref,
            "history": [{"at": iso_utc(h.at), "event": h.event, "from": h.from_status, "to": h.to_status,
                         "route": h.route, "destination": h.destination, "reason": h.reason,
                         "idempotency_key": h.idempotency_key,
                         "outcome": h.outcome, "detail": h.detail, "link": h.link,
                         "settled_at": iso_utc(h.settled_at) if h.settled_at else None}
                        for h in history],
            "pending": [p.as_dict(now) for p in pending],
            # The newest page about the order a destination answered with (the OSS's status page).
            "status_url": next((h.link for h in reversed(history) if h.link), None),
        }
