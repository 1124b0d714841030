"""The stack: a transactional outbox of status update records.

A record is written in the same transaction as the label change that caused
it, leased by a stack controller while it is sent, deleted only on success,
rescheduled on a transient fault and parked on a permanent one.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ClauseElement

from .connector import StatusUpdate
from .storage import Prepared, controllers, order_history, prepared, stack, transaction

#: Numbers the claims of this process: with the worker's id and a tag of the process, a claim's fencing token.
_claims = itertools.count(1)
_PROCESS_TAG = os.urandom(3).hex()

#: A controller whose heartbeat is older than this is taken for dead.
HEARTBEAT_STALE_SECONDS = 15.0

#: The PostgreSQL channel a transaction that makes records claimable notifies (``NOTIFY``, delivered at
#: its commit): controllers that ``LISTEN`` on it wake at once instead of at their next look.
CHANNEL = "cartstatus_stack"

#: The wake-up callbacks of this process's controllers, by database (see :meth:`Stack.subscribe`).
_subscribers: dict[str, set[Callable[[], None]]] = {}
_subscribers_lock = threading.Lock()


@dataclass(frozen=True)
class StackRecord:
    id: int
    idempotency_key: str
    store_id: str
    order_number: str
    destination: str
    update: StatusUpdate
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str | None
    parked: bool
    lease_until: float | None = None
    #: The fencing token of the lease this copy was claimed under: only its holder may settle the record.
    lease_token: str | None = None
    #: When the record's current run of failures began (the retry horizon counts from it).
    failing_since: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any], lease: tuple[float, str] | None = None) -> StackRecord:
        """A record from a row of :data:`RECORD_COLUMNS`; ``lease`` (until, token): as just claimed under it."""
        (rid, key, store_id, number, destination, payload, created_at, attempts, next_attempt_at, last_error,
         parked, lease_until, lease_token, failing_since) = row
        if lease is not None:  # the row as read before the claim's lease was written: one attempt more
            attempts, (lease_until, lease_token) = attempts + 1, lease
        return cls(rid, key, store_id, number, destination, StatusUpdate.from_payload(json.loads(payload)),
                   created_at, attempts, next_attempt_at, last_error, bool(parked), lease_until, lease_token,
                   failing_since)

    def state(self, now: float | None = None) -> str:
        """parked, in flight (leased), waiting (a retry is scheduled) or queued."""
        now = time.time() if now is None else now
        if self.parked:
            return "parked"
        if self.lease_until is not None and self.lease_until > now:
            return "in flight"
        if self.attempts > 0 and self.next_attempt_at > now:
            return "waiting"
        return "queued"

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "store": self.store_id,
            "order": self.order_number,
            "destination": self.destination,
            "status": self.update.status,
            "state": self.state(now),
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "failing_since": self.failing_since,
        }


@dataclass(frozen=True)
class RetryResult:
    """What ``stack retry`` did: the records queued again, and those it refused to."""

    retried: list[int]
    #: Parked records a later update of their order would be overtaken by (see :meth:`Stack.retry`).
    refused: list[int]


@dataclass(frozen=True)
class DestinationDepth:
    """The records of one destination (a store and its connector), by state."""

    store_id: str
    destination: str
    #: Records per state (queued, waiting, in flight, parked), only those with any.
    states: dict[str, int]
    #: When the oldest record not parked was queued (None: all are parked).
    oldest_at: float | None

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"store": self.store_id, "destination": self.destination, "states": self.states,
                "depth": sum(n for state, n in self.states.items() if state != "parked"),
                "oldest_age_seconds": round(now - self.oldest_at, 3) if self.oldest_at is not None else None}


@dataclass(frozen=True)
class StackStatus:
    """What Ctrl-Shift-S answered."""

    records: int
    queued: int
    waiting: int
    in_flight: int
    parked: int
    oldest_age_seconds: float | None
    controllers: list[dict[str, Any]]
    destinations: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def controller_running(self) -> bool:
        return bool(self.controllers)

    @property
    def circuits(self) -> list[dict[str, Any]]:
        """The circuits the live controllers hold open (or half-open), each with the controller's id."""
        return [{**c, "controller": ctl["id"]} for ctl in self.controllers for c in ctl.get("circuits", [])]

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "queued": self.queued,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "parked": self.parked,
            "failures": self.parked,
            "oldest_age_seconds": self.oldest_age_seconds,
            "controller_running": self.controller_running,
            "controllers": self.controllers,
            "destinations": self.destinations,
            "circuits": self.circuits,
        }


