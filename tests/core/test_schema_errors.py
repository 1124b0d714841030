"""The one translator from jsonschema's errors to messages: its wordings, and what it never quotes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cartstatus import ConfigError, load_config
from cartstatus.schema_errors import PLAIN, Wording, explain_all

from ..conftest import base_setup

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["id", "key"], "properties": {
    "id": {"type": "string", "description": "the store's id"},
    "key": {"type": "string", "pattern": "^[a-z]+$", "secret": True},
    "mail": {"type": "string", "pattern": "^[^@]+@[^@]+$", "description": "an email address"},
}}


def said(data: dict[str, Any], wording: Wording = PLAIN) -> list[tuple[list[Any], str]]:
    return explain_all(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), wording)


def test_missing_and_unknown_keys_point_at_the_key_or_at_the_object() -> None:
    data = {"colour": "red"}
    assert said(data) == [
        (["colour"], "unknown key 'colour'; allowed: id, key, mail"),
        (["id"], "missing: 'id' is a required property (the store's id)"),
        (["key"], "missing: 'key' is a required property"),
    ]
    at_object = said(data, Wording(unknown_at_key=False, missing_at_key=False))
    assert [path for path, _ in at_object] == [[], [], []]
    assert [message for _, message in at_object][1:] == ["'id' is a required property: add it",
                                                         "'key' is a required property: add it"]


def test_a_secret_or_unquotable_value_is_never_echoed() -> None:
    data = {"id": "main", "key": "Hunter2-Secret", "mail": "shopper.at.example.com"}
    quoted = dict((path[0], message) for path, message in said(data))
    assert "Hunter2" not in quoted["key"] and "does not match what the schema expects (pattern" in quoted["key"]
    assert quoted["mail"] == ("'shopper.at.example.com' is not valid: expected an email address; "
                              "it does not match '^[^@]+@[^@]+$'")
    hidden = dict((path[0], message) for path, message in said(data, Wording(quote_values=False, whose="the OSS")))
    assert "shopper" not in hidden["mail"]
    assert hidden["mail"] == "does not match what the OSS expects (pattern: ^[^@]+@[^@]+$): expected an email address"


def test_two_missing_connector_settings_are_each_named_once(write_setup: Callable[..., Path]) -> None:
    data = base_setup()
    del data["stores"][0]["connector"]["url"], data["stores"][0]["connector"]["user"]
    with pytest.raises(ConfigError) as caught:
        load_config(write_setup(data))
    assert [p.field for p in caught.value.problems] == ["stores[0].connector.url", "stores[0].connector.user"]


#: What Python shows that a YAML file never says: reprs of None, booleans, dates, bytes, lists, dicts, a deque.
PYTHON_REPR = re.compile(r"datetime\.|\bNone\b|\bTrue\b|\bFalse\b|b'|\{'|\['|deque\(|is not of type|was unexpected")
RULES = {"type": "object", "additionalProperties": False, "properties": {
    "label": {"type": "string", "maxLength": 100},
    "code": {"type": "string", "minLength": 3},
    "empty": {"type": "string", "minLength": 1},
    "tags": {"type": "array", "maxItems": 2, "uniqueItems": True},
    "few": {"type": "array", "minItems": 2},
    "region": {"enum": ["eu", "us"]},
    "version": {"const": 1},
    "count": {"type": "integer", "minimum": 1, "multipleOf": 5},
    "wait": {"type": "number", "exclusiveMinimum": 0},
    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    "never": {"not": {"type": "boolean"}},
    "pair": {"type": "object", "dependentRequired": {"user": ["password"]}, "minProperties": 1},
    "kind": {"type": ["string", "integer"]},
    "day": {"type": "string", "format": "date"},
}}


@pytest.mark.parametrize(("field", "value", "said"), [
    ("label", "x" * 300, "too long: 300 characters, where at most 100 are allowed"),
    ("code", "ab", "too short: 2 characters, where at least 3 are needed"),
    ("empty", "", "is empty: write at least 1 character"),
    ("tags", ["a", "b", "c"], "too many items: 3 items, where at most 2 are allowed"),
    ("tags", ["a", "a"], "holds the same item more than once: keep one"),
    ("few", ["a"], "too few items: 1 item, where at least 2 are needed"),
    ("region", "mars", "'mars' is not one of eu, us"),
    ("region", None, "an empty value is not one of eu, us"),
    ("version", True, "true is not 1"),
    ("count", 0, "0 is less than the minimum of 1"),
    ("count", 7, "7 is not a multiple of 5"),
    ("wait", 0, "0 is not more than 0: write a number above it"),
    ("either", {"a": 1}, "a mapping does not fit any of the forms allowed here"),
    ("never", False, "false is not allowed here"),
    ("pair", {"user": "om"}, "'password' is needed with 'user'"),
    ("pair", {}, "too few keys: 0 keys, where at least 1 is needed"),
    ("kind", [1], "a list is not text or a whole number"),
    ("day", "2027-02-30", "'2027-02-30' is not a date YYYY-MM-DD"),
    ("label", "it's", None),
])
def test_each_rule_is_said_in_yaml_s_words_never_python_s(field: str, value: object, said: str | None) -> None:
    errors = explain_all(jsonschema.Draft202012Validator(
        RULES, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).iter_errors({field: value}))
    if said is None:
        assert errors == []
        return
    assert [path for path, _ in errors] == [[field]]
    message = errors[0][1]
    assert message == said
    assert not PYTHON_REPR.search(message), message


def test_a_too_long_value_is_not_quoted_whole_even_where_values_are_quoted() -> None:
    long = "Shipped and on its way " * 20
    [(path, message)] = explain_all(jsonschema.Draft202012Validator(RULES).iter_errors({"label": long}))
    assert path == ["label"]
    assert message == f"too long: {len(long)} characters, where at most 100 are allowed"
    assert "Shipped" not in message
    # Where values are never quoted (a connector's settings, the OSS's wire format), the limit is said all the same.
    hidden = explain_all(jsonschema.Draft202012Validator(RULES).iter_errors({"label": long}),
                         Wording(quote_values=False, whose="the OSS"))
    assert hidden == [(["label"], message)]


def test_text_is_quoted_as_yaml_quotes_it() -> None:
    assert said({"id": 5, "key": "k", "mail": "it's"}) == [
        (["id"], "5 is not text (expected the store's id)"),
        (["mail"], "'it''s' is not valid: expected an email address; it does not match '^[^@]+@[^@]+$'")]
    assert said({"id": "a", "key": "k", "mail": "tab\there"})[0][1].startswith('"tab\\there" is not valid')


def test_a_setup_file_s_errors_name_the_field_in_yaml_terms(write_setup: Callable[..., Path]) -> None:
    data = base_setup()
    data["stores"].append({"id": "outlet", "cart": "americart", "oss": {
        "url": "https://oss.example", "merchant": "outlet", "token": "t", "subscription_expires": {"on": "monday"}}})
    data["status_events"][0]["order_status"] = "S" * 150
    with pytest.raises(ConfigError) as caught:
        load_config(write_setup(data))
    said_of = {p.field: p.message for p in caught.value.problems}
    assert said_of == {
        "status_events[0].order_status": "too long: 150 characters, where at most 100 are allowed (expected the "
                                         "status label the event sets (1 to 100 characters, no control characters))",
        "stores[1].oss.subscription_expires": "a mapping is not text (expected the subscription's last day, a date "
                                              "YYYY-MM-DD such as 2027-11-30 (quoted or not))",
    }
    assert not PYTHON_REPR.search(str(caught.value)), caught.value
