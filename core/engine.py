"""The engine: orders, their status labels, and firing status events (rules 2 to 4)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ClauseElement

from .config import Config, Problem, Store
from .connector import StatusUpdate, Tracking
from .events import match_event
from .plugins import pm
from .routing import Route, route_for_store
from .stack import PayloadTemplate, Stack, new_keys
from .storage import open_database, order_history, orders, prepared, stack, transaction
from .textfile import TextFileError, read_text

CSV_HEADER = ["order_number", "store", "status", "cart_order_ref", "email", "zip"]
_CHUNK = 500
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ZIP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,18}[A-Za-z0-9]$")
_ORDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./#-]{0,63}$")
_encode_json = json.JSONEncoder(separators=(",", ":")).encode
#: C0 control characters but tab, and DEL: a NUL imports on SQLite, then fails every send (and PostgreSQL refuses it).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: A CSV column and the database column it is stored in (whose length it must fit).
_CSV_COLUMNS = {"order_number": orders.c.order_number, "store": orders.c.store_id, "status": orders.c.status,
                "cart_order_ref": orders.c.cart_order_ref, "email": orders.c.email, "zip": orders.c.zip}
#: What fire sends along, limited as the OSS wire format limits it (the strictest destination).
NOTE_MAX, CARRIER_MAX, TRACKING_NUMBER_MAX, TRACKINGS_MAX = 2000, 40, 64, 50


def _length(column: sa.Column[Any]) -> int | None:
    """The most characters a string column holds (None: no limit)."""
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else None


def text_problem(value: str, limit: int | None) -> str | None:
    """What is wrong with a text field from outside (a control character, too long), or None."""
    found = _CONTROL.search(value)
    if found is not None:
        return f"contains the control character U+{ord(found.group()):04X} at character {found.start() + 1}: remove it"
    if limit is not None and len(value) > limit:
        return f"{len(value):,} characters, more than the {limit} it may have: shorten it"
    return None


def _fire_problems(numbers: Sequence[str], tracking: Sequence[Tracking], note: str | None,
                   store: str | None) -> Iterable[str]:
    """What fire refuses to store or send: control characters and over-long values, by field."""
    number_limit = _length(orders.c.order_number)
    # One regex pass over every number (a bulk fire has thousands); the loop only to name the bad one.
    if _CONTROL.search("\t".join(numbers)) or max(map(len, numbers), default=0) > (number_limit or 0):
        for i, number in enumerate(numbers, 1):
            problem = text_problem(number, number_limit)
            if problem:
                yield f"order number {i} ({number[:20]!r}{'...' if len(number) > 20 else ''}): {problem}"
                break
    if store is not None:
        problem = text_problem(store, _length(orders.c.store_id))
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


class OrderError(LookupError):
    """An order that cannot be found, or is ambiguous."""


class ImportError_(ValueError):
    """A CSV file that cannot be imported; nothing from it was."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


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
        # per field: half the cost, and a bulk fire makes one result per order.
        self.__dict__.update(order_number=order_number, store_id=store_id, changed=changed,
                             from_status=from_status, to_status=to_status, route=route,
                             destination=destination, idempotency_key=idempotency_key, reason=reason)

    @property
    def queued(self) -> bool:
        return self.idempotency_key is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# An order as fire reads it: (id, store_id, order_number, status, cart_order_ref, email, zip).
_Order = tuple[int, str, str, "str | None", str, "str | None", "str | None"]

_ORDER_COLUMNS = (orders.c.id, orders.c.store_id, orders.c.order_number, orders.c.status,
                  orders.c.cart_order_ref, orders.c.email, orders.c.zip)
_HISTORY_COLUMNS = ("order_id", "at", "event", "from_status", "to_status", "route", "destination",
                    "idempotency_key", "reason")


def _locate_query(postgres: bool, by_store: bool) -> ClauseElement:
    """Orders by any number of numbers in one query, in one store (``store``) or all.

    ``numbers`` is a list on PostgreSQL (``= ANY(array)``) and a JSON array on
    SQLite (``IN (SELECT value FROM json_each(...))``); both look each number up
    in an index.
    """
    if postgres:
        match = orders.c.order_number == sa.any_(sa.bindparam("numbers", type_=ARRAY(sa.String)))
    else:
        listed = sa.func.json_each(sa.bindparam("numbers", type_=sa.String)).table_valued("value")
        match = orders.c.order_number.in_(sa.select(listed.c.value))
    query = sa.select(*_ORDER_COLUMNS).where(match)
    if by_store:
        query = query.where(orders.c.store_id == sa.bindparam("store"))
    return query