def new_keys(count: int, now: float | None = None) -> list[str]:
    """``count`` time-ordered UUIDs (version 7, RFC 9562) as strings, in ascending order.

    Time-ordered rather than random (version 4): the unique key index of the
    stack and the key index of the history then grow at their right edge. Random
    keys land on random pages of B-trees that soon outgrow the page cache (what
    that cost: bench/enqueue.py). 74 random bits per key still tell apart any
    number of keys made in the same millisecond.
    Built from one read of os.urandom: a bulk fire needs one key per order.
    """
    ms = f"{int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    digits = os.urandom(10 * count).hex()
    keys = [f"{head}{digits[o:o + 3]}-{'89ab'[int(digits[o + 3], 16) & 3]}{digits[o + 4:o + 7]}-"
            f"{digits[o + 7:o + 19]}"
            for o in range(0, 20 * count, 20)]
    keys.sort()  # the same millisecond: the random part orders them
    return keys


# One encoder for every payload: json.dumps(separators=...) builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode
# A JSON string literal, exactly as _encode writes one (ensure_ascii).
_string = encode_basestring_ascii


#: The fields of a payload that differ between the updates of one fire call to one store, in payload order.
PER_UPDATE_FIELDS = ("idempotency_key", "order_number", "cart_order_ref", "previous_status", "email", "zip")


class PayloadTemplate:
    """The payload text of the updates one fire call queues for one store.

    Everything but :data:`PER_UPDATE_FIELDS` is encoded once; :meth:`render`
    encodes only those. The text is the same as the compact JSON of the update's
    :meth:`~StatusUpdate.to_payload`, built without encoding the whole payload
    again for each update (a bulk fire renders one per order).
    """

    __slots__ = ("parts",)

    def __init__(self, shared: StatusUpdate) -> None:
        payload = shared.to_payload()
        if [name for name in payload if name in PER_UPDATE_FIELDS] != list(PER_UPDATE_FIELDS):
            raise ValueError("the payload's per-update fields are not the ones PayloadTemplate fills in")
        parts: list[str] = []
        current = "{"
        for i, (name, value) in enumerate(payload.items()):
            current += ("," if i else "") + _encode(name) + ":"
            if name in PER_UPDATE_FIELDS:
                parts.append(current)
                current = ""
            else:
                current += _encode(value)
        parts.append(current + "}")
        self.parts = tuple(parts)

    def render(self, key: str, order_number: str, cart_order_ref: str, previous_status: str | None,
               email: str | None, zip: str | None) -> str:
        p0, p1, p2, p3, p4, p5, p6 = self.parts
        return (f"{p0}{_string(key)}{p1}{_string(order_number)}{p2}{_string(cart_order_ref)}"
                f"{p3}{'null' if previous_status is None else _string(previous_status)}"
                f"{p4}{'null' if email is None else _string(email)}{p5}{'null' if zip is None else _string(zip)}{p6}")


# -- prepared statements of the hot paths (see storage.Prepared) -------------

#: The columns of a new record, in the order of :meth:`Stack.enqueue_values`' tuples.
INSERT_COLUMNS = ("idempotency_key", "store_id", "order_number", "destination", "payload", "created_at",
                  "attempts", "next_attempt_at", "parked")
#: The columns :meth:`StackRecord.from_row` reads, in its order.
RECORD_COLUMNS = (stack.c.id, stack.c.idempotency_key, stack.c.store_id, stack.c.order_number, stack.c.destination,
                  stack.c.payload, stack.c.created_at, stack.c.attempts, stack.c.next_attempt_at,
                  stack.c.last_error, stack.c.parked, stack.c.lease_until, stack.c.leased_by,
                  stack.c.failing_since)


def _insert() -> ClauseElement:
    return stack.insert().values({c: sa.bindparam(c) for c in INSERT_COLUMNS})


