"""Errors inside GraphQL replies, which carts send with HTTP 200 (a 5xx stays transient, whatever it holds).

The GraphQL spec's response is a map with ``data`` and/or ``errors``; each
error has a ``message`` and may carry ``extensions`` (Shopify's ``code``, such
as ``THROTTLED``). Carts add errors of their own inside ``data``: Shopify's
``userErrors`` (``[{field, message}]``) and Vendure's ``ErrorResult`` (an
object with ``errorCode`` and ``message``, such as ``OrderStateTransitionError``).
A reply with any of them is a failure, never a success.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .connector import json_body, retry_after_seconds
from .outcomes import Failed, Outcome, RetryLater

#: Error codes that say "try again later", as carts spell them.
TRANSIENT_CODES = frozenset({"THROTTLED", "RATE_LIMITED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})
#: How deep into ``data`` errors are looked for: a mutation's payload is a level or two down.
DEPTH = 8


@dataclass(frozen=True)
class GraphQLError:
    """One error of a reply: its message, its code (``extensions.code`` or ``errorCode``) and where it was."""

    message: str
    code: str | None = None
    where: str = "errors"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _in_data(node: Any, path: str, depth: int) -> Iterator[GraphQLError]:
    if depth > DEPTH:
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _in_data(item, f"{path}[{i}]", depth + 1)
    elif isinstance(node, Mapping):
        if "errorCode" in node and "message" in node:  # an ErrorResult (Vendure)
            # Vendure's message may be an untranslated key; its words are then in transitionError.
            message, why = _text(node["message"]), _text(node.get("transitionError"))
            yield GraphQLError(f"{message}: {why}" if why and why != message else message,
                               _text(node["errorCode"]) or None, path)
            return
        for key, value in node.items():
            # A mutation's userErrors (Shopify), or its own kind of them (orderCancelUserErrors).
            if (key == "userErrors" or key.endswith("UserErrors")) and isinstance(value, list):
                for i, error in enumerate(value):
                    if isinstance(error, Mapping):
                        field = error.get("field")
                        where = ".".join(map(str, field)) if isinstance(field, list) else _text(field)
                        code = error.get("code")
                        yield GraphQLError(_text(error.get("message")) + (f" ({where})" if where else ""),
                                           _text(code) or None, f"{path}.{key}[{i}]")
            else:
                yield from _in_data(value, f"{path}.{key}", depth + 1)


def graphql_errors(body: Any) -> list[GraphQLError]:
    """Every error in a GraphQL reply's body (parsed JSON): the spec's ``errors``, then
    ``userErrors`` and ``ErrorResult`` objects anywhere in ``data``. Empty: no error."""
    if not isinstance(body, Mapping):
        return []
    found: list[GraphQLError] = []
    errors = body.get("errors")
    if isinstance(errors, list):
        for i, error in enumerate(errors):
            if isinstance(error, Mapping):
                extensions = error.get("extensions")
                code = extensions.get("code") if isinstance(extensions, Mapping) else None
                found.append(GraphQLError(_text(error.get("message")), _text(code) or None, f"errors[{i}]"))
            else:
                found.append(GraphQLError(_text(error), None, f"errors[{i}]"))
    elif errors:  # not the spec's list, but an error all the same
        found.append(GraphQLError(_text(errors)))
    found.extend(_in_data(body.get("data"), "data", 0))
    return found


def outcome_for_graphql(response: httpx.Response, *, transient: frozenset[str] = TRANSIENT_CODES) -> Outcome | None:
    """The outcome of a 2xx GraphQL reply with errors in it; None when it has none, is not JSON, or is not
    a success (the status-code rules then decide).

    An error whose code is in ``transient`` gives ``RetryLater`` (with the
    reply's ``Retry-After``); any other gives ``Failed`` with every message.
    Call it from :meth:`Connector.classify`; a reply it leaves alone still goes
    through the status-code rules.
    """
    if not 200 <= response.status_code < 300:  # the status-code rules decide (a 503 with "errors" is transient)
        return None
    errors = graphql_errors(json_body(response))
    if not errors:
        return None
    words = "; ".join(map(str, errors))
    if any(e.code in transient for e in errors):
        return RetryLater(f"the cart asks to wait: {words}", retry_after_seconds(response))
    return Failed(f"the cart refused: {words}")


__all__ = ["TRANSIENT_CODES", "GraphQLError", "graphql_errors", "outcome_for_graphql"]
