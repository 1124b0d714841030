"""Checks a request against a Swagger 2.0 API description (Magento's admin REST), for the kit's ``check_request``.

openapi-core reads OpenAPI 3.0 and 3.1 only, and the Python validators of Swagger 2.0 *requests* are no longer
kept: bravado-core (Yelp) and flex have had no real maintenance for years and pin old jsonschema;
swagger-spec-validator checks a description, not requests against it. So this module does the small part the
tests need itself, with the ``jsonschema`` library (kept, and already the project's):

- the request's path, less the base path ``/rest/<store_code>`` (the file's own ``basePath`` is
  ``/rest/default``; the store code is the store's setting), matches a path template, and the method exists;
- path parameters match their declared type (``integer``: digits);
- required query parameters are there, declared ones have their type, and no undeclared one is sent (Magento's
  descriptions list each ``searchCriteria[...]`` parameter they take, with its indices);
- the ``in: body`` parameter's schema validates the JSON body with a Draft 4 validator (Swagger 2.0's schemas
  are a Draft 4 subset), its ``$ref``s to ``#/definitions/...`` resolved through a ``referencing`` registry
  holding the whole document: required fields, types, ``additionalProperties`` as declared. Magento's schemas
  declare no ``additionalProperties``; the top level of a body names the service method's arguments, so a key
  there that the description does not declare (a wrong wrapper such as ``{"entity": ...}`` for
  ``{"statusHistory": ...}``) is refused too (``closed_bodies``). A body where none is declared is refused.

The description's ``securityDefinitions`` (an ``api_key`` header) is not Magento's real scheme (a bearer token):
security is not checked. The description is loaded once per process per file (it is 37,000 lines).
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DOC_URI = "urn:cartstatus:swagger-description"


class RequestProblem(ValueError):
    """The request breaks the API description; the message says how."""


@functools.lru_cache(maxsize=4)
def load_description(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        document = yaml.load(handle, Loader=loader)
    if not isinstance(document, dict) or document.get("swagger") != "2.0":
        raise ValueError(f"{path} is not a Swagger 2.0 description")
    return document


def _pointer(*parts: str | int) -> str:
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Operation:
    template: str
    pattern: re.Pattern[str]
    method: str
    spec: dict[str, Any]
    pointer: str  # JSON pointer to the operation in the document


@dataclass
class SwaggerCheck:
    """``SwaggerCheck(path, "/rest/default")(request)`` raises :class:`RequestProblem` when the request breaks
    the description at ``path``; pass it as ``check_request=`` to the kit."""

    path: Path | str
    base_path: str = "/rest/default"
    closed_bodies: bool = True
    operations: list[Operation] = field(init=False)
    registry: Registry[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.document = load_description(str(self.path))
        self.operations = _operations(str(self.path))
        self.registry = _registry(str(self.path))

    def __call__(self, request: httpx.Request) -> None:
        path = urllib.parse.unquote(request.url.path)
        base = self.base_path.rstrip("/")
        if not path.startswith(base + "/"):
            raise RequestProblem(f"{path} is not under the base path {base}")
        rest = path[len(base):]
        matched = [(op, m) for op in self.operations if (m := op.pattern.fullmatch(rest))]
        if not matched:
            raise RequestProblem(f"no path of the description matches {rest}")
        for_method = [(op, m) for op, m in matched if op.method == request.method.lower()]
        if not for_method:
            raise RequestProblem(f"{rest} ({matched[0][0].template}) takes no {request.method} "
                                 f"(only {', '.join(sorted({op.method.upper() for op, _ in matched}))})")
        # A literal template wins over one with parameters (/V1/orders/items before /V1/orders/{id}).
        op, found = min(for_method, key=lambda pair: pair[0].template.count("{"))
        params = op.spec.get("parameters", [])
        self._path_params(op, params, found.groupdict())
        self._query(op, params, request)
        self._body(op, params, request)

    # -- parts ---------------------------------------------------------------------------

    @staticmethod
    def _path_params(op: Operation, params: list[dict[str, Any]], values: dict[str, str]) -> None:
        for p in params:
            if p.get("in") == "path":
                value = values.get(p["name"])
                if value is None:
                    raise RequestProblem(f"{op.template}: path parameter {p['name']} missing")
                _check_simple(op, f"path parameter {p['name']}", p, urllib.parse.unquote(value))

    @staticmethod
    def _query(op: Operation, params: list[dict[str, Any]], request: httpx.Request) -> None:
        declared = {p["name"]: p for p in params if p.get("in") == "query"}
        sent = dict(request.url.params.multi_items())
        for name in sent:
            if name not in declared:
                raise RequestProblem(f"{op.method.upper()} {op.template} declares no query parameter {name!r}")
            _check_simple(op, f"query parameter {name}", declared[name], sent[name])
        for name, p in declared.items():
            if p.get("required") and name not in sent:
                raise RequestProblem(f"{op.method.upper()} {op.template}: required query parameter {name!r} missing")

    def _body(self, op: Operation, params: list[dict[str, Any]], request: httpx.Request) -> None:
        content = request.content
        body_params = [(i, p) for i, p in enumerate(params) if p.get("in") == "body"]
        if not body_params:
            if content.strip():
                raise RequestProblem(f"{op.method.upper()} {op.template} takes no body; got {content[:80]!r}")
            return
        index, param = body_params[0]
        if not content.strip():
            if param.get("required") or param.get("schema", {}).get("required"):
                raise RequestProblem(f"{op.method.upper()} {op.template} needs a body")
            return
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in op.spec.get("consumes", self.document.get("consumes", ["application/json"])):
            raise RequestProblem(f"{op.method.upper()} {op.template} does not take {kind or 'no content type'}")
        try:
            body = json.loads(content)
        except ValueError as exc:
            raise RequestProblem(f"{op.method.upper()} {op.template}: the body is not JSON ({exc})") from None
        schema = param.get("schema", {})
        if self.closed_bodies and isinstance(body, dict) and "properties" in schema:
            extra = sorted(set(body) - set(schema["properties"]))
            if extra:
                raise RequestProblem(f"{op.method.upper()} {op.template}: the body's {extra} are not arguments of "
                                     f"the call (it takes {sorted(schema['properties'])})")
        ref = {"$ref": f"{DOC_URI}#{op.pointer}/parameters/{index}/schema"}
        validator = jsonschema.Draft4Validator(ref, registry=self.registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            where = lambda e: "/".join(str(p) for p in e.absolute_path) or "(body)"  # noqa: E731
            raise RequestProblem(f"{op.method.upper()} {op.template}: "
                                 + "; ".join(f"{where(e)}: {e.message}" for e in errors[:5]))


def _check_simple(op: Operation, what: str, param: dict[str, Any], value: str) -> None:
    kind = param.get("type")
    ok = {"integer": re.fullmatch(r"-?\d+", value) is not None,
          "number": re.fullmatch(r"-?\d+(\.\d+)?", value) is not None,
          "boolean": value in ("true", "false", "1", "0")}.get(kind or "string", True)
    if not ok:
        raise RequestProblem(f"{op.method.upper()} {op.template}: {what} is {value!r}, not of type {kind}")
    if "enum" in param and value not in [str(v) for v in param["enum"]]:
        raise RequestProblem(f"{op.method.upper()} {op.template}: {what} is {value!r}, not one of {param['enum']}")


@functools.lru_cache(maxsize=4)
def _operations(path: str) -> list[Operation]:
    document = load_description(path)
    found = []
    for template, item in document.get("paths", {}).items():
        pattern = re.compile("".join(
            f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}/]+\})", template)))
        for method, spec in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                found.append(Operation(template, pattern, method, spec, "/" + _pointer("paths", template, method)))
    return found


@functools.lru_cache(maxsize=4)
def _registry(path: str) -> Registry[Any]:
    resource = Resource(contents=load_description(path), specification=DRAFT4)
    return Registry().with_resource(DOC_URI, resource)
