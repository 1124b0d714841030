"""No cassette holds a credential: not a store's secret in any form, not a credential header or parameter."""

from __future__ import annotations

import importlib
import urllib.parse
from pathlib import Path

import pytest
import yaml

from .cassettes import (
    CASSETTES,
    CREDENTIAL_HEADERS,
    CREDENTIAL_PARAMS,
    FILTERED,
    FILTERED_TOKEN,
    TOKEN_KEYS,
    settings_mask,
    tokens_filtered,
)

TAPES = sorted(CASSETTES.glob("*/*.yaml"))


def test_there_are_cassettes() -> None:
    assert TAPES, f"no cassettes under {CASSETTES}"


@pytest.mark.parametrize("tape", TAPES, ids=[f"{t.parent.name}/{t.stem}" for t in TAPES])
def test_a_cassette_holds_no_credential(tape: Path) -> None:
    cart = tape.parent.name
    module = importlib.import_module(f"tests.connectors.test_{cart}_cassettes")
    mask = settings_mask(module.SETTINGS, module.CONNECTOR.settings_schema)
    text = tape.read_text()
    assert mask(text) == text, f"{tape} holds a secret of its store's settings"
    for exchange in yaml.safe_load(text)["interactions"]:  # a login's token, handed out by the cart
        body = exchange["response"]["body"]["string"]
        assert tokens_filtered(body) == body, f"{tape} holds a token the cart handed out: {TOKEN_KEYS.pattern}"
    for exchange in yaml.safe_load(text)["interactions"]:
        for part in (exchange["request"], exchange["response"]):
            for name, values in part["headers"].items():
                if name.lower() in CREDENTIAL_HEADERS:
                    assert values == [FILTERED], f"{tape}: header {name} holds {values!r}"
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(exchange["request"]["uri"]).query)
        assert not set(query) & set(CREDENTIAL_PARAMS), f"{tape}: {exchange['request']['uri']} names a credential"


def test_the_check_finds_a_secret_that_is_there(tmp_path: Path) -> None:
    module = importlib.import_module("tests.connectors.test_seti_cassettes")
    mask = settings_mask(module.SETTINGS, module.CONNECTOR.settings_schema)
    leaked = urllib.parse.quote_plus(module.SETTINGS["password"])
    assert mask(f"password={leaked}") != f"password={leaked}"


def test_a_token_a_cart_hands_out_is_filtered() -> None:
    filtered = f'"{FILTERED_TOKEN}"'
    assert tokens_filtered(b'{"token": "eyJ.real.jwt", "id": 1}') == f'{{"token": {filtered}, "id": 1}}'.encode()
    assert tokens_filtered('{"accessToken":"abc"}') == f'{{"accessToken":{filtered}}}'
