"""What the OSS does, apart from HTTP: accounts, storing updates, looking orders up."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import operator
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, Literal, NamedTuple, TypeVar
from urllib.parse import quote

import nh3
import orjson
import sqlalchemy as sa
from cartstatus.times import iso_utc as iso
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .digests import sha256_hex
from .loop_database import TAG_COLUMN, Plan, Step, loop_database, run_plan
from .storage import accounts, orders, updates, write_transaction
from .wire import parse_instant

T = TypeVar("T")

MERCHANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TOKEN_PREFIX = "oss_"

#: Tags a merchant's header and footer may use; everything else (scripts, styles, handlers) is dropped.
PAGE_TAGS = {"a", "b", "br", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p",
             "small", "span", "strong", "ul"}
PAGE_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "*": {"class"}}


# The ingest path speaks to the driver directly (executemany, no per-row
# statement processing): written with :name parameters, turned into each
# driver's style by loop_database.
_ACCOUNT_FIELDS = ("id", "merchant", "display_name", "token_hint", "expires", "revoked_at", "created_at",
                   "header_html", "footer_html", "token_hash")
_ACCOUNT_COLUMNS = ", ".join(_ACCOUNT_FIELDS)
_ACCOUNT_BY_HASH = f"SELECT {_ACCOUNT_COLUMNS} FROM oss_accounts WHERE token_hash = :hash"
# A batch's accounts, each with those of the batch's idempotency keys it has stored (one row of NULLs for none):
# one round trip, whatever the accounts. A list parameter is written ``= ANY(:name)``: one statement text
# whatever the batch's size, prepared once per connection on PostgreSQL (an ``IN`` list of each length was a
# statement of its own, prepared anew).
_ACCOUNTS_AND_KEYS_SEEN = ("SELECT " + ", ".join(f"a.{c}" for c in _ACCOUNT_FIELDS) + ", u.idempotency_key, "
                           "u.body_digest FROM oss_accounts a LEFT JOIN oss_updates u ON u.account_id = a.id "
                           "AND u.idempotency_key = ANY(:keys) WHERE a.token_hash = ANY(:hashes)")
# Each stored update creates or changes its order. NULL keeps the stored value: an update without an email
# keeps the order's email. The status changes only for a newer one, decided by the statement rather than from
# what was read: a batch written beside this one (another server process, or another batch in flight) may have
# stored a newer status since.
_ORDER_COLUMNS = ("INSERT INTO oss_orders (account_id, order_number, status, status_at, email_digest, zip_digest, "
                  "reference, created_at, updated_at) ")
_ORDER_CONFLICT = ("ON CONFLICT (account_id, order_number) DO UPDATE SET "
                   "status = CASE WHEN excluded.status_at >= oss_orders.status_at "
                   "THEN excluded.status ELSE oss_orders.status END, "
                   "status_at = CASE WHEN excluded.status_at >= oss_orders.status_at "
                   "THEN excluded.status_at ELSE oss_orders.status_at END, "
                   "email_digest = COALESCE(excluded.email_digest, oss_orders.email_digest), "
                   "zip_digest = COALESCE(excluded.zip_digest, oss_orders.zip_digest), "
                   "reference = COALESCE(excluded.reference, oss_orders.reference), updated_at = excluded.updated_at")
_ORDER_UPSERT = (_ORDER_COLUMNS + "VALUES (:account_id, :order_number, :status, :occurred_at, :email_digest, "
                 ":zip_digest, :reference, :received_at, :received_at) " + _ORDER_CONFLICT)
_UPDATE_COLUMNS = ("INSERT INTO oss_updates (account_id, order_id, idempotency_key, body_digest, status, "
                   "previous_status, occurred_at, received_at, note, tracking) ")
_UPDATE_VALUES = (":idempotency_key, :body_digest, :status, :previous_status, :occurred_at, :received_at, :note, "
                  ":tracking")
# SQLite: the update after its order, with the order's row id found in the same statement.
_UPDATE_INSERT = (_UPDATE_COLUMNS + "VALUES (:account_id, (SELECT id FROM oss_orders WHERE account_id = :account_id "
                  "AND order_number = :order_number), " + _UPDATE_VALUES + ")")
# PostgreSQL: a batch's orders and updates in one statement, atomic by itself (no BEGIN and COMMIT round trips,
# loop_database). Each order once (ON CONFLICT cannot change a row twice in one statement): the batch's updates
# of an order are folded into one row first (_fold_orders); each update takes its order's id from what the
# upsert returns. Measured: 25-30% less time in PostgreSQL a batch than one statement per update. The rows go
# in as two JSON documents rather than as an array per column: the driver checks and encodes each element of
# an array on its own, and that cost a fifth of the writer's time (measured: 20-25% less CPU in the server a
# batch of 24).
_BATCH_WRITE = (
    "WITH o AS (" + _ORDER_COLUMNS + "SELECT a, n, st, t, e, z, r, :received_at, :received_at FROM "
    "json_to_recordset(CAST(:orders AS JSON)) AS x(a INTEGER, n TEXT, st TEXT, t FLOAT8, e TEXT, z TEXT, r TEXT) "
    + _ORDER_CONFLICT + " RETURNING id, account_id, order_number) " + _UPDATE_COLUMNS
    + "SELECT o.account_id, o.id, u.k, u.d, u.st, u.p, u.t, :received_at, u.nt, u.tr FROM ROWS FROM ("
    "json_to_recordset(CAST(:updates AS JSON)) AS (a INTEGER, n TEXT, k TEXT, d TEXT, st TEXT, p TEXT, t FLOAT8, "
    "nt TEXT, tr TEXT)) WITH ORDINALITY AS u(a, n, k, d, st, p, t, nt, tr, i) "
    "JOIN o ON o.account_id = u.a AND o.order_number = u.n ORDER BY u.i")


def _fold_orders(stored: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """``stored`` (in order) as _BATCH_WRITE's rows: each order once, as the updates one after the other leave it.

    The newest status (of two as new, the later), and the last email, ZIP and
    reference given; the database keeps a stored status newer still.
    """
    folded: dict[tuple[int, str], dict[str, Any]] = {}
    for row in stored:
        key = (row["account_id"], row["order_number"])
        order = folded.get(key)
        if order is None:
            order = folded[key] = {"a": key[0], "n": key[1], "st": row["status"], "t": row["occurred_at"],
                                   "e": None, "z": None, "r": None}
        elif row["occurred_at"] >= order["t"]:
            order["st"], order["t"] = row["status"], row["occurred_at"]
        for short, name in (("e", "email_digest"), ("z", "zip_digest"), ("r", "reference")):
            if row[name] is not None:
                order[short] = row[name]
    updates = [{"a": row["account_id"], "n": row["order_number"], "k": row["idempotency_key"],
                "d": row["body_digest"], "st": row["status"], "p": row["previous_status"], "t": row["occurred_at"],
                "nt": row["note"], "tr": row["tracking"]} for row in stored]
    return {"received_at": now, "orders": orjson.dumps(list(folded.values())).decode(),
            "updates": orjson.dumps(updates).decode()}


# A lookup is one statement: the account (revoked or not), the failures counted
# against what was asked, and the order with its history only when the email's or
# ZIP's digest matches. A failed lookup reads one row of NULLs whether the order
# exists or how long its history is, so its time tells nothing. Tagged: on
# PostgreSQL the lookups made together go to the server together (loop_database).
_LOOKUP_SQL = f"""
SELECT {TAG_COLUMN}, o.id, o.order_number, o.status, o.status_at, a.revoked_at,
       (SELECT f.failures FROM oss_lookup_failures f
        WHERE f.merchant = :merchant AND f.order_number = :number AND f.window_start > :since),
       u.status, u.previous_status, u.occurred_at, u.note, u.tracking
