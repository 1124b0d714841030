"""The engine: orders, their status labels, and firing status events (rules 2 to 4)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ClauseElement

from .config import Config, Problem, Store
from .connector import StatusUpdate, Tracking
from .events import match_event
from .plugins import pm
from .routing import Route, route_for_store
from .stack import Stack, new_keys, payload_row
from .storage import open_database, order_history, orders, prepared, stack, transaction

CSV_HEADER = ["order_number", "store", "status", "cart_order_ref", "email", "zip"]
_CHUNK = 500
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ZIP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,18}[A-Za-z0-9]$")
_ORDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./#-]{0,63}$")


class OrderError(LookupError):
    """An order that cannot be found, or is ambiguous."""


class ImportError_(ValueError):
    """A CSV file that cannot be imported; nothing from it was."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
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

    @property
    def queued(self) -> bool:
        return self.idempotency_key is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Order(NamedTuple):
    id: int
    store_id: str
    order_number: str
    status: str | None
    cart_order_ref: str
    email: str | None
    zip: str | None


_ORDER_COLUMNS = (orders.c.id, orders.c.store_id, orders.c.order_number, orders.c.status,
                  orders.c.cart_order_ref, orders.c.email, orders.c.zip)
_HISTORY_COLUMNS = ("order_id", "at", "event", "from_status", "to_status", "route", "destination",
                    "idempotency_key", "reason")


def _locate_query(size: int, by_store: bool) -> ClauseElement:
    """Orders by ``size`` numbers (``n0``..), in one store (``store``) or all."""
    query = sa.select(*_ORDER_COLUMNS).where(orders.c.order_number.in_([sa.bindparam(f"n{i}")
                                                                         for i in range(size)]))
    if by_store:
        query = query.where(orders.c.store_id == sa.bindparam("store"))
    return query


def _label_update() -> ClauseElement:
    return orders.update().where(orders.c.id == sa.bindparam("oid")).values(
        status=sa.bindparam("status"), updated_at=sa.bindparam("at"))


