"""jsonschema's errors said for a person: one translator for the setup file, the matrix and the OSS wire format.

Each error becomes (data path, message), said in the words of a YAML file:
a value as written (``true``, ``'text'``, "a list"), a limit in plain words
(``too long: 300 characters, where at most 100 are allowed``), never
jsonschema's message, which shows Python's repr of the value (``None``,
``{'$env': ''}``, a whole too-long text). Unknown and missing keys can be
pointed at the key itself (the line a person fixes) or at the object holding
it; a value the schema marks ``secret`` is never quoted, nor, where quoting is
off, a value that breaks a pattern, a format or a type (a password, a
shopper's email); a schema ``description`` says what is expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError

from .secrets import mask_url_passwords

#: A message is cut here: a value quoted in it may be long.
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


#: A schema type in the words of someone writing YAML.
_TYPE_WORDS = {"string": "text", "boolean": "true or false", "integer": "a whole number", "number": "a number",
               "object": "a mapping (key: value lines)", "array": "a list", "null": "empty"}
#: A schema format in the same words.
_FORMAT_WORDS = {"date": "a date YYYY-MM-DD", "date-time": "a date and time such as 2027-11-30T10:00:00Z",
                 "email": "an email address", "uri": "an address such as https://example.com"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def quoted(text: str) -> str:
    """Text quoted as YAML quotes it: in single quotes (one inside doubled), in double quotes with escapes
    when it holds a control character."""
    if _CONTROL.search(text):
        return json.dumps(text, ensure_ascii=False)
    return "'" + text.replace("'", "''") + "'"


def as_written(value: Any, limit: int = 80) -> str:
    """A value as a YAML file writes it, never as Python shows it (``true``, not ``True``; no ``datetime.``)."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 40 else text[:40] + "..."
    if isinstance(value, str):
        return quoted(value if len(value) <= limit else value[:limit] + "...")
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "a value"


def type_words(wanted: Any) -> str:
    """``string`` or ``["string", "integer"]`` said as "text" or "text or a whole number"."""
    kinds = wanted if isinstance(wanted, list) else [wanted]
    return " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in kinds)


def _rule(validator: Any, value: Any) -> str:
    """A schema rule's value written plainly: a pattern as written, a list item by item, a type in words."""
    if validator == "type":
        return type_words(value)
    if isinstance(value, list):
        return ", ".join(str(v) if isinstance(v, str) else as_written(v) for v in value)
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else as_written(value)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _said(err: ValidationError) -> str:
    """jsonschema's error in YAML's words: the value as written, a limit in plain words; never its repr."""
    v, limit, instance = err.validator, err.validator_value, err.instance
    value = as_written(instance)
    sized = {"maxLength": ("character", "long", len), "minLength": ("character", "short", len),
             "maxItems": ("item", "many items", len), "minItems": ("item", "few items", len),
             "maxProperties": ("key", "many keys", len), "minProperties": ("key", "few keys", len)}
    if v in sized and isinstance(instance, str | list | dict):
        unit, too, size = sized[v]
        n = size(instance)
        if v == "minLength" and n == 0:
            return f"is empty: write at least {_count(limit, unit)}"
        bound, may = ("at most", "allowed") if v.startswith("max") else ("at least", "needed")
        return f"too {too}: {_count(n, unit)}, where {bound} {limit} {'are' if limit != 1 else 'is'} {may}"
    words: dict[str, str] = {
        "type": f"{value} is not {type_words(limit)}",
        "minimum": f"{value} is less than the minimum of {as_written(limit)}",
        "maximum": f"{value} is greater than the maximum of {as_written(limit)}",
        "exclusiveMinimum": f"{value} is not more than {as_written(limit)}: write a number above it",
        "exclusiveMaximum": f"{value} is not less than {as_written(limit)}: write a number below it",
        "multipleOf": f"{value} is not a multiple of {as_written(limit)}",
        "enum": f"{value} is not one of {_rule('enum', limit)}",
        "const": f"{value} is not {as_written(limit)}",
        "pattern": f"{value} does not match {quoted(str(limit))}",
        "format": f"{value} is not {_FORMAT_WORDS.get(str(limit), f'a valid {limit}')}",
        "uniqueItems": "holds the same item more than once: keep one",
        "oneOf": f"{value} does not fit exactly one of the forms allowed here",
        "anyOf": f"{value} does not fit any of the forms allowed here",
        "not": f"{value} is not allowed here",
        "contains": "holds no item of the kind required",
    }
    if v == "dependentRequired" and isinstance(instance, dict) and isinstance(limit, dict):
        needs = [(key, dep) for key, deps in limit.items() if key in instance for dep in deps if dep not in instance]
        if needs:
            return "; ".join(f"{quoted(dep)} is needed with {quoted(key)}" for key, dep in needs)
    return words.get(str(v), f"{value} is not valid here ({v}: {_rule(v, limit)})")


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
            return [([*path, k], f"unknown key {quoted(str(k))}{allowed}") for k in unknown]
        return [(path, _cut("unknown key " + ", ".join(quoted(str(k)) for k in unknown)) + allowed)]
    if err.validator == "required" and isinstance(err.instance, dict):
        # One error per missing key, but only its message names it: name them all, the caller drops repeats.
        missing = [k for k in err.validator_value if k not in err.instance]
        if wording.missing_at_key:
            return [([*path, k], f"missing: {quoted(k)} is a required property" + (
                f" ({properties[k]['description']})" if isinstance(properties.get(k), dict)
                and properties[k].get("description") else "")) for k in missing]
        return [(path, f"{quoted(k)} is a required property: add it") for k in missing]
    if schema.get("secret") or (not wording.quote_values and err.validator in _VALUE_VALIDATORS):
        message = (f"does not match what {wording.whose} expects "
                   f"({err.validator}: {_rule(err.validator, err.validator_value)})")
        return [(path, message + (f": expected {hint}" if hint else ""))]
    if err.validator == "oneOf" and hint:
        return [(path, f"expected {hint}")]
    if err.validator in ("pattern", "format") and hint:
        broken = (f"does not match {quoted(str(err.validator_value))}" if err.validator == "pattern"
                  else f"is not a {quoted(str(err.validator_value))}")
        return [(path, mask_url_passwords(f"{as_written(err.instance)} is not valid: expected {hint}; it {broken}"))]
    message = _cut(_said(err))
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
