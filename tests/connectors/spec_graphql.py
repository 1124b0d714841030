"""Requests checked against a cart's GraphQL schema (SDL) with graphql-core, for ``check_request``.

``GraphQLCheck("shopify-admin-2026-07.graphql", path=r"/admin/api/[0-9]{4}-[0-9]{2}/graphql\\.json")`` is
called with each ``httpx.Request`` a connector sends (the kit's ``check_request=``, or a test's own
transport) and raises, with graphql-core's words, when the request breaks the schema: not a JSON POST to
the endpoint, a missing credential header, a document that does not parse or validate (an unknown field,
a wrong argument, a missing required argument), or variables that do not coerce to the operation's
variable types (a missing required input field, a wrong enum value, a string where a list is wanted).

The schema is built once per test session (Shopify's takes 5 to 20 s).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import graphql
import httpx
from graphql.execution.values import get_variable_values

from .specs import spec_file


@functools.cache
def load_schema(path: Path) -> graphql.GraphQLSchema:
    # Shopify's own schema breaks a rule graphql-core 3.3 checks (an implementation deprecated where its
    # interface is not): it is the cart's description as published, so it is taken as valid.
    return graphql.build_schema(path.read_text(encoding="utf-8"), assume_valid=True)


class RequestBreaksSchema(ValueError):
    """A request the cart's GraphQL schema does not allow."""


def check_document(schema: graphql.GraphQLSchema, query: str, variables: Any,
                   operation_name: str | None = None) -> None:
    """Raise :class:`RequestBreaksSchema` unless ``query`` validates and ``variables`` coerce against ``schema``."""
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError as exc:
        raise RequestBreaksSchema(f"the document does not parse: {exc.message}") from None
    problems = graphql.validate(schema, document)
    if problems:
        raise RequestBreaksSchema("; ".join(p.message for p in problems))
    if variables is not None and not isinstance(variables, dict):
        raise RequestBreaksSchema(f"variables must be a JSON object, not {type(variables).__name__}")
    operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        raise RequestBreaksSchema(f"{len(operations)} operations to run; name one with operationName")
    coerced = get_variable_values(schema, operations[0].variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        raise RequestBreaksSchema("; ".join(e.message for e in coerced))


class GraphQLCheck:
    """Raises when a request is not a valid GraphQL request to the schema ``name`` (in the specs folder)."""

    def __init__(self, name: str, *, path: str, credential_header: str | None = None) -> None:
        self.name = name
        self.path = re.compile(path)
        self.credential_header = credential_header

    def schema(self) -> graphql.GraphQLSchema:
        return load_schema(spec_file(self.name))  # a visible skip when the schema is not here

    def __call__(self, request: httpx.Request) -> None:
        if request.method != "POST":
            raise RequestBreaksSchema(f"{request.method}: GraphQL requests are POSTed")
        if not self.path.fullmatch(request.url.path):
            raise RequestBreaksSchema(f"{request.url.path} is not the GraphQL endpoint ({self.path.pattern})")
        if self.credential_header and not request.headers.get(self.credential_header):
            raise RequestBreaksSchema(f"no {self.credential_header} header")
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise RequestBreaksSchema(f"content type {request.headers.get('content-type')!r}, not application/json")
        try:
            body = json.loads(request.content)
        except ValueError:
            raise RequestBreaksSchema("the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise RequestBreaksSchema("the body has no query")
        unknown = set(body) - {"query", "variables", "operationName"}
        if unknown:
            raise RequestBreaksSchema(f"the body has fields a GraphQL request does not: {sorted(unknown)}")
        check_document(self.schema(), body["query"], body.get("variables"), body.get("operationName"))