def _history_insert() -> ClauseElement:
    return order_history.insert().values({c: sa.bindparam(c) for c in _HISTORY_COLUMNS})


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StatusEngine:
    """Fires status events against orders and writes label, history and stack record together."""

    def __init__(
        self,
        config: Config,
        engine: Engine | None = None,
        on_enqueue: Callable[[], None] | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.config = config
        self.db = engine if engine is not None else open_database(config.stack_url)
        self.stack = Stack(self.db)
        self.on_enqueue = on_enqueue
        self.today = today
        self._routes: dict[tuple[int, dt.date], tuple[Store, tuple[Any, ...], Route]] = {}

    # -- orders ------------------------------------------------------------

    def import_orders(self, path: str | Path) -> int:
        """Import orders from CSV; a bad row stops the whole file, nothing is written."""
        p = Path(path)
        try:
            data = p.read_bytes()
            text = data.decode("utf-8-sig")
        except FileNotFoundError:
            raise ImportError_([Problem(p, None, "(file)", "no such file")]) from None
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1  # the line of the first bad byte
            raise ImportError_([Problem(p, line, "(file)",
                                        f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")]) from None
        rows = self._parse_csv(p, text)
        self.upsert_orders(rows)
        return len(rows)

    def _parse_csv(self, p: Path, text: str) -> list[dict[str, Any]]:
        problems: list[Problem] = []
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            raise ImportError_([Problem(p, 1, "(header)",
                                        f"the file is empty; expected the header {','.join(CSV_HEADER)}")])
        if [h.strip() for h in header] != CSV_HEADER:
            raise ImportError_([Problem(p, 1, "(header)",
                                        f"expected the header {','.join(CSV_HEADER)}, found {','.join(header)}")])
        seen: dict[tuple[str, str], int] = {}
        rows = []
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(CSV_HEADER):
                problems.append(Problem(p, line, "(row)",
                                        f"{len(fields)} fields, expected {len(CSV_HEADER)} ({','.join(CSV_HEADER)})"))
                continue
            row = dict(zip(CSV_HEADER, (f.strip() for f in fields), strict=True))
            problems.extend(self._row_problems(p, line, row))
            key = (row["store"], row["order_number"])
            if key in seen:
                problems.append(Problem(p, line, "order_number", f"order {row['order_number']} of store "
                                        f"{row['store']} is already on line {seen[key]}"))
            seen[key] = line
            rows.append(row)
            if len(problems) >= 20:
                break
        if problems:
            raise ImportError_(problems)
        return rows

    def _row_problems(self, p: Path, line: int, row: dict[str, str]) -> Iterable[Problem]:
        if not _ORDER.match(row["order_number"]):
            yield Problem(p, line, "order_number",
                          f"{row['order_number']!r} is not an order number: expected 1-64 letters, digits or _./#-")
        if row["store"] not in self.config.stores:
            known = ", ".join(self.config.stores) or "none (add stores to the setup file)"
            yield Problem(p, line, "store", f"{row['store']!r} is not a store in {self.config.path}; known: {known}")
        if len(row["status"]) > 100:
            yield Problem(p, line, "status", "longer than 100 characters")
        if not row["cart_order_ref"]:
            yield Problem(p, line, "cart_order_ref", "empty: give the cart's own order number")
        elif not _ORDER.match(row["cart_order_ref"]):
            yield Problem(p, line, "cart_order_ref", "expected 1-64 letters, digits or _./#-")
        if row["email"] and not _EMAIL.match(row["email"]):
            yield Problem(p, line, "email", f"{row['email']!r} is not an email address")
        if row["zip"] and not _ZIP.match(row["zip"]):
            yield Problem(p, line, "zip", f"{row['zip']!r} is not a ZIP or postal code")

    def upsert_orders(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add or update orders (``order_number, store, status, cart_order_ref, email, zip``)."""
        now = time.time()
        with self.db.begin() as conn:
            existing = self._find(conn, [(r["store"], r["order_number"]) for r in rows])
            inserts, updates, history = [], [], []
            for r in rows:
                values = {"cart_order_ref": r["cart_order_ref"], "email": r.get("email") or None,
                          "zip": r.get("zip") or None, "updated_at": now}
                status = r.get("status") or None
                found = existing.get((r["store"], r["order_number"]))
                if found is None:
                    inserts.append({"store_id": r["store"], "order_number": r["order_number"],
                                    "status": status, **values})
                else:
                    updates.append({"oid": found.id, "status": status if status else found.status, **values})
            if inserts:
                conn.execute(orders.insert(), inserts)
            if updates:
                conn.execute(orders.update().where(orders.c.id == sa.bindparam("oid")).values(
                    status=sa.bindparam("status"), cart_order_ref=sa.bindparam("cart_order_ref"),
                    email=sa.bindparam("email"), zip=sa.bindparam("zip"), updated_at=sa.bindparam("updated_at")),
                    updates)
            fresh = self._find(conn, [(r["store"], r["order_number"]) for r in rows if r.get("status")])
            for r in rows:
                if not r.get("status"):
                    continue
                before = existing.get((r["store"], r["order_number"]))
                if before is None or before.status != r["status"]:
                    history.append({"order_id": fresh[(r["store"], r["order_number"])].id, "at": now,
                                    "event": None, "from_status": before.status if before else None,
                                    "to_status": r["status"], "route": "imported", "destination": None,
                                    "idempotency_key": None, "reason": "imported from CSV"})
            if history:
                conn.execute(order_history.insert(), history)

    @staticmethod
    def _find(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        found: dict[tuple[str, str], Any] = {}
        numbers = sorted({n for _, n in keys})
        for i in range(0, len(numbers), _CHUNK):
            for row in conn.execute(sa.select(orders).where(orders.c.order_number.in_(numbers[i:i + _CHUNK]))):
                found[(row.store_id, row.order_number)] = row
        return found

    def _locate(self, conn: Connection, numbers: Sequence[str], store: str | None) -> dict[str, Any]:
        """Orders by number; an order number in several stores needs ``store``."""
        by_number: dict[str, list[Any]] = {}
        unique = sorted(set(numbers))
        for i in range(0, len(unique), _CHUNK):
            query = sa.select(orders).where(orders.c.order_number.in_(unique[i:i + _CHUNK]))
            if store is not None:
                query = query.where(orders.c.store_id == store)
            for row in conn.execute(query):
                by_number.setdefault(row.order_number, []).append(row)
        out = {}
        for number, rows in by_number.items():
            if len(rows) > 1:
                stores = ", ".join(sorted(r.store_id for r in rows))
                raise OrderError(f"order {number} is in several stores ({stores}); pass --store")
            out[number] = rows[0]
        return out

    def _locate_raw(self, cur: Any, numbers: Sequence[str], store: str | None) -> dict[str, _Order]:
        """:meth:`_locate` on the DB-API cursor of a :func:`~cartstatus.storage.transaction`."""
        by_number: dict[str, list[_Order]] = {}
        unique = sorted(set(numbers))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i:i + _CHUNK]
            size = len(chunk)
            query = prepared(self.db, f"orders.locate.{size}.{store is not None}",
                             lambda size=size: _locate_query(size, store is not None))  # type: ignore[misc]
            values: dict[str, Any] = {f"n{j}": n for j, n in enumerate(chunk)}
            if store is not None:
                values["store"] = store
            for row in query.execute(cur, values).fetchall():
                order = _Order._make(row)
                by_number.setdefault(order.order_number, []).append(order)
        out = {}
        for number, rows in by_number.items():
            if len(rows) > 1:
                stores = ", ".join(sorted(r.store_id for r in rows))
                raise OrderError(f"order {number} is in several stores ({stores}); pass --store")
            out[number] = rows[0]
        return out

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
        known = match_event(event)
        if known is None:
            raise ValueError(f"{event!r} is not a known status event (see `cartstatus events list`)")
        cfg = self.config
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
        occurred = _iso(now)
        results: list[FireResult] = []
        label_updates, history, records = [], [], []
        routes: dict[str, Route] = {}
        # Per store, the payload every update of this call shares (built by
        # StatusUpdate itself); each order fills in only its own fields.
        templates: dict[str, dict[str, Any]] = {}
        keys = iter(new_keys(len(order_numbers)) if definition.notify_cart else ())
        internal = f"{known!r} does not have Notify Cart checked: internal only (rule 3)"
        unchanged = f"label is already {label!r}: nothing changed, nothing queued (rule 4)"
        today = self.today()
        # One durable transaction on the DB-API cursor: the hot path of every
        # event fired (see storage.Prepared for why not conn.execute).
        with transaction(self.db) as cur:
            found = self._locate_raw(cur, order_numbers, store)
            current: dict[int, str | None] = {}
            for done, number in enumerate(order_numbers, 1):
                row = found.get(number)
                if row is None:
                    results.append(FireResult(number, store, False, None, None, "unknown", None, None,
                                              f"order {number} is not known (import it first)"))
                    continue
                before = current.get(row.id, row.status)
                if before == label:
                    results.append(FireResult(number, row.store_id, False, before, label, "unchanged", None, None,
                                              unchanged))
                    continue
                current[row.id] = label
                label_updates.append({"oid": row.id, "status": label, "at": now})
                key = None
                destination = None
                if not definition.notify_cart:
                    kind, reason = "internal", internal
                else:
                    st = cfg.stores.get(row.store_id)
                    if st is None:
                        kind, reason = "none", f"store {row.store_id!r} is not in the setup file: nothing queued"
                    else:
                        route = routes.get(st.id) or routes.setdefault(st.id, self._route(st, today))
                        kind, reason, destination = route.kind, route.reason, route.connector
                        if route.kind != "none":
                            key = next(keys)
                            template = templates.get(st.id)
                            if template is None:
                                template = templates[st.id] = StatusUpdate(
                                    idempotency_key="", store_id=st.id, order_number="", cart_order_ref="",
                                    status=label, cart_status=st.cart_status(label), previous_status=None,
                                    event=known, occurred_at=occurred, tracking=tracks, note=note).to_payload()
                            payload = {**template, "idempotency_key": key, "order_number": number,
                                       "cart_order_ref": row.cart_order_ref, "previous_status": before,
                                       "email": row.email, "zip": row.zip}
                            records.append(payload_row(payload, route.connector or "", now))
                history.append({"order_id": row.id, "at": now, "event": known, "from_status": before,
                                "to_status": label, "route": kind, "destination": destination,
                                "idempotency_key": key, "reason": reason})
                results.append(FireResult(number, row.store_id, True, before, label, kind, destination, key, reason))
                if progress is not None and done % 1000 == 0:
                    progress(done)
            prepared(self.db, "orders.label", _label_update).executemany(cur, label_updates)
            prepared(self.db, "history.insert", _history_insert).executemany(cur, history)
            self.stack.enqueue_raw(cur, records)
        if records and self.on_enqueue is not None:
            self.on_enqueue()
        return results

    # -- reading -----------------------------------------------------------

    def show_order(self, number: str, store: str | None = None) -> dict[str, Any]:
        """The order's label, its history and any update still on the stack."""
        with self.db.connect() as conn:
            row = self._locate(conn, [number], store).get(number)
            if row is None:
                raise OrderError(f"order {number} is not known" + (f" in store {store}" if store else ""))
            hist = conn.execute(sa.select(order_history).where(order_history.c.order_id == row.id)
                                .order_by(order_history.c.id)).all()
            pending = conn.execute(sa.select(stack).where(stack.c.store_id == row.store_id,
                                                          stack.c.order_number == number)
                                   .order_by(stack.c.id)).all()
        from .stack import _record

        now = time.time()
        return {
            "order_number": row.order_number,
            "store": row.store_id,
            "status": row.status,
            "cart_order_ref": row.cart_order_ref,
            "history": [{"at": _iso(h.at), "event": h.event, "from": h.from_status, "to": h.to_status,
                         "route": h.route, "destination": h.destination, "reason": h.reason,
                         "outcome": h.outcome, "settled_at": _iso(h.settled_at) if h.settled_at else None}
                        for h in hist],
            "pending": [_record(p).as_dict(now) for p in pending],
        }
