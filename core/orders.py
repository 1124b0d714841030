"""Orders: read from a CSV file, added or updated, found by number, relabelled, and the history of their labels."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ClauseElement

from .config import Config, Problem
from .storage import order_history, orders, prepared, transaction
from .textfile import TextFileError, read_text

CSV_HEADER = ["order_number", "store", "status", "cart_order_ref", "email", "zip"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ZIP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,18}[A-Za-z0-9]$")
_ORDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./#-]{0,63}$")
#: C0 control characters but tab, and DEL: a NUL imports on SQLite, then fails every send (and PostgreSQL refuses it).
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: A CSV column and the database column it is stored in (whose length it must fit).
_CSV_COLUMNS = {"order_number": orders.c.order_number, "store": orders.c.store_id, "status": orders.c.status,
                "cart_order_ref": orders.c.cart_order_ref, "email": orders.c.email, "zip": orders.c.zip}
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


class OrderError(LookupError):
    """An order that cannot be found, or is ambiguous."""


class OrderImportError(ValueError):
    """A CSV file of orders that cannot be imported; nothing from it was."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Order(NamedTuple):
    """An order as the engine reads it."""

    id: int
    store_id: str
    order_number: str
    status: str | None
    cart_order_ref: str
    email: str | None
    zip: str | None


#: An order as :meth:`Orders.rows` reads it: the fields of :class:`Order`, in its order, in a plain tuple
#: (a bulk fire reads thousands, and unpacks each).
OrderRow = tuple[int, str, str, "str | None", str, "str | None", "str | None"]

#: The columns of a history row, in the order of :meth:`Orders.add_history`'s tuples.
HISTORY_COLUMNS = ("order_id", "at", "event", "from_status", "to_status", "route", "destination",
                   "idempotency_key", "reason")
_INSERT_COLUMNS = ("store_id", "order_number", "status", "cart_order_ref", "email", "zip", "updated_at")


def column_limit(column: sa.Column[Any]) -> int | None:
    """The most characters a string column holds (None: no limit)."""
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else None


def text_problem(value: str, limit: int | None) -> str | None:
    """What is wrong with a text field from outside (a control character, too long), or None."""
    found = CONTROL.search(value)
    if found is not None:
        return f"contains the control character U+{ord(found.group()):04X} at character {found.start() + 1}: remove it"
    if limit is not None and len(value) > limit:
        return f"{len(value):,} characters, more than the {limit} it may have: shorten it"
    return None


# -- reading a CSV file -------------------------------------------------------

def read_orders_csv(path: str | Path, config: Config) -> list[dict[str, str]]:
    """The rows of a CSV file of orders, each checked; raises :class:`OrderImportError` naming every bad line."""
    p = Path(path)
    try:
        text = read_text(p)
    except FileNotFoundError:
        raise OrderImportError([Problem(p, None, "(file)", "no such file")]) from None
    except OSError as exc:  # a directory, a symlink loop, no permission
        raise OrderImportError([Problem(p, None, "(file)", f"cannot read: {exc.strerror}; check the path")]) \
            from None
    except TextFileError as exc:
        raise OrderImportError([Problem(p, exc.line, "(file)", exc.message)]) from None
    reader = csv.reader(io.StringIO(text))
    try:
        return _read_rows(p, reader, config)
    except csv.Error as exc:
        limit = csv.field_size_limit()
        message = (f"a field is longer than {limit:,} characters, the most a CSV field may have: is this the "
                   "right file?") if "field limit" in str(exc) else f"not readable as CSV: {exc}"
        raise OrderImportError([Problem(p, reader.line_num, "(row)", message)]) from None


def _read_rows(p: Path, reader: Any, config: Config) -> list[dict[str, str]]:
    problems: list[Problem] = []
    header = next(reader, None)
    if header is None:
        raise OrderImportError([Problem(p, 1, "(header)",
                                        f"the file is empty; expected the header {','.join(CSV_HEADER)}")])
    if [h.strip() for h in header] != CSV_HEADER:
        raise OrderImportError([Problem(p, 1, "(header)",
                                        f"expected the header {','.join(CSV_HEADER)}, found "
                                        f"{CONTROL.sub('?', ','.join(header))[:200]}")])
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
        found = list(_row_problems(p, line, row, config))
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
        raise OrderImportError(problems)
    return rows


def _row_problems(p: Path, line: int, row: dict[str, str], config: Config) -> Iterable[Problem]:
    # First what no field may hold (control characters, more than its column); a field
    # with such a problem is not checked further, nor echoed.
    bad = set()
    for name, column in _CSV_COLUMNS.items():
        problem = text_problem(row[name], column_limit(column))
        if problem:
            bad.add(name)
            yield Problem(p, line, name, problem)
    if "order_number" not in bad and not _ORDER.match(row["order_number"]):
        yield Problem(p, line, "order_number",
                      f"{row['order_number']!r} is not an order number: expected 1-64 letters, digits or _./#-")
    if "store" not in bad and row["store"] not in config.stores:
        known = ", ".join(config.stores) or "none (add stores to the setup file)"
        yield Problem(p, line, "store", f"{row['store']!r} is not a store in {config.path}; known: {known}")
    if "cart_order_ref" not in bad:
        if not row["cart_order_ref"]:
            yield Problem(p, line, "cart_order_ref", "empty: give the cart's own order number")
        elif not _ORDER.match(row["cart_order_ref"]):
            yield Problem(p, line, "cart_order_ref", "expected 1-64 letters, digits or _./#-")
    if "email" not in bad and row["email"] and not _EMAIL.match(row["email"]):
        yield Problem(p, line, "email", f"{row['email']!r} is not an email address")
    if "zip" not in bad and row["zip"] and not _ZIP.match(row["zip"]):
        yield Problem(p, line, "zip", f"{row['zip']!r} is not a ZIP or postal code")


