"""Answers of the JSON endpoints, built once and sent the same way from the fast path and Starlette's routes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

from . import pages

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON answer: status, body, extra headers, and the merchant for the log."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    merchant: str | None = None

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": [
            (b"content-length", str(len(self.body)).encode()), _JSON, *self.headers]})
        await send({"type": "http.response.body", "body": self.body})

    def response(self) -> Response:
        """The same answer for a Starlette endpoint."""
        return Response(self.body, self.status, {k.decode(): v.decode() for k, v in self.headers},
                        media_type="application/json")

    def for_merchant(self, merchant: str) -> Reply:
        return Reply(self.status, self.body, self.headers, merchant)


def json_reply(status: int, content: Any, headers: tuple[tuple[bytes, bytes], ...] = (),
               merchant: str | None = None) -> Reply:
    # Compact UTF-8 JSON, as Starlette's JSONResponse writes it, only quicker.
    return Reply(status, orjson.dumps(content), headers, merchant)


def problem_reply(status: int, error: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = (),
                  **extra: Any) -> Reply:
    return json_reply(status, {"error": error, "message": message, **extra}, headers)


def too_many(wait: float, what: str) -> Reply:
    seconds = max(1, math.ceil(wait))
    return problem_reply(429, "too many requests", f"too many {what}; try again in {seconds} s",
                         ((b"retry-after", str(seconds).encode()),))


REPLAYED = ((b"idempotent-replayed", b"true"),)
NO_STORE = ((b"cache-control", b"no-store"),)
NOT_FOUND = problem_reply(404, "not found", pages.NOT_FOUND)
UNAUTHORIZED = problem_reply(401, "unauthorized",
                             "unknown or revoked store token: ask the OSS operator for a new token",
                             ((b"www-authenticate", b'Bearer realm="oss"'),))
#: As Starlette's ServerErrorMiddleware answers: a plain 500 (the error goes on to the server's log).
INTERNAL_ERROR = Reply(500, b'{"error":"internal error","message":"Internal Server Error"}')