FROM (SELECT 1 AS one) AS asked
LEFT JOIN oss_accounts a ON a.id = :account_id
LEFT JOIN oss_orders o ON o.account_id = a.id AND o.order_number = :number AND o.{{kind}}_digest = :digest
LEFT JOIN oss_updates u ON u.order_id = o.id
ORDER BY u.occurred_at, u.id
"""
_MERCHANT_ID = "SELECT id FROM oss_accounts WHERE merchant = :merchant"
# A new window when the last one is over, else one more failure in it.
_LOOKUP_FAILED = """
INSERT INTO oss_lookup_failures (merchant, order_number, window_start, failures)
VALUES (:merchant, :number, :now, 1)
ON CONFLICT (merchant, order_number) DO UPDATE SET
    failures = CASE WHEN oss_lookup_failures.window_start <= :since THEN 1
                    ELSE oss_lookup_failures.failures + 1 END,
    window_start = CASE WHEN oss_lookup_failures.window_start <= :since THEN :now
                        ELSE oss_lookup_failures.window_start END
"""
_LOOKUP_FAILURES_PRUNE = "DELETE FROM oss_lookup_failures WHERE window_start <= :since"
#: Failed lookups of one merchant's order number allowed per window, and the window in seconds.
LOOKUP_FAILURE_LIMIT = 10
LOOKUP_FAILURE_WINDOW = 3600.0
_HISTORY = (sa.select(updates.c.status, updates.c.previous_status, updates.c.occurred_at, updates.c.note,
                      updates.c.tracking)
            .where(updates.c.order_id == sa.bindparam("order_id")).order_by(updates.c.occurred_at, updates.c.id))


class LookupsLocked(Exception):
    """Too many failed lookups of this merchant's order number lately: it cannot be looked up for a while."""


