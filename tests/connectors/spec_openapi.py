"""Requests checked against a cart's official OpenAPI description with openapi-core, for ``check_request``.

``OpenApiCheck("bigcommerce-orders-v2.openapi.yml", server="https://shop.test")`` is called with each
``httpx.Request`` a connector sends (the kit's ``check_request=``, or a test's own transport) and raises, with
openapi-core's words, when the request breaks the description: an unknown path or method, a path parameter of
the wrong type, a missing required header or credential, a body that does not match its schema.

openapi-core's ``contrib.requests`` needs the ``requests`` package; :class:`HttpxOpenApiRequest` is the same
adapter for ``httpx``. ``server`` is where the connector's settings send (its ``api_base``): a request under it
is matched as if sent to the description's own server, so a test may name any host.

Where the description says a rule only in its prose, :data:`PROSE_RULES` adds it to the schema (and says so):
BigCommerce's shipment schema lists no ``required`` although its text says ``order_address_id`` and ``items``
are required, and ``status_id``'s 0..14 lives in a table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from .specs import spec_file


def _shipment_rules(schemas: dict[str, Any]) -> None:
    # "Required Fields: order_address_id, items" and "order_product_id (required), quantity (required)".
    post = schemas["orderShipment_Post"]
    post["required"] = ["order_address_id", "items"]
    post["properties"]["items"]["minItems"] = 1
    post["properties"]["items"]["items"]["required"] = ["order_product_id", "quantity"]


def _status_rules(schemas: dict[str, Any]) -> None:
    # GET /order_statuses's table: the ids are 0..14.
    for part in schemas["order_Put"]["allOf"]:
        if "status_id" in part.get("properties", {}):
            part["properties"]["status_id"].update(minimum=0, maximum=14)


#: Rules a description states only in prose, by file: each made part of the schema before it is loaded.
PROSE_RULES: dict[str, tuple[Callable[[dict[str, Any]], None], ...]] = {
    "bigcommerce-orders-v2.openapi.yml": (_shipment_rules, _status_rules),
}


@functools.cache
def load_openapi(path: Path) -> tuple[OpenAPI, str]:
    """The description at ``path`` with its prose rules, and its server's origin (``https://host``);
    built once per test session (it takes a while)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for rule in PROSE_RULES.get(path.name, ()):
        rule(data["components"]["schemas"])
    server = httpx.URL(data["servers"][0]["url"])
    return OpenAPI.from_dict(data), f"{server.scheme}://{server.host}"


class HttpxOpenApiRequest:
    """An ``httpx.Request`` in openapi-core's request protocol, as if sent to ``host_url``."""

    def __init__(self, request: httpx.Request, host_url: str, path: str) -> None:
        self.request = request
        self.host_url = host_url
        self.path = path
        self.full_url_pattern = host_url + path
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.multi_items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self.request.content or None

    @property
    def content_type(self) -> str:
        return self.request.headers.get("content-type", "application/octet-stream").lower()


class OpenApiCheck:
    """Raises with openapi-core's message when a request breaks the description ``name`` (in the specs folder)."""

    def __init__(self, name: str, server: str) -> None:
        self.name = name
        self.server = server.rstrip("/")

    def description(self) -> tuple[OpenAPI, str]:
        return load_openapi(spec_file(self.name))  # a visible skip when the description is not here

    def adapt(self, request: httpx.Request) -> HttpxOpenApiRequest:
        url = str(request.url.copy_with(query=None, fragment=None))
        if not url.startswith(self.server + "/"):
            raise ValueError(f"{request.method} {url} is not under {self.server}, where the connector should send")
        return HttpxOpenApiRequest(request, self.description()[1], url.removeprefix(self.server))

    def __call__(self, request: httpx.Request) -> None:
        self.description()[0].validate_request(self.adapt(request))