def _claim_select(postgres: bool, skip: int = 0, only: bool = False) -> ClauseElement:
    """Due records whose order has no earlier one on the stack; not those of ``skip`` destinations (bound
    as ``skip_store<i>``, ``skip_dest<i>``), or only those of one (``only_store``, ``only_dest``)."""
    earlier = stack.alias("earlier")
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.store_id == stack.c.store_id,
            earlier.c.order_number == stack.c.order_number,
            earlier.c.id < stack.c.id,
            earlier.c.parked == sa.false(),
        )
        .exists()
    )
    now = sa.bindparam("now", type_=sa.Float)
    query = (
        sa.select(*RECORD_COLUMNS)
        .where(
            stack.c.parked == sa.false(),
            stack.c.next_attempt_at <= now,
            sa.or_(stack.c.lease_until.is_(None), stack.c.lease_until < now),
            ~blocked,
            *(~sa.and_(stack.c.store_id == sa.bindparam(f"skip_store{i}"),
                       stack.c.destination == sa.bindparam(f"skip_dest{i}")) for i in range(skip)),
            *((stack.c.store_id == sa.bindparam("only_store"), stack.c.destination == sa.bindparam("only_dest"))
              if only else ()),
        )
        # The order of the ix_stack_due index (parked, next_attempt_at, id): the
        # scan stops after ``lim`` rows instead of sorting every due record.
        # Order within an order is kept by ``blocked``, not by this.
        .order_by(stack.c.next_attempt_at, stack.c.id)
        .limit(sa.bindparam("lim", type_=sa.Integer))
    )
    if postgres:
        query = query.with_for_update(skip_locked=True, of=stack)
    return query


def _held_select(postgres: bool) -> ClauseElement:
    query = sa.select(stack.c.id).where(stack.c.leased_by == sa.bindparam("token"))
    # Locked until the settle commits: a claim (SKIP LOCKED) cannot take them over meanwhile.
    return query.with_for_update(of=stack) if postgres else query


def _claim_lease() -> ClauseElement:
    return (stack.update().where(stack.c.id == sa.bindparam("rid"))
            .values(lease_until=sa.bindparam("until"), leased_by=sa.bindparam("token"),
                    attempts=stack.c.attempts + 1))


def _held() -> sa.ColumnElement[bool]:
    """Only the holder of the current lease: a stale copy of a record never changes it (fencing)."""
    return sa.and_(stack.c.id == sa.bindparam("rid"), stack.c.leased_by == sa.bindparam("token"))


def _release() -> ClauseElement:
    return (stack.update().where(_held())
            .values(lease_until=sa.null(), leased_by=sa.null(), attempts=stack.c.attempts - 1))


def _renew() -> ClauseElement:
    return stack.update().where(_held()).values(lease_until=sa.bindparam("until"))


def _delete() -> ClauseElement:
    return stack.delete().where(_held())


def _history_settled() -> ClauseElement:
    """Mark the change's history row delivered, before its record leaves the stack."""
    key = sa.select(stack.c.idempotency_key).where(_held()).scalar_subquery()
    return (order_history.update().where(order_history.c.idempotency_key == key)
            .values(settled_at=sa.bindparam("now"), outcome="delivered", detail=sa.bindparam("detail"),
                    link=sa.bindparam("link")))


def _overtaken(ids: Sequence[int] | None) -> sa.Select[Any]:
    """Parked records (these, or all) a later update of their order would overtake if sent now.

    A later update overtakes when it was delivered (history), or when it is on the
    stack and not being retried together with this one (queued, waiting, in flight,
    or left parked): retried together, the older goes first.
    """
    own = order_history.alias("own")
    later_change = order_history.alias("later_change")
    later = stack.alias("later")
    retried_with = later.c.parked == sa.true()
    if ids is not None:
        retried_with = sa.and_(retried_with, later.c.id.in_(list(ids)))
    delivered_later = (
        sa.select(later_change.c.id)
        .where(own.c.idempotency_key == stack.c.idempotency_key, later_change.c.order_id == own.c.order_id,
               later_change.c.id > own.c.id, later_change.c.outcome == "delivered")
        .exists()
    )
    queued_later = (
        sa.select(later.c.id)
        .where(later.c.store_id == stack.c.store_id, later.c.order_number == stack.c.order_number,
               later.c.id > stack.c.id, ~retried_with)
        .exists()
    )
    query = sa.select(stack.c.id).where(stack.c.parked == sa.true(), sa.or_(delivered_later, queued_later))
    return query.where(stack.c.id.in_(list(ids))) if ids is not None else query