class AccountError(ValueError):
    """An account command that cannot be done (unknown merchant, bad name, duplicate)."""


def hash_token(token: str) -> str:
    return sha256_hex(token.encode("utf-8"))


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def sanitize_html(html: str | None) -> str:
    """A merchant's header or footer HTML, reduced to harmless tags and http(s)/mailto links."""
    if not html:
        return ""
    return nh3.clean(html, tags=PAGE_TAGS, attributes=PAGE_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")


def normalize_email(value: str) -> str:
    return value.strip().lower()


_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def normalize_zip(value: str) -> str:
    """Letters and digits only, upper case; a US ZIP+4 matches its 5-digit ZIP."""
    text = _NOT_ALPHANUMERIC.sub("", value).upper()
    return text[:5] if text.isdigit() and len(text) == 9 else text


def lookup_digest(account_id: int, kind: str, value: str) -> str:
    norm = normalize_email(value) if kind == "email" else normalize_zip(value)
    return sha256_hex(f"{account_id}:{kind}:{norm}".encode())


@dataclass(frozen=True)
class Account:
    id: int
    merchant: str
    display_name: str | None
    token_hint: str
    expires: dt.date
    revoked_at: float | None
    created_at: float
    header_html: str | None = None
    footer_html: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def active(self, today: dt.date | None = None) -> bool:
        """A subscription is active through its end date."""
        return (today or dt.date.today()) <= self.expires

    @property
    def name(self) -> str:
        return self.display_name or self.merchant

    def as_dict(self, today: dt.date | None = None) -> dict[str, Any]:
        return {
            "merchant": self.merchant,
            "name": self.name,
            "expires": self.expires.isoformat(),
            "active": self.active(today) and not self.revoked,
            "revoked": self.revoked,
            "token_hint": self.token_hint,
            "created_at": dt.datetime.fromtimestamp(self.created_at, dt.UTC).isoformat(timespec="seconds"),
        }


def _account(row: Any) -> Account:
    """An account from a SQLAlchemy row of the accounts table."""
    return _account_from_tuple((row.id, row.merchant, row.display_name, row.token_hint, row.expires,
                                row.revoked_at, row.created_at, row.header_html, row.footer_html))


def _account_from_tuple(row: Sequence[Any]) -> Account:
    """An account from a driver row in the order of _ACCOUNT_COLUMNS."""
    expires = row[4] if isinstance(row[4], dt.date) else dt.date.fromisoformat(str(row[4]))
    return Account(row[0], row[1], row[2], row[3], expires, row[5], row[6], row[7], row[8])


@dataclass(frozen=True)
class IngestJob:
    """One authenticated-by-token, already validated update body."""

    token_hash: str
    body: dict[str, Any]
    digest: str


@dataclass(frozen=True)
class IngestResult:
    kind: Literal["stored", "replayed", "unauthorized", "lapsed", "wrong_merchant", "conflict"]
    account: Account | None = None
    body: dict[str, Any] = field(default_factory=dict)


# What a lookup shows, as named tuples: one is made per history entry and parcel on every lookup, and a
# tuple is made several times quicker than a frozen dataclass.
class TrackingView(NamedTuple):
    carrier: str
    number: str
    ship_date: str | None
    url: str | None


class HistoryEntry(NamedTuple):
    status: str
    previous_status: str | None
    at: float
    note: str | None


class OrderView(NamedTuple):
    """What a shopper (or the store) may see of one order."""

    merchant: str
    order_number: str
    status: str
    status_at: float
    history: tuple[HistoryEntry, ...]
    tracking: tuple[TrackingView, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "merchant": self.merchant,
            "order_number": self.order_number,
            "status": self.status,
            "status_at": iso(self.status_at),
            "history": [{"status": h.status, "previous_status": h.previous_status, "at": iso(h.at),
                         "note": h.note} for h in self.history],
            "tracking": [{"carrier": t.carrier, "number": t.number, "ship_date": t.ship_date, "url": t.url}
                         for t in self.tracking],
        }


class OssStore:
    """The OSS's data, on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, today: Any = dt.date.today, *, threads: int = 4) -> None:
        self.engine = engine
        self.today = today
        # Work that may wait on the database (a failed lookup's count, a page's account) runs on these.
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="oss-db")
        # Hot reads (lookups, tokens) and group commits, from the event loop without it waiting.
        self.db = loop_database(engine, self.run)
        # Accounts are never deleted nor renamed: a merchant's id, once read, holds for good.
        self._merchant_ids: dict[str, int] = {}
        self._lookup_sql = {kind: _LOOKUP_SQL.format(kind=kind) for kind in ("email", "zip")}
        self._failures_recorded = 0
        # PostgreSQL writes a batch in one statement; SQLite has no INSERT in a WITH.
        self._one_statement_writes = engine.dialect.name == "postgresql"
        # The ingest statements run on the drivers' own connections, which raise the drivers' own errors.
        self.integrity_errors: tuple[type[Exception], ...] = (
            IntegrityError, engine.dialect.loaded_dbapi.IntegrityError, *self.db.integrity_errors)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a database thread, awaited without holding up the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.threads, partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the threads and give up the event loop's connections."""
        self.threads.shutdown(wait=True)
        self.db.close()

    async def merchant_id(self, merchant: str) -> int | None:
        found = self._merchant_ids.get(merchant)
        if found is None:
            rows = await self.db.rows(_MERCHANT_ID, {"merchant": merchant})
            if not rows:
                return None
            if len(self._merchant_ids) > 100_000:
                self._merchant_ids.clear()
            found = self._merchant_ids[merchant] = int(rows[0][0])
        return found

    # -- accounts ----------------------------------------------------------

    def create_account(self, merchant: str, expires: dt.date, display_name: str | None = None) -> tuple[Account, str]:
        """A new account and its token (the only time the token is seen)."""
        if not MERCHANT_RE.match(merchant):
            raise AccountError(f"{merchant!r} is not a merchant name: use 1-63 lower-case letters, digits "
                               "and -, starting with a letter or digit (it is part of the shopper's URL)")
        token = new_token()
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(accounts.insert().values(
                    merchant=merchant, display_name=display_name, token_hash=hash_token(token),
                    token_hint=token[:8], expires=expires, created_at=time.time()))
        except IntegrityError:
            raise AccountError(f"merchant {merchant!r} already has an account; use rotate-token for a new "
                               "token or renew to change its end date") from None
        return self.account(merchant), token

    def account(self, merchant: str) -> Account:
        found = self.find_account(merchant)
        if found is None:
            raise AccountError(f"no account for merchant {merchant!r} (see `cartstatus-oss accounts list`)")
        return found

    def find_account(self, merchant: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.merchant == merchant)).first()
        return _account(row) if row is not None else None

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            return [_account(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.merchant))]

    def _change(self, merchant: str, **values: Any) -> Account:
        with write_transaction(self.engine) as conn:
            done = conn.execute(accounts.update().where(accounts.c.merchant == merchant).values(**values))
        if done.rowcount == 0:
            raise AccountError(f"no account for merchant {merchant!r} (see `cartstatus-oss accounts list`)")
        return self.account(merchant)

    def renew(self, merchant: str, expires: dt.date) -> Account:
        return self._change(merchant, expires=expires)

    def revoke(self, merchant: str) -> Account:
        """Refuse the account's token from now on (rotate-token issues a working one again)."""
        return self._change(merchant, revoked_at=time.time())

    def rotate_token(self, merchant: str) -> tuple[Account, str]:
        """A new token; the old one stops working at once."""
        token = new_token()
        account = self._change(merchant, token_hash=hash_token(token), token_hint=token[:8],
                               token_rotated_at=time.time(), revoked_at=None)
        return account, token

    def set_page(self, merchant: str, *, header_html: str | None = None, footer_html: str | None = None,
                 display_name: str | None = None) -> Account:
        values: dict[str, Any] = {}
        if header_html is not None:
            values["header_html"] = sanitize_html(header_html)
        if footer_html is not None:
            values["footer_html"] = sanitize_html(footer_html)
        if display_name is not None:
            values["display_name"] = display_name
        if not values:
            return self.account(merchant)
        return self._change(merchant, **values)

    async def account_for_hash(self, token_hash: str) -> Account | None:
        """The account whose token has this sha256 (revoked ones too: the caller tells them apart)."""
        rows = await self.db.rows(_ACCOUNT_BY_HASH, {"hash": token_hash})
        return _account_from_tuple(rows[0]) if rows else None

    # -- storing updates ---------------------------------------------------

    def ingest(self, jobs: Sequence[IngestJob]) -> list[IngestResult]:
        """Store many updates in one transaction (group commit: one disk sync for all).

        A batch that fails raises; the writer then stores its jobs one by one
        (:meth:`BatchWriter.write_batch`), so only the culprit fails. A single job
        that collided with another worker's same idempotency key at the same
        instant is tried once more: the row it collided with is committed
        now, and reading it answers replay or conflict. (Two workers creating
        the same order do not collide: the order is an upsert.)
        """
        try:
            return run_plan(self.engine, self.ingest_plan(jobs))
        except self.integrity_errors:
            if len(jobs) > 1:
                raise
            return run_plan(self.engine, self.ingest_plan(jobs))

    async def ingest_from_loop(self, jobs: Sequence[IngestJob]) -> list[IngestResult]:
        """:meth:`ingest`, awaited from the event loop, which never waits on the database for it (loop_database)."""
        try:
            return await self.db.transaction(self.ingest_plan(jobs))
        except self.integrity_errors:
            if len(jobs) > 1:
                raise
            return await self.db.transaction(self.ingest_plan(jobs))

    def ingest_plan(self, jobs: Sequence[IngestJob]) -> Plan[list[IngestResult]]:
        """The statements that store ``jobs``, each step given the rows of the last: a read, then the writes.

        Written once, run by :func:`run_plan` on a thread (in one transaction) or
        from the event loop (loop_database: on PostgreSQL the writes are one
        step, atomic by itself). The runner commits (and only then may the OSS
        answer OK) or rolls back. An IntegrityError means another writer stored
        the same idempotency key at the same instant: the caller tries that job
        once more. Reading before the writes' transaction decides nothing the
        transaction would have protected: it reads committed rows either way, and
        a key stored meanwhile breaks the unique key (that IntegrityError).
        """
        # Two or three statements per batch, whatever its size: statements are
        # built once (module level) and rows go in with executemany.
        now = time.time()
        today = self.today()

        rows = yield Step(_ACCOUNTS_AND_KEYS_SEEN, {"hashes": sorted({j.token_hash for j in jobs}),
                                                    "keys": sorted({j.body["idempotency_key"] for j in jobs})})
        found_accounts = {r[9]: _account_from_tuple(r) for r in rows}
        # Another account's key of the same name is no replay: keys seen are kept per account.
        keys_seen: dict[int, dict[str, str]] = {}
        for r in rows:
            seen_here = keys_seen.setdefault(r[0], {})
            if r[10] is not None:
                seen_here[r[10]] = r[11]
        results: list[IngestResult | None] = [None] * len(jobs)
        accepted: dict[int, list[tuple[int, IngestJob]]] = {}
        by_id: dict[int, Account] = {}
        for i, job in enumerate(jobs):
            account = found_accounts.get(job.token_hash)
            if account is None or account.revoked:
                results[i] = IngestResult("unauthorized")
            elif not account.active(today):
                results[i] = IngestResult("lapsed", account)
            elif job.body.get("merchant") not in (None, account.merchant):
                results[i] = IngestResult("wrong_merchant", account)
            else:
                accepted.setdefault(account.id, []).append((i, job))
                by_id[account.id] = account

        stored: list[dict[str, Any]] = []
        for account_id, group in accepted.items():
            account, seen = by_id[account_id], keys_seen[account_id]
            for i, job in group:
                body = job.body
                key = body["idempotency_key"]
                reply = {"result": "OK", "idempotency_key": key, "order_number": body["order_number"],
                         "status": body["status"]}
                if key in seen:
                    same = hmac.compare_digest(seen[key], job.digest)
                    results[i] = IngestResult("replayed", account, reply) if same else IngestResult("conflict", account)
                    continue
                seen[key] = job.digest
                stored.append({
                    "account_id": account_id, "order_number": body["order_number"], "idempotency_key": key,
                    "body_digest": job.digest, "status": body["status"],
                    "previous_status": body.get("previous_status"),
                    "occurred_at": parse_instant(body["occurred_at"]), "received_at": now, "note": body.get("note"),
                    "tracking": orjson.dumps(body["tracking"]).decode() if body.get("tracking") else None,
                    "email_digest": lookup_digest(account_id, "email", body["email"]) if body.get("email") else None,
                    "zip_digest": lookup_digest(account_id, "zip", body["zip"]) if body.get("zip") else None,
                    "reference": body.get("reference") or None})
                results[i] = IngestResult("stored", account, reply)
        if stored:
            # In one order (accounts, then numbers; a batch's updates of one order as they came), so two batches
            # side by side never wait for each other's orders in a circle (a deadlock on PostgreSQL).
            stored.sort(key=_order_key)
            if self._one_statement_writes:
                yield Step(_BATCH_WRITE, _fold_orders(stored, now), writes=True)
            else:
                yield Step(_ORDER_UPSERT, stored, many=True)
                yield Step(_UPDATE_INSERT, stored, many=True)
        return [r if r is not None else IngestResult("unauthorized") for r in results]

    # -- reading -----------------------------------------------------------

    async def lookup(self, merchant: str, order_number: str, *, email: str | None = None,
                     zip_code: str | None = None, failure_limit: int = LOOKUP_FAILURE_LIMIT,
                     window: float = LOOKUP_FAILURE_WINDOW) -> OrderView | None:
        """The order when the email or ZIP matches; None for every other case alike.

        A wrong email, a wrong ZIP, an unknown order and an unknown or revoked
        merchant all answer None, so a lookup tells nothing about other orders.
        Each such failure counts against the merchant and order number asked
        for; after ``failure_limit`` of them within ``window`` seconds it
        raises :class:`LookupsLocked` until the window is over, whatever is given.
        """
        if not (email or zip_code):
            return None
        now = time.time()
        since = now - window
        account_id = await self.merchant_id(merchant) or 0
        kind, value = ("email", email) if email else ("zip", zip_code or "")
        rows = await self.db.rows(self._lookup_sql[kind], {
            "merchant": merchant, "number": order_number, "since": since, "account_id": account_id,
            "digest": lookup_digest(account_id, kind, value)})
        oid, number, status, status_at, revoked_at, failures = rows[0][1:7]
        if failures is not None and failures >= failure_limit:
            raise LookupsLocked(merchant, order_number)
        if oid is None or revoked_at is not None:
            await self.run(self._lookup_failed, merchant, order_number, now, since)  # a write: it may wait
            return None
        history = [HistoryEntry(r[7], r[8], r[9], r[10]) for r in rows if r[7] is not None]
        return _order_view(merchant, number, status, status_at, history, [r[11] for r in rows if r[11]])

    def _lookup_failed(self, merchant: str, order_number: str, now: float, since: float) -> None:
        with write_transaction(self.engine) as conn:
            params = {"merchant": merchant, "number": order_number, "now": now, "since": since}
            conn.execute(sa.text(_LOOKUP_FAILED), params)
            self._failures_recorded += 1
            if self._failures_recorded % 256 == 0:  # now and then, forget the windows that are over
                conn.execute(sa.text(_LOOKUP_FAILURES_PRUNE), {"since": since})

    def order_for_account(self, account: Account, order_number: str) -> OrderView | None:
        """The store's own order (authenticated by its token): never another account's."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(orders).where(orders.c.account_id == account.id,
                                                       orders.c.order_number == order_number)).first()
            return self._view(conn, row, account.merchant) if row is not None else None

    @staticmethod
    def _view(conn: Connection, row: Any, merchant: str) -> OrderView:
        history = conn.execute(_HISTORY, {"order_id": row.id}).all()
        return _order_view(merchant, row.order_number, row.status, row.status_at,
                           [HistoryEntry(h.status, h.previous_status, h.occurred_at, h.note) for h in history],
                           [h.tracking for h in history])


_order_key = operator.itemgetter("account_id", "order_number")


def _order_view(merchant: str, number: str, status: str, status_at: float, history: Sequence[HistoryEntry],
                tracking_json: Sequence[str | None]) -> OrderView:
    tracking: dict[tuple[str, str], TrackingView] = {}
    for text in tracking_json:
        for t in orjson.loads(text) if text else ():
            key = (t["carrier"].upper(), t["number"])
            tracking[key] = TrackingView(t["carrier"], t["number"], t.get("ship_date"),
                                         tracking_url(t["carrier"], t["number"]))
    return OrderView(merchant, number, status, status_at, tuple(history), tuple(tracking.values()))


#: Carriers' public tracking pages; ``{}`` is the URL-encoded tracking number.
CARRIER_URLS = {
    "UPS": "https://www.ups.com/track?tracknum={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "FEDEX": "https://www.fedex.com/fedextrack/?trknbr={}",
    "DHL": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id={}",
    "CANADAPOST": "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={}",
    "ROYALMAIL": "https://www.royalmail.com/track-your-item#/tracking-results/{}",
}
_CARRIER_ALIASES = {"UNITEDPARCELSERVICE": "UPS", "USPOSTALSERVICE": "USPS", "UNITEDSTATESPOSTALSERVICE": "USPS",
                    "FEDERALEXPRESS": "FEDEX", "DHLEXPRESS": "DHL"}


_NOT_LETTERS = re.compile(r"[^A-Z]")


@lru_cache(maxsize=4096)  # a parcel's page is made on every lookup of its order
def tracking_url(carrier: str, number: str) -> str | None:
    """The carrier's tracking page for ``number``, or None for a carrier it does not know."""
    key = _NOT_LETTERS.sub("", carrier.upper())
    key = _CARRIER_ALIASES.get(key, key)
    template = CARRIER_URLS.get(key)
    return template.format(quote(number.replace(" ", ""), safe="")) if template else None
