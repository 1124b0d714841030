"""The OSS wire format: one published JSON Schema shared by the server, the connector and the docs."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema
import orjson
from cartstatus.problems import dotted
from cartstatus.schema_errors import Wording, explain_all

from .digests import sha256_hex

if TYPE_CHECKING:
    from cartstatus.connector import StatusUpdate

#: A body's errors: unknown keys at the object holding them, missing ones at their own name, and no value
#: that breaks a pattern, a format or a type quoted back (it may be a shopper's email).
WORDING = Wording(unknown_at_key=False, quote_values=False, whose="the OSS")
WIRE_VERSION = 1
SCHEMA_FILE = "status-update.v1.json"
SCHEMA_ID = "https://cartstatus.dev/schemas/oss/status-update.v1.json"


@dataclass(frozen=True)
class WireError:
    """One thing wrong with an update body: the field (dotted path) and what is expected."""

    field: str
    message: str


@cache
def wire_schema() -> dict[str, Any]:
    """The published schema (``cartstatus/oss/schemas/status-update.v1.json``)."""
    text = resources.files("cartstatus.oss").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = wire_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@cache
def _quick_check() -> Any:
    """The same schema in jsonschema-rs (compiled, in Rust): the quick yes for valid bodies.

    Measured on an update body: 1.4 µs a check, against 13 µs with
    fastjsonschema and about 200 µs with jsonschema.
    """
    import jsonschema_rs

    return jsonschema_rs.validator_for(wire_schema(), validate_formats=True)


def validate(body: Any) -> list[WireError]:
    """Every problem with ``body``, each naming its field; empty when the body is valid.

    A valid body is confirmed by the compiled validator (microseconds); only a
    body it refuses is examined by jsonschema, whose errors name the fields.
    """
    if _quick_check().is_valid(body):
        return _instant_errors(body)
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    problems = [WireError(dotted(path, whole="(body)"), message) for path, message in explain_all(errors, WORDING)]
    if problems:
        return problems
    # The two validators disagree (a date-time jsonschema's own checker lets by): the body is still refused,
    # with what is wrong with its dates when that is it.
    instants = _instant_errors(body) if isinstance(body, dict) else []
    return instants or [WireError("(body)", "does not match the OSS's update schema: see /openapi.json")]


#: The instants the OSS stores: from the epoch to the last second ISO 8601 years of four digits can write.
FIRST_YEAR, LAST_YEAR = 1970, 9999


def parse_instant(text: str) -> float:
    """``occurred_at`` as seconds since the epoch; ValueError for what is not a real instant in range.

    A leap second (``:60``), a day that does not exist, or a time zone that moves
    the instant out of years 1970..9999 once converted to UTC are refused
    here, so nothing the schema lets through fails later in the database or on
    the order page.
    """
    try:
        moment = dt.datetime.fromisoformat(text)
        utc = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a real instant: {exc}") from None
    if moment.tzinfo is None:
        raise ValueError("the time zone is missing")
    if not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise ValueError(f"the year in UTC must be {FIRST_YEAR}..{LAST_YEAR}")
    return utc.timestamp()


def _instant_errors(body: dict[str, Any]) -> list[WireError]:
    """What the schema cannot say about a valid body's dates (a real instant, a real day)."""
    errors = []
    try:
        parse_instant(body["occurred_at"])
    except ValueError as exc:
        errors.append(WireError("occurred_at", f"{exc}: expected e.g. 2026-05-01T14:03:00Z"))
    for i, parcel in enumerate(body.get("tracking") or ()):
        if parcel.get("ship_date"):
            try:
                dt.date.fromisoformat(parcel["ship_date"])
            except ValueError:
                errors.append(WireError(f"tracking[{i}].ship_date", "not a real day: expected YYYY-MM-DD"))
    return errors


@dataclass(frozen=True)
class LookupQuery:
    """A shopper's lookup: merchant, order number and one of email or ZIP, as the update bodies carry them."""

    merchant: str
    order: str
    email: str | None
    zip: str | None


@cache
def _lookup_patterns() -> dict[str, re.Pattern[str]]:
    props = wire_schema()["properties"]
    return {name: re.compile(props[key]["pattern"])
            for name, key in (("merchant", "merchant"), ("order", "order_number"), ("email", "email"),
                              ("zip", "zip"))}


