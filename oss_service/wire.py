"""The OSS wire format: one published JSON Schema shared by the server, the connector and the docs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema
import orjson
from cartstatus.problems import dotted
from cartstatus.schema_errors import Wording, explain_all

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
def _fast_check() -> Any:
    """The same schema compiled to Python (fastjsonschema): the quick yes for valid bodies.

    It is compiled as draft-07, which has every keyword the schema uses.
    """
    import fastjsonschema

    schema = dict(wire_schema(), **{"$schema": "http://json-schema.org/draft-07/schema#"})
    return fastjsonschema.compile(schema)


def validate(body: Any) -> list[WireError]:
    """Every problem with ``body``, each naming its field; empty when the body is valid.

    A valid body is confirmed by the compiled validator (microseconds); only a
    body it refuses is examined by jsonschema, whose errors name the fields.
    """
    import fastjsonschema

    try:
        _fast_check()(body)
    except fastjsonschema.JsonSchemaException as exc:
        refusal = str(exc)
    else:
        return []
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    problems = [WireError(dotted(path, whole="(body)"), message) for path, message in explain_all(errors, WORDING)]
    # Should the two validators ever disagree, the body is still refused.
    return problems or [WireError("(body)", refusal[:200])]


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
    return hashlib.sha256(canonical_json(body)).hexdigest()


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
