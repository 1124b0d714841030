"""What the OSS does, apart from HTTP: accounts, storing updates, looking orders up."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import nh3
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .storage import accounts, orders, updates

MERCHANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TOKEN_PREFIX = "oss_"

#: Tags a merchant's header and footer may use; everything else (scripts, styles, handlers) is dropped.
PAGE_TAGS = {"a", "b", "br", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p",
             "small", "span", "strong", "ul"}
PAGE_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "*": {"class"}}


class AccountError(ValueError):
    """An account command that cannot be done (unknown merchant, bad name, duplicate)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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


def normalize_zip(value: str) -> str:
    """Letters and digits only, upper case; a US ZIP+4 matches its 5-digit ZIP."""
    text = re.sub(r"[^A-Za-z0-9]", "", value).upper()
    return text[:5] if text.isdigit() and len(text) == 9 else text


def lookup_digest(account_id: int, kind: str, value: str) -> str:
    norm = normalize_email(value) if kind == "email" else normalize_zip(value)
    return hashlib.sha256(f"{account_id}:{kind}:{norm}".encode()).hexdigest()


def parse_instant(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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
    expires = row.expires if isinstance(row.expires, dt.date) else dt.date.fromisoformat(str(row.expires))
    return Account(row.id, row.merchant, row.display_name, row.token_hint, expires, row.revoked_at,
                   row.created_at, row.header_html, row.footer_html)


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


@dataclass(frozen=True)
class TrackingView:
    carrier: str
    number: str
    ship_date: str | None
    url: str | None


@dataclass(frozen=True)
class HistoryEntry:
    status: str
    previous_status: str | None
    at: float
    note: str | None

    @property
    def at_text(self) -> str:
        return dt.datetime.fromtimestamp(self.at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class OrderView:
    """What a shopper (or the store) may see of one order."""

    merchant: str
    order_number: str
    status: str
    status_at: float
    history: tuple[HistoryEntry, ...]
    tracking: tuple[TrackingView, ...]

    def as_dict(self) -> dict[str, Any]:
        def iso(ts: float) -> str:
            return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

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

    def __init__(self, engine: Engine, today: Any = dt.date.today) -> None:
        self.engine = engine
        self.today = today

    # -- accounts ----------------------------------------------------------

    def create_account(self, merchant: str, expires: dt.date, display_name: str | None = None) -> tuple[Account, str]:
        """A new account and its token (the only time the token is seen)."""
        if not MERCHANT_RE.match(merchant):
            raise AccountError(f"{merchant!r} is not a merchant name: use 1-63 lower-case letters, digits "
                               "and -, starting with a letter or digit (it is part of the shopper's URL)")
        token = new_token()
        try:
            with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
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

    def account_for_token(self, token: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.token_hash == hash_token(token))).first()
        return _account(row) if row is not None else None

    # -- storing updates ---------------------------------------------------

    def ingest(self, jobs: Sequence[IngestJob]) -> list[IngestResult]:
        """Store many updates in one transaction (group commit: one disk sync for all).

        When the batch fails (another worker stored the same key or order at the
        same instant), each job is retried alone so one collision fails nobody.
        """
        try:
            with self.engine.begin() as conn:
                return self._ingest(conn, jobs)
        except IntegrityError:
            if len(jobs) == 1:
                # The row that collided is committed now: reading it answers replay or conflict.
                with self.engine.begin() as conn:
                    return self._ingest(conn, jobs)
            return [self.ingest([job])[0] for job in jobs]

    def _ingest(self, conn: Connection, jobs: Sequence[IngestJob]) -> list[IngestResult]:
        now = time.time()
        today = self.today()
        by_token: dict[str, Account | None] = {}
        results: list[IngestResult] = []
        for job in jobs:
            if job.token_hash not in by_token:
                row = conn.execute(sa.select(accounts).where(accounts.c.token_hash == job.token_hash)).first()
                by_token[job.token_hash] = _account(row) if row is not None else None
            account = by_token[job.token_hash]
            if account is None or account.revoked:
                results.append(IngestResult("unauthorized"))
                continue
            if not account.active(today):
                results.append(IngestResult("lapsed", account))
                continue
            body = job.body
            if body.get("merchant") not in (None, account.merchant):
                results.append(IngestResult("wrong_merchant", account))
                continue
            results.append(self._store(conn, account, job, now))
        return results

    def _store(self, conn: Connection, account: Account, job: IngestJob, now: float) -> IngestResult:
        body = job.body
        key = body["idempotency_key"]
        reply = {"result": "OK", "idempotency_key": key, "order_number": body["order_number"],
                 "status": body["status"]}
        seen = conn.execute(sa.select(updates.c.body_digest).where(
            updates.c.account_id == account.id, updates.c.idempotency_key == key)).first()
        if seen is not None:
            if hmac.compare_digest(seen.body_digest, job.digest):
                return IngestResult("replayed", account, reply)
            return IngestResult("conflict", account)
        occurred = parse_instant(body["occurred_at"])
        order = conn.execute(sa.select(orders.c.id, orders.c.status_at).where(
            orders.c.account_id == account.id, orders.c.order_number == body["order_number"])).first()
        lookup: dict[str, Any] = {}
        if body.get("email"):
            lookup["email_digest"] = lookup_digest(account.id, "email", body["email"])
        if body.get("zip"):
            lookup["zip_digest"] = lookup_digest(account.id, "zip", body["zip"])
        if body.get("reference"):
            lookup["reference"] = body["reference"]
        if order is None:
            inserted = conn.execute(orders.insert().values(
                account_id=account.id, order_number=body["order_number"], status=body["status"],
                status_at=occurred, created_at=now, updated_at=now, **lookup)).inserted_primary_key
            assert inserted is not None
            order_id = inserted[0]
        else:
            order_id = order.id
            values = dict(lookup, updated_at=now)
            # An update that arrives late does not overwrite a newer status.
            if occurred >= order.status_at:
                values.update(status=body["status"], status_at=occurred)
            conn.execute(orders.update().where(orders.c.id == order_id).values(**values))
        conn.execute(updates.insert().values(
            account_id=account.id, order_id=order_id, idempotency_key=key, body_digest=job.digest,
            status=body["status"], previous_status=body.get("previous_status"), occurred_at=occurred,
            received_at=now, note=body.get("note"),
            tracking=json.dumps(body["tracking"], separators=(",", ":")) if body.get("tracking") else None))
        return IngestResult("stored", account, reply)

    # -- reading -----------------------------------------------------------

    def lookup(self, merchant: str, order_number: str, *, email: str | None = None,
               zip_code: str | None = None) -> OrderView | None:
        """The order when the email or ZIP matches; None for every other case alike.

        A wrong email, a wrong ZIP, an unknown order and an unknown or revoked
        merchant all answer None, so a lookup tells nothing about other orders.
        """
        if not (email or zip_code):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(orders, accounts.c.merchant, accounts.c.revoked_at)
                .join(accounts, accounts.c.id == orders.c.account_id)
                .where(accounts.c.merchant == merchant, orders.c.order_number == order_number)).first()
            # Compare a digest even when nothing was found, so both take the same time.
            account_id = row.account_id if row is not None else 0
            given = lookup_digest(account_id, "email", email) if email else lookup_digest(account_id, "zip",
                                                                                          zip_code or "")
            stored = (row.email_digest if email else row.zip_digest) if row is not None else None
            matched = hmac.compare_digest(given, stored or "0" * 64)
            if row is None or row.revoked_at is not None or not matched:
                return None
            return self._view(conn, row, merchant)

    def order_for_account(self, account: Account, order_number: str) -> OrderView | None:
        """The store's own order (authenticated by its token): never another account's."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(orders).where(orders.c.account_id == account.id,
                                                       orders.c.order_number == order_number)).first()
            return self._view(conn, row, account.merchant) if row is not None else None

    @staticmethod
    def _view(conn: Connection, row: Any, merchant: str) -> OrderView:
        history = conn.execute(sa.select(updates.c.status, updates.c.previous_status, updates.c.occurred_at,
                                         updates.c.note, updates.c.tracking)
                               .where(updates.c.order_id == row.id)
                               .order_by(updates.c.occurred_at, updates.c.id)).all()
        tracking: dict[tuple[str, str], TrackingView] = {}
        for h in history:
            for t in json.loads(h.tracking) if h.tracking else ():
                key = (t["carrier"].upper(), t["number"])
                tracking[key] = TrackingView(t["carrier"], t["number"], t.get("ship_date"),
                                             tracking_url(t["carrier"], t["number"]))
        return OrderView(
            merchant=merchant, order_number=row.order_number, status=row.status, status_at=row.status_at,
            history=tuple(HistoryEntry(h.status, h.previous_status, h.occurred_at, h.note) for h in history),
            tracking=tuple(tracking.values()))


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


def tracking_url(carrier: str, number: str) -> str | None:
    """The carrier's tracking page for ``number``, or None for a carrier it does not know."""
    from urllib.parse import quote

    key = re.sub(r"[^A-Z]", "", carrier.upper())
    key = _CARRIER_ALIASES.get(key, key)
    template = CARRIER_URLS.get(key)
    return template.format(quote(number.replace(" ", ""), safe="")) if template else None