# -- statements (compiled once: see storage.Prepared) --------------------------

def _in_list(column: sa.Column[Any], name: str, item: sa.types.TypeEngine[Any],
             postgres: bool) -> sa.ColumnElement[bool]:
    """``column`` is one of the list bound as ``name``, in one indexed lookup whatever the list's length.

    The list is an array on PostgreSQL (``= ANY(:name)``) and a JSON array on SQLite
    (``IN (SELECT value FROM json_each(:name))``): see :meth:`Orders._listed`.
    """
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=ARRAY(item)))
    listed = sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def _locate_query(postgres: bool, by_store: bool) -> ClauseElement:
    """Orders by any number of ``numbers``, in one store (``store``) or all."""
    query = sa.select(*(orders.c[name] for name in Order._fields)).where(
        _in_list(orders.c.order_number, "numbers", sa.String(), postgres))
    return query.where(orders.c.store_id == sa.bindparam("store")) if by_store else query


def _label_update(postgres: bool) -> ClauseElement:
    """One label on every order in ``ids``."""
    return (orders.update().where(_in_list(orders.c.id, "ids", sa.Integer(), postgres))
            .values(status=sa.bindparam("status"), updated_at=sa.bindparam("at")))


def _order_insert() -> ClauseElement:
    return orders.insert().values({c: sa.bindparam(c) for c in _INSERT_COLUMNS})


def _order_update() -> ClauseElement:
    return orders.update().where(orders.c.id == sa.bindparam("oid")).values(
        {c: sa.bindparam(c) for c in ("status", "cart_order_ref", "email", "zip", "updated_at")})


def _history_insert() -> ClauseElement:
    return order_history.insert().values({c: sa.bindparam(c) for c in HISTORY_COLUMNS})


class Orders:
    """The orders table and the history of their labels.

    The methods taking ``cur`` run on the DB-API cursor of the caller's
    :func:`~cartstatus.storage.transaction` (a fire writes label, history and
    stack record in one); the others are one transaction each.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    def _listed(self, values: Iterable[Any]) -> Any:
        """A list bound for :func:`_in_list`."""
        values = list(values)
        return values if self.postgres else _encode_json(values)

    def rows(self, cur: Any, numbers: Iterable[str], store: str | None = None) -> list[OrderRow]:
        """Every order numbered one of ``numbers``, in ``store`` or in any store."""
        query = prepared(self.engine, f"orders.locate.{store is not None}",
                         lambda: _locate_query(self.postgres, store is not None))
        values = {"numbers": self._listed(set(numbers))}
        if store is not None:
            values["store"] = store
        rows: list[OrderRow] = query.execute(cur, values).fetchall()
        return rows

    def locate(self, cur: Any, numbers: Sequence[str], store: str | None = None) -> dict[str, OrderRow]:
        """Orders by number (those not known left out); an order number in several stores needs ``store``."""
        rows = self.rows(cur, numbers, store)
        out: dict[str, OrderRow] = {}
        for row in rows:
            number = row[2]
            if number in out:
                stores = ", ".join(sorted(r[1] for r in rows if r[2] == number))
                raise OrderError(f"order {number} is in several stores ({stores}); pass --store")
            out[number] = row
        return out

    def relabel(self, cur: Any, ids: Sequence[int], status: str, at: float) -> None:
        """Give every order in ``ids`` the label ``status``."""
        if ids:
            prepared(self.engine, "orders.label", lambda: _label_update(self.postgres)).execute(
                cur, {"ids": self._listed(ids), "status": status, "at": at})

    def add_history(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """Add history rows, each a tuple in the order of :data:`HISTORY_COLUMNS`."""
        prepared(self.engine, "history.insert", _history_insert).executemany_rows(cur, HISTORY_COLUMNS, rows)

    def history(self, order_id: int) -> list[sa.Row[Any]]:
        """An order's history, oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(order_history).where(order_history.c.order_id == order_id)
                                     .order_by(order_history.c.id)))

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add or update orders (``order_number, store, status, cart_order_ref, email, zip``) in one transaction.

        A row with a status that differs from the order's label adds a history row
        (route ``imported``); a row without one keeps the label.
        """
        now = time.time()
        with transaction(self.engine) as cur:
            existing = {(o.store_id, o.order_number): o
                        for o in map(Order._make, self.rows(cur, {r["order_number"] for r in rows}))}
            inserts, updates = [], []
            for r in rows:
                status = r.get("status") or None
                values = {"cart_order_ref": r["cart_order_ref"], "email": r.get("email") or None,
                          "zip": r.get("zip") or None, "updated_at": now}
                found = existing.get((r["store"], r["order_number"]))
                if found is None:
                    inserts.append({"store_id": r["store"], "order_number": r["order_number"], "status": status,
                                    **values})
                else:
                    updates.append({"oid": found.id, "status": status or found.status, **values})
            prepared(self.engine, "orders.insert", _order_insert).executemany(cur, inserts)
            prepared(self.engine, "orders.update", _order_update).executemany(cur, updates)
            was = {key: o.status for key, o in existing.items()}
            relabelled = [r for r in rows
                          if r.get("status") and was.get((r["store"], r["order_number"])) != r["status"]]
            if relabelled:
                ids = {(sid, number): oid
                       for oid, sid, number, *_ in self.rows(cur, {r["order_number"] for r in relabelled})}
                self.add_history(cur, [(ids[(r["store"], r["order_number"])], now, None,
                                        was.get((r["store"], r["order_number"])), r["status"], "imported", None, None,
                                        "imported from CSV") for r in relabelled])
