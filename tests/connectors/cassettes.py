"""vcrpy cassettes of each connector's exchanges with its simulator, replayed with no cart running.

A cart's cassettes live in ``tests/connectors/cassettes/<cart>/<name>.yaml``.
They are recorded against the connector's simulator and kept in the tree:
``make cassettes`` (``CARTSTATUS_RECORD_CASSETTES=1``) records them again, from the simulator;
every other run replays them, and a request the cassette does not hold fails
the test (vcrpy's ``record_mode="none"``).

Credentials never reach a cassette: every header that carries one is
replaced, every query parameter that can hold one is dropped, and every
secret of the store's settings is masked, in any form (URL-encoded, in a
basic-auth header...), in the URIs, bodies and headers of both the requests
and the replies. ``test_cassettes.py`` reads every cassette for the secrets of
the settings it was recorded with: each cart's replay tests, in
``tests/connectors/test_<cart>_cassettes.py``, name them in ``SETTINGS`` and the
connector class in ``CONNECTOR`` (``test_seti_cassettes.py`` is the pattern).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import vcr
from cartstatus.secrets import SecretMask, wrap_secrets

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_ENV = "CARTSTATUS_RECORD_CASSETTES"

#: Headers that carry a credential in some cart's API; their values are replaced in a cassette.
CREDENTIAL_HEADERS = ("authorization", "x-auth-token", "x-shopify-access-token", "cookie", "set-cookie",
                      "vendure-auth-token", "x-api-key")
#: Query parameters that carry a credential (WooCommerce over plain HTTP, PrestaShop's ws_key).
CREDENTIAL_PARAMS = ("consumer_key", "consumer_secret", "ws_key", "token", "access_token", "api_key")
FILTERED = "FILTERED"


def recording() -> bool:
    return os.environ.get(RECORD_ENV) == "1"


def settings_mask(settings: Mapping[str, Any], schema: Mapping[str, Any]) -> SecretMask:
    """A mask over the secrets of ``settings`` as the setup file would mark them with ``schema``."""
    return SecretMask.of_settings(wrap_secrets(dict(settings), dict(schema)))


#: JSON keys whose values are credentials a cart hands out (a login's token): replaced in a recorded reply.
TOKEN_KEYS = re.compile(r'("(?:token|access_token|refresh_token|accessToken|refreshToken)"\s*:\s*)"[^"]*"')
#: What a token becomes: still a JWT, unsigned and good until 2100, so a connector reading its ``exp`` replays.
FILTERED_TOKEN = "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.FILTERED"


def tokens_filtered(body: Any) -> Any:
    """``body`` with the value of every token key replaced: a login's token is no setting, so no mask knows it."""
    if isinstance(body, bytes):
        return tokens_filtered(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    return TOKEN_KEYS.sub(rf'\1"{FILTERED_TOKEN}"', body) if isinstance(body, str) else body


def _masker(mask: SecretMask) -> tuple[Any, Any]:
    def text(value: Any) -> Any:
        if isinstance(value, bytes):
            return mask(value.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return mask(value) if isinstance(value, str) else value

    def request(req: Any) -> Any:
        req.uri = text(req.uri)
        req.body = text(req.body)
        return req

    def response(resp: dict[str, Any]) -> dict[str, Any]:
        resp["body"]["string"] = text(tokens_filtered(resp["body"]["string"]))
        resp["headers"] = {k: [FILTERED if k.lower() in CREDENTIAL_HEADERS else text(v) for v in vs]
                           for k, vs in resp["headers"].items()}
        return resp

    return request, response


@contextlib.contextmanager
def cassette(cart: str, name: str, *, settings: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[Any]:
    """Replay (or, with ``CARTSTATUS_RECORD_CASSETTES=1``, record) ``cassettes/<cart>/<name>.yaml``.

    ``settings`` and ``schema``: the store settings the exchanges were made with and the connector's settings
    schema, whose secrets are masked out of everything recorded.
    """
    path = CASSETTES / cart / f"{name}.yaml"
    if not recording() and not path.exists():
        raise AssertionError(f"cassette {path} is missing: record it with `make cassettes` "
                             f"({RECORD_ENV}=1 pytest tests/connectors/test_{cart}_cassettes.py)")
    if recording():
        path.unlink(missing_ok=True)  # vcrpy's "all" adds to a cassette: recorded again, it starts empty
    request, response = _masker(settings_mask(settings, schema))
    recorder = vcr.VCR(
        record_mode="all" if recording() else "none",
        filter_headers=[(h, FILTERED) for h in CREDENTIAL_HEADERS],
        filter_query_parameters=list(CREDENTIAL_PARAMS),
        before_record_request=request,
        before_record_response=response,
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
        decode_compressed_response=True,
    )
    with recorder.use_cassette(str(path)) as tape:
        yield tape