def lookup_query(merchant: str, order: str, email: str | None, zip_code: str | None) -> LookupQuery | WireError:
    """The lookup's parameters checked as the update schema checks them (what a lookup cannot match is refused).

    Without email and ZIP the query is valid and matches nothing (an API
    description cannot require one of two parameters).

    The checks are those ``/openapi.json`` gives for the lookup's parameters
    (see :func:`lookup_parameters`); a value is never quoted back.
    """
    given = {"merchant": merchant.strip(), "order": order.strip(), "email": (email or "").strip(),
             "zip": (zip_code or "").strip()}
    for name in ("merchant", "order"):
        if not given[name]:
            return WireError(name, f"{name} is required")
    patterns = _lookup_patterns()
    for name, value in given.items():
        if value and (len(value) > LOOKUP_MAX_LENGTH[name] or not patterns[name].match(value)):
            return WireError(name, f"{name} is not valid: see /openapi.json")
    return LookupQuery(given["merchant"], given["order"], given["email"] or None, given["zip"] or None)


def possible_order_number(text: str) -> bool:
    """Whether ``text`` could be an order number the OSS stores (anything else is looked up in vain)."""
    return len(text) <= LOOKUP_MAX_LENGTH["order"] and bool(_lookup_patterns()["order"].match(text))


#: The longest value of each lookup parameter (the schema's bounds; a pattern bounds all but the email).
LOOKUP_MAX_LENGTH = {"merchant": 63, "order": 64, "email": 254, "zip": 20}


def lookup_parameters() -> list[dict[str, Any]]:
    """The lookup's query parameters for ``/openapi.json``: the checks :func:`lookup_query` makes."""
    props = wire_schema()["properties"]

    def schema(name: str, key: str) -> dict[str, Any]:
        return {"type": "string", "pattern": props[key]["pattern"], "maxLength": LOOKUP_MAX_LENGTH[name]}

    return [
        {"name": "merchant", "in": "query", "required": True, "schema": schema("merchant", "merchant")},
        {"name": "order", "in": "query", "required": True, "schema": schema("order", "order_number")},
        {"name": "email", "in": "query", "schema": schema("email", "email"),
         "description": "the shopper's email; give email or zip"},
        {"name": "zip", "in": "query", "schema": schema("zip", "zip"), "description": "the shopper's ZIP"},
    ]


def canonical_json(body: Any) -> bytes:
    """``body`` as compact JSON with sorted keys, in UTF-8: the form the idempotency digest is taken of.

    For the bodies the schema admits (strings, null, lists, objects, the number
    1) these are the bytes of ``json.dumps(body, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``, which digests stored earlier
    were taken of (tests/oss/test_fast_paths.py,
    ``test_the_digested_bytes_are_those_of_earlier_versions``); orjson writes them
    quicker. What orjson cannot write goes the slow way.
    """
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def body_digest(body: dict[str, Any]) -> str:
    """A digest of the body's meaning (key order and whitespace do not matter)."""
    return sha256_hex(canonical_json(body))


def payload_for(update: StatusUpdate, merchant: str | None = None) -> dict[str, Any]:
    """The wire body for a core :class:`~cartstatus.connector.StatusUpdate`.

    The shopper knows the cart's order number (``cart_order_ref``); the order
    manager's own number travels as ``reference``.
    """
    body: dict[str, Any] = {
        "schema_version": WIRE_VERSION,
        "idempotency_key": update.idempotency_key,
        "order_number": update.cart_order_ref or update.order_number,
        "status": update.cart_status or update.status,
        "occurred_at": update.occurred_at,
    }
    if merchant:
        body["merchant"] = merchant
    if update.order_number and update.order_number != body["order_number"]:
        body["reference"] = update.order_number
    if update.previous_status is not None:
        body["previous_status"] = update.previous_status
    if update.tracking:
        body["tracking"] = [
            {"carrier": t.carrier, "number": t.number, **({"ship_date": t.ship_date} if t.ship_date else {})}
            for t in update.tracking
        ]
    for key in ("note", "email", "zip"):
        value = getattr(update, key)
        if value:
            body[key] = value
    return body