def _reschedule() -> ClauseElement:
    return stack.update().where(_held()).values(
        next_attempt_at=sa.bindparam("at"), last_error=sa.bindparam("err"), lease_until=sa.null(),
        leased_by=sa.null(), failing_since=sa.func.coalesce(stack.c.failing_since, sa.bindparam("now")))


def _park() -> ClauseElement:
    return stack.update().where(_held()).values(
        parked=sa.true(), parked_at=sa.bindparam("now"), last_error=sa.bindparam("err"), lease_until=sa.null(),
        leased_by=sa.null())


class Stack:
    """Operations on the stack table. Every method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        # Which database this is, for this process's own wake-ups (the password left out).
        self._where = engine.url.render_as_string(hide_password=True)

    def _prepared(self, name: str, build: Any) -> Prepared:
        return prepared(self.engine, name, build)

    # -- writing ---------------------------------------------------------

    def enqueue_values(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert records, each a tuple in the order of :data:`INSERT_COLUMNS`, on the DB-API cursor of the
        caller's :func:`~cartstatus.storage.transaction` (the outbox write: with the label change)."""
        self._prepared("stack.insert", _insert).executemany_rows(cursor, INSERT_COLUMNS, rows)
        if rows:
            self._notify(cursor)

    def _notify(self, cursor: Any) -> None:
        """Wake the listening controllers when this transaction commits (PostgreSQL; SQLite's look at
        ``PRAGMA data_version``, see :meth:`data_version`)."""
        if self.postgres:
            cursor.execute(f"NOTIFY {CHANNEL}")

    # -- wake-ups ----------------------------------------------------------

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from the thread that wrote) whenever this process queues records on this database;
        returns what unsubscribes it. A controller in the process that fires needs no look at the database."""
        with _subscribers_lock:
            _subscribers.setdefault(self._where, set()).add(wake)

        def unsubscribe() -> None:
            with _subscribers_lock:
                _subscribers.get(self._where, set()).discard(wake)
        return unsubscribe

    def announce(self) -> None:
        """Tell this process's controllers on this database that records were queued (after the commit)."""
        with _subscribers_lock:
            wakes = list(_subscribers.get(self._where, ()))
        for wake in wakes:
            wake()

    async def notifications(self) -> AsyncIterator[None]:
        """PostgreSQL: once as soon as it listens, then once per commit that notified :data:`CHANNEL`.

        On its own connection (autocommit: it holds no lock), ended by the caller.
        """
        import psycopg  # the postgres extra: only a PostgreSQL stack gets here

        args, params = self.engine.dialect.create_connect_args(self.engine.url)
        conn = await psycopg.AsyncConnection.connect(*args, **{**params, "autocommit": True})
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            yield None  # listening: what was queued before is for the caller to look at now
            async for _ in conn.notifies():
                yield None
        finally:
            await conn.close()

    def watch_connection(self) -> Any:
        """A raw DB-API connection for :meth:`data_version` (close it when done)."""
        return self.engine.raw_connection()

    @staticmethod
    def data_version(conn: Any) -> int:
        """SQLite: a number that changes whenever another connection commits (one read of shared memory)."""
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def claim(self, worker: str, limit: int, lease_seconds: float, now: float | None = None, *,
              skip: Sequence[tuple[str, str]] = (), only: tuple[str, str] | None = None) -> list[StackRecord]:
        """Lease up to ``limit`` due records, only the oldest unparked one of each order; none of the
        destinations (store, connector) in ``skip``, or only those of the destination ``only``.

        A record whose order has an earlier unparked record (queued, waiting or in
        flight) is not claimable: updates of one order go out in the order they happened.
        Each claim has a fencing token of its own (``worker#n``), kept in ``leased_by``:
        a record claimed again after its lease ran out gets a new one, and the old
        holder can then no longer settle, renew or release it.
        The lease is committed before this returns, so before anything is sent.
        """
        now = time.time() if now is None else now
        until = now + lease_seconds
        token = f"{worker[:96]}#{_PROCESS_TAG}.{next(_claims)}"  # leased_by holds 128 characters
        # One statement per power of two of skipped destinations (padded with a store that cannot exist):
        # a handful of statements, each compiled once.
        slots = 1 << (len(skip) - 1).bit_length() if skip else 0
        name = f"stack.claim.{'pg' if self.postgres else 'sql'}.skip{slots}{'.only' if only else ''}"
        select = self._prepared(name, lambda: _claim_select(self.postgres, slots, only is not None))
        params: dict[str, Any] = {"now": now, "lim": limit}
        for i, (store_id, destination) in enumerate([*skip, *[("", "")] * (slots - len(skip))]):
            params[f"skip_store{i}"], params[f"skip_dest{i}"] = store_id, destination
        if only is not None:
            params["only_store"], params["only_dest"] = only
        with transaction(self.engine) as cur:
            rows = select.execute(cur, params).fetchall()
            if not rows:
                return []
            self._prepared("stack.lease", _claim_lease).executemany(
                cur, [{"rid": r[0], "until": until, "token": token} for r in rows])
        lease = (until, token)
        return [StackRecord.from_row(r, lease) for r in rows]

    def _holding(self, cur: Any, records: Iterable[StackRecord]) -> set[int]:
        """The ids of ``records`` whose lease is still theirs (same token), locked for this transaction."""
        tokens = {r.lease_token for r in records if r.lease_token is not None}
        held = self._prepared("stack.held." + ("pg" if self.postgres else "sql"), lambda: _held_select(self.postgres))
        ids: set[int] = set()
        for token in tokens:
            ids.update(row[0] for row in held.execute(cur, {"token": token}).fetchall())
        return {r.id for r in records if r.id in ids}

    def settle(
        self,
        delete: Iterable[StackRecord | tuple[StackRecord, str] | tuple[StackRecord, str, str | None]] = (),
        reschedule: Iterable[tuple[StackRecord, float, str]] = (),
        park: Iterable[tuple[StackRecord, str]] = (),
        now: float | None = None,
    ) -> set[int]:
        """Apply a batch of outcomes in one transaction; returns the ids that were stale.

        ``delete`` holds records the cart took, each alone or with the detail of
        its outcome (what the cart said beyond OK) and its link (a page about the
        order, e.g. the OSS's status_url), which the change's history keeps.

        Only the holder of a record's current lease settles it (its claim's fencing
        token): a record whose lease ran out and was claimed again is left to its
        new holder, and its id is returned, so a late reply can never delete,
        reschedule or park it, nor unblock the next update of its order.
        """
        now = time.time() if now is None else now
        delivered: list[tuple[StackRecord, str, str | None]] = [
            (d, "", None) if not isinstance(d, tuple) else (d[0], d[1], d[2] if len(d) > 2 else None)
            for d in delete]
        reschedule, park = list(reschedule), list(park)
        if not (delivered or reschedule or park):
            return set()
        every = [*(r for r, _, _ in delivered), *(r for r, _, _ in reschedule), *(r for r, _ in park)]
        with transaction(self.engine) as cur:
            held = self._holding(cur, every)
            self._prepared("history.settled", _history_settled).executemany(
                cur, [{"rid": r.id, "token": r.lease_token, "now": now, "detail": detail or None, "link": link}
                      for r, detail, link in delivered if r.id in held])
            self._prepared("stack.delete", _delete).executemany(
                cur, [{"rid": r.id, "token": r.lease_token} for r, _, _ in delivered if r.id in held])
            self._prepared("stack.reschedule", _reschedule).executemany(
                cur, [{"rid": r.id, "token": r.lease_token, "at": at, "err": err, "now": now}
                      for r, at, err in reschedule if r.id in held])
            self._prepared("stack.park", _park).executemany(
                cur, [{"rid": r.id, "token": r.lease_token, "err": err, "now": now} for r, err in park if r.id in held])
        return {r.id for r in every} - held

    def renew(self, records: Iterable[StackRecord], lease_seconds: float,
              now: float | None = None) -> list[StackRecord]:
        """Extend the leases of ``records`` still held; returns those, with their new ``lease_until``."""
        now = time.time() if now is None else now
        records = list(records)
        until = now + lease_seconds
        with transaction(self.engine) as cur:
            held = self._holding(cur, records)
            self._prepared("stack.renew", _renew).executemany(
                cur, [{"rid": r.id, "token": r.lease_token, "until": until} for r in records if r.id in held])
        return [dataclasses.replace(r, lease_until=until) for r in records if r.id in held]

    def release(self, records: Iterable[StackRecord]) -> None:
        """Give back records claimed but never sent (the attempt is not counted); only while still held."""
        with transaction(self.engine) as cur:
            self._prepared("stack.release", _release).executemany(
                cur, [{"rid": r.id, "token": r.lease_token} for r in records])

    def overtaken(self, ids: Sequence[int] | None = None) -> list[int]:
        """Parked records (these, or all) that a later update of their order would overtake if retried.

        See :meth:`retry`: sending one could leave the cart showing an older status than the order has.
        """
        with self.engine.connect() as conn:
            return sorted(conn.execute(_overtaken(ids)).scalars())

    def retry(self, ids: Sequence[int] | None = None, now: float | None = None, *,
              force: bool = False) -> RetryResult:
        """Put parked records (these, or all) back in the queue.

        A record is refused (stays parked) unless ``force`` when a later update of
        the same order was delivered or is on the stack and not retried with it:
        sent now, it would land after the newer status. Records retried together
        go out oldest first (the claim takes only an order's oldest record).
        """
        now = time.time() if now is None else now
        wanted = sa.select(stack.c.id).where(stack.c.parked == sa.true())
        if ids is not None:
            wanted = wanted.where(stack.c.id.in_(list(ids)))
        with self.engine.begin() as conn:
            refused = [] if force else sorted(conn.execute(_overtaken(ids)).scalars())
            retried = sorted(set(conn.execute(wanted).scalars()) - set(refused))
            if retried:
                conn.execute(stack.update().where(stack.c.id.in_(retried), stack.c.parked == sa.true()).values(
                    parked=False, parked_at=None, next_attempt_at=now, attempts=0, failing_since=None))
                if self.postgres:
                    conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
        if retried:
            self.announce()
        return RetryResult(retried, refused)

    def purge_failed(self, now: float | None = None) -> int:
        """Delete every parked record; the change's history keeps why it never arrived."""
        now = time.time() if now is None else now
        parked_keys = sa.select(stack.c.idempotency_key).where(stack.c.parked == sa.true())
        last_error = (sa.select(stack.c.last_error).where(stack.c.idempotency_key == order_history.c.idempotency_key)
                      .scalar_subquery())
        with self.engine.begin() as conn:
            conn.execute(order_history.update().where(order_history.c.idempotency_key.in_(parked_keys))
                         .values(settled_at=now, outcome=sa.literal("purged: ") + sa.func.coalesce(last_error, "")))
            return conn.execute(stack.delete().where(stack.c.parked == sa.true())).rowcount

    # -- reading ---------------------------------------------------------

    def records(self, *, states: Iterable[str] | None = None, limit: int | None = None,
                order_number: str | None = None, store_id: str | None = None) -> list[StackRecord]:
        """Records, oldest first: in these states, of this order number, of this store."""
        query = sa.select(*RECORD_COLUMNS).order_by(stack.c.id)
        if order_number is not None:
            query = query.where(stack.c.order_number == order_number)
        if store_id is not None:
            query = query.where(stack.c.store_id == store_id)
        with self.engine.connect() as conn:
            rows = [StackRecord.from_row(r) for r in conn.execute(query)]
        if states is not None:
            wanted = set(states)
            now = time.time()
            rows = [r for r in rows if r.state(now) in wanted]
        return rows[:limit] if limit else rows

    def get(self, record_id: int) -> StackRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*RECORD_COLUMNS).where(stack.c.id == record_id)).first()
        return StackRecord.from_row(row) if row else None

    def count(self, *, parked: bool | None = None) -> int:
        """How many records are on the stack (only those parked, or not parked, when told)."""
        query = sa.select(sa.func.count()).select_from(stack)
        if parked is not None:
            query = query.where(stack.c.parked == (sa.true() if parked else sa.false()))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def next_due(self, skip: Sequence[tuple[str, str]] = ()) -> float | None:
        """When the soonest unparked record becomes due (for sleeping until then); not counting those of the
        destinations (store, connector) in ``skip``."""
        query = (sa.select(sa.func.min(sa.func.coalesce(
            sa.func.max(stack.c.next_attempt_at, stack.c.lease_until)
            if not self.postgres else sa.func.greatest(stack.c.next_attempt_at, stack.c.lease_until),
            stack.c.next_attempt_at)))
            .where(stack.c.parked == sa.false()))
        for store_id, destination in skip:
            query = query.where(~sa.and_(stack.c.store_id == store_id, stack.c.destination == destination))
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return float(value) if value is not None else None

    def status(self, now: float | None = None) -> StackStatus:
        now = time.time() if now is None else now
        s = stack.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(
                sa.func.count(),
                sa.func.sum(sa.case((s.parked == sa.true(), 1), else_=0)),
                sa.func.sum(sa.case((sa.and_(s.parked == sa.false(), s.lease_until > now), 1), else_=0)),
                sa.func.sum(sa.case((sa.and_(s.parked == sa.false(), s.attempts > 0,
                                             s.next_attempt_at > now,
                                             sa.or_(s.lease_until.is_(None), s.lease_until <= now)), 1),
                                    else_=0)),
                sa.func.min(s.created_at),
            )).one()
            beats = conn.execute(
                sa.select(controllers).where(controllers.c.beat_at > now - HEARTBEAT_STALE_SECONDS)
            ).all()
        total, parked, in_flight, waiting = (int(x or 0) for x in row[:4])
        return StackStatus(
            destinations=[d.as_dict(now) for d in self.destinations(now)],
            records=total,
            queued=total - parked - in_flight - waiting,
            waiting=waiting,
            in_flight=in_flight,
            parked=parked,
            oldest_age_seconds=(now - row[4]) if row[4] is not None else None,
            controllers=[
                {"id": b.id, "host": b.host, "pid": b.pid, "mode": b.mode,
                 "beat_age_seconds": round(now - b.beat_at, 1), "delivered": b.delivered,
                 "circuits": json.loads(b.circuits) if b.circuits else []}
                for b in beats
            ],
        )

    def destinations(self, now: float | None = None) -> list[DestinationDepth]:
        """Each destination's records by state and its oldest record's time: what waits where."""
        now = time.time() if now is None else now
        s = stack.c
        state = sa.case(
            (s.parked == sa.true(), "parked"),
            (s.lease_until > now, "in flight"),
            (sa.and_(s.attempts > 0, s.next_attempt_at > now), "waiting"),
            else_="queued")
        query = (sa.select(s.store_id, s.destination, state.label("state"), sa.func.count(),
                           sa.func.min(sa.case((s.parked == sa.false(), s.created_at))))
                 .group_by(s.store_id, s.destination, state).order_by(s.store_id, s.destination))
        found: dict[tuple[str, str], tuple[dict[str, int], float | None]] = {}
        with self.engine.connect() as conn:
            for store_id, destination, st, count, oldest in conn.execute(query):
                states, first = found.setdefault((store_id, destination), ({}, None))
                states[st] = int(count)
                if oldest is not None and (first is None or oldest < first):
                    found[(store_id, destination)] = (states, float(oldest))
        return [DestinationDepth(store_id, destination, states, oldest)
                for (store_id, destination), (states, oldest) in found.items()]

    # -- heartbeat ---------------------------------------------------------

    def beat(self, worker: str, mode: str, delivered: int, started_at: float,
             circuits: Sequence[dict[str, Any]] = ()) -> None:
        """The controller ``worker`` is alive; ``circuits``: those it holds open (see cartstatus.circuits)."""
        now = time.time()
        values = {"host": socket.gethostname(), "pid": os.getpid(), "mode": mode,
                  "started_at": started_at, "beat_at": now, "delivered": delivered,
                  "circuits": json.dumps(list(circuits)) if circuits else None}
        with self.engine.begin() as conn:
            updated = conn.execute(
                controllers.update().where(controllers.c.id == worker).values(**values)
            ).rowcount
            if not updated:
                conn.execute(controllers.insert().values(id=worker, **values))

    def sign_off(self, worker: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(controllers.delete().where(controllers.c.id == worker))
