"""The one translator from jsonschema's errors to messages: its wordings, and what it never quotes."""

from __future__ import annotations

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
