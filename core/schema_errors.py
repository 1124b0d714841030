"""jsonschema's errors said for a person: one translator for the setup file, the matrix and the OSS wire format.

Each error becomes (data path, message). Unknown and missing keys can be
pointed at the key itself (the line a person fixes) or at the object holding
it; a value the schema marks ``secret`` is never quoted, nor, where quoting is
off, a value that breaks a pattern, a format or a type (a password, a
shopper's email); a schema ``description`` says what is expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError

from .secrets import mask_url_passwords

#: A message is cut here: jsonschema quotes whole values, and a value may be huge.
MESSAGE_LIMIT = 200
#: Validators whose failing value may be a secret or a shopper's data.
_VALUE_VALIDATORS = ("pattern", "format", "type")

Explained = tuple[list[Any], str]


@dataclass(frozen=True)
class Wording:
    """How one kind of file says its errors (each keeps the words its readers know).

    ``unknown_at_key``/``missing_at_key``: point an unknown or a missing key at
    the key itself (jsonschema reports both at the object holding it).
    ``quote_values``: False never quotes a value that breaks a pattern, a format
    or a type; the message then says what ``whose`` expects instead.
    """

    unknown_at_key: bool = True
    missing_at_key: bool = True
    quote_values: bool = True
    whose: str = "the schema"


#: Every key pointed at itself, every value quoted: the setup file's wording.
PLAIN = Wording()


def _cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def explain(err: ValidationError, wording: Wording = PLAIN) -> list[Explained]:
    """(data path, message) pairs for one error, said as ``wording`` says."""
    path = list(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    hint = schema.get("description")
    properties = schema.get("properties", {})
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = f"; allowed: {', '.join(sorted(properties))}" if properties else ""
        unknown = [k for k in err.instance if k not in properties]
        if wording.unknown_at_key and unknown:
            return [([*path, k], f"unknown key {k!r}{allowed}") for k in unknown]
        return [(path, _cut(err.message) + allowed)]
    if err.validator == "required" and isinstance(err.instance, dict):
        # One error per missing key, but only its message names it: name them all, the caller drops repeats.
        missing = [k for k in err.validator_value if k not in err.instance]
        if wording.missing_at_key:
            return [([*path, k], f"missing: {k!r} is a required property" + (
                f" ({properties[k]['description']})" if isinstance(properties.get(k), dict)
                and properties[k].get("description") else "")) for k in missing]
        return [(path, f"{k!r} is a required property: add it") for k in missing]
    if schema.get("secret") or (not wording.quote_values and err.validator in _VALUE_VALIDATORS):
        message = f"does not match what {wording.whose} expects ({err.validator}: {err.validator_value})"
        return [(path, message + (f": expected {hint}" if hint else ""))]
    if err.validator == "oneOf" and hint:
        return [(path, f"expected {hint}")]
    if err.validator in ("pattern", "format") and hint:
        broken = (f"does not match {err.validator_value!r}" if err.validator == "pattern"
                  else f"is not a {err.validator_value!r}")
        value = _cut(repr(err.instance), 80)
        return [(path, mask_url_passwords(f"{value} is not valid: expected {hint}; it {broken}"))]
    message = _cut(err.message)
    if hint:
        message += f" (expected {hint})"
    return [(path, mask_url_passwords(message))]


def explain_all(errors: Iterable[ValidationError], wording: Wording = PLAIN) -> list[Explained]:
    """Every error explained, each (path, message) once, in the order found."""
    seen: dict[tuple[str, str], Explained] = {}
    for err in errors:
        for path, message in explain(err, wording):
            seen.setdefault((repr(path), message), (path, message))
    return list(seen.values())