def _label_update(postgres: bool) -> ClauseElement:
    """Set one label on every order in ``ids`` (as ``numbers`` in :func:`_locate_query`)."""
    ids: sa.ColumnElement[bool]
    if postgres:
        ids = orders.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Integer)))
    else:
        listed = sa.func.json_each(sa.bindparam("ids", type_=sa.String)).table_valued("value")
        ids = orders.c.id.in_(sa.select(listed.c.value))
    return orders.update().where(ids).values(status=sa.bindparam("status"), updated_at=sa.bindparam("at"))


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
            text = read_text(p)
        except FileNotFoundError:
            raise ImportError_([Problem(p, None, "(file)", "no such file")]) from None
        except OSError as exc:  # a directory, a symlink loop, no permission
            raise ImportError_([Problem(p, None, "(file)", f"cannot read: {exc.strerror}; check the path")]) \
                from None
        except TextFileError as exc:
            raise ImportError_([Problem(p, exc.line, "(file)", exc.message)]) from None
        rows = self._parse_csv(p, text)
        self.upsert_orders(rows)
        return len(rows)

    def _parse_csv(self, p: Path, text: str) -> list[dict[str, Any]]:
        reader = csv.reader(io.StringIO(text))
        try:
            return self._read_rows(p, reader)
        except csv.Error as exc:
            limit = csv.field_size_limit()
            message = (f"a field is longer than {limit:,} characters, the most a CSV field may have: is this the "
                       "right file?") if "field limit" in str(exc) else f"not readable as CSV: {exc}"
            raise ImportError_([Problem(p, reader.line_num, "(row)", message)]) from None

    def _read_rows(self, p: Path, reader: Any) -> list[dict[str, Any]]:
        problems: list[Problem] = []
        header = next(reader, None)
        if header is None:
            raise ImportError_([Problem(p, 1, "(header)",
                                        f"the file is empty; expected the header {','.join(CSV_HEADER)}")])
        if [h.strip() for h in header] != CSV_HEADER:
            raise ImportError_([Problem(p, 1, "(header)",
                                        f"expected the header {','.join(CSV_HEADER)}, found "
                                        f"{_CONTROL.sub('?', ','.join(header))[:200]}")])
        seen: dict[tuple[str, str], int] = {}
        rows = []
        start = reader.line_num + 1
        for fields in reader:
            # The record's first line (a quoted field may run over several).
            line, start = start, reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(CSV_HEADER):
                problems.append(Problem(p, line, "(row)",
                                        f"{len(fields)} fields, expected {len(CSV_HEADER)} ({','.join(CSV_HEADER)})"))
                continue
            row = dict(zip(CSV_HEADER, (f.strip() for f in fields), strict=True))
            found = list(self._row_problems(p, line, row))
            problems.extend(found)
            key = (row["store"], row["order_number"])
            if key in seen and not any(q.field in ("order_number", "store") for q in found):
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
        # First what no field may hold (control characters, more than its column); a field
        # with such a problem is not checked further, nor echoed.
        bad = set()
        for name, column in _CSV_COLUMNS.items():
            problem = text_problem(row[name], _length(column))
            if problem:
                bad.add(name)
                yield Problem(p, line, name, problem)
        if "order_number" not in bad and not _ORDER.match(row["order_number"]):
            yield Problem(p, line, "order_number",
                          f"{row['order_number']!r} is not an order number: expected 1-64 letters, digits or _./#-")
        if "store" not in bad and row["store"] not in self.config.stores:
            known = ", ".join(self.config.stores) or "none (add stores to the setup file)"
            yield Problem(p, line, "store", f"{row['store']!r} is not a store in {self.config.path}; known: {known}")
        if "cart_order_ref" not in bad:
            if not row["cart_order_ref"]:
                yield Problem(p, line, "cart_order_ref", "empty: give the cart's own order number")
            elif not _ORDER.match(row["cart_order_ref"]):
                yield Problem(p, line, "cart_order_ref", "expected 1-64 letters, digits or _./#-")
        if "email" not in bad and row["email"] and not _EMAIL.match(row["email"]):
            yield Problem(p, line, "email", f"{row['email']!r} is not an email address")
        if "zip" not in bad and row["zip"] and not _ZIP.match(row["zip"]):
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
        unique = list(set(numbers))
        values: dict[str, Any] = {} if store is None else {"store": store}
        postgres = self.db.dialect.name == "postgresql"
        query = prepared(self.db, f"orders.locate.{store is not None}",
                         lambda: _locate_query(postgres, store is not None))
        values["numbers"] = unique if postgres else _encode_json(unique)
        rows = query.execute(cur, values).fetchall()
        out: dict[str, _Order] = {}
        for row in rows:
            number = row[2]
            if number in out:
                stores = ", ".join(sorted(r[1] for r in rows if r[2] == number))
                raise OrderError(f"order {number} is in several stores ({stores}); pass --store")
            out[number] = row
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
        refused = list(_fire_problems(order_numbers, tracks, note, store))
        if refused:
            raise ValueError(f"nothing fired: {'; '.join(refused)}")
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
        postgres = self.db.dialect.name == "postgresql"
        # One durable transaction on the DB-API cursor: the hot path of every
        # event fired (see storage.Prepared for why not conn.execute).
        with transaction(self.db) as cur:
            found = self._locate_raw(cur, order_numbers, store)
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
            if relabelled:
                prepared(self.db, "orders.label", lambda: _label_update(postgres)).execute(
                    cur, {"ids": relabelled if postgres else _encode_json(relabelled), "status": label, "at": now})
            prepared(self.db, "history.insert", _history_insert).executemany_rows(cur, _HISTORY_COLUMNS, history)
            self.stack.enqueue_values(cur, records)
        if records and self.on_enqueue is not None:
            self.on_enqueue()
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
                         "idempotency_key": h.idempotency_key,
                         "outcome": h.outcome, "settled_at": _iso(h.settled_at) if h.settled_at else None}
                        for h in hist],
            "pending": [_record(p).as_dict(now) for p in pending],
        }
