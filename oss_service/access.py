"""How every answer is finished: security headers, a request id, the metrics and one access-log line.

Both ways a request is answered (the two hot endpoints ahead of Starlette, and
Starlette's router for the rest) send through :meth:`Exchange.wrap`, so each
answer gets the same headers and is counted and logged the same way.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from json.encoder import encode_basestring
from typing import Any

from starlette.types import Message, Scope, Send

from .metrics import Metrics, method_label, route_label

access_log = logging.getLogger("cartstatus.oss.access")

#: Sent with every response.
BASE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
#: Sent with HTML pages: what a browser needs to keep the shopper's page to itself.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

#: Request ids: a random prefix per process and a counter (unique without a random draw per request).
_ID_PREFIX = secrets.token_hex(4)
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFF:08x}"


_utc_second = -1
_utc_text = ""


def utc_timestamp(now: float) -> str:
    """``now`` as ISO 8601 UTC to the millisecond (the second's text is made once per second)."""
    global _utc_second, _utc_text
    second = int(now)
    if second != _utc_second:
        _utc_second, _utc_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_utc_text}.{int((now - second) * 1000):03d}+00:00"


class AccessLine:
    """An access-log line's fields, written out as the JSON line when a handler formats the record (``str``).

    The server's handler (logs.BufferedLineHandler) formats these when it writes
    its batch, many lines in a row, not in each request: measured in one server
    under bench/oss.py's ingest, alternating the two every half second, the
    server's CPU an update was 3-4% lower. A host's handler formats it at once,
    as any record.
    """

    __slots__ = ("client", "elapsed", "merchant", "method", "now", "path", "request_id", "route", "status")

    def __init__(self, request_id: str, method: str, path: str, route: str, status: int, elapsed: float,
                 client: Any, merchant: str | None, now: float) -> None:
        self.request_id, self.method, self.path, self.route = request_id, method, path, route
        self.status, self.elapsed, self.client, self.merchant, self.now = status, elapsed, client, merchant, now

    def __str__(self) -> str:
        client, merchant = self.client, self.merchant
        return (f'{{"ts":"{utc_timestamp(self.now)}","request_id":"{self.request_id}","method":"{self.method}",'
                f'"path":{encode_basestring(self.path)},"route":"{self.route}","status":{self.status},'
                f'"ms":{round(self.elapsed * 1000, 2)},'
                f'"client":{encode_basestring(client[0]) if client else "null"},'
                f'"merchant":{encode_basestring(merchant) if merchant else "null"}}}')


class AccessRecord(logging.LogRecord):
    """An access-log line as a log record, made without the work LogRecord's constructor does for each record.

    What that constructor works out (the logger, the level, the calling file and
    module, the process and thread) is the same for every access line: it is
    worked out once, for the first line of the process, and copied; each line
    has its own message and times. A third of a line's cost, measured. Its
    message may be an :class:`AccessLine`, which is ``deferred``: its text is
    made when the record is formatted.
    """

    _shared: dict[str, Any] | None = None
    _logging_started = 0.0  # when logging was loaded, which relativeCreated counts from

    def __init__(self, line: str | AccessLine, now: float) -> None:
        shared = AccessRecord._shared
        if shared is None:
            first = access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, "", (), None)
            AccessRecord._logging_started = first.created - first.relativeCreated / 1000
            shared = AccessRecord._shared = {k: v for k, v in vars(first).items()
                                             if k not in ("msg", "created", "msecs", "relativeCreated")}
        self.__dict__ = shared.copy()  # a dict copied whole, not filled key by key: 0.7 µs a record less
        self.msg = line
        self.created = now
        self.msecs = int((now - int(now)) * 1000) + 0.0  # as LogRecord writes it: whole milliseconds
        self.relativeCreated = (now - AccessRecord._logging_started) * 1000

    @property
    def deferred(self) -> bool:
        """Whether the message can be formatted later: an AccessLine holds nothing that changes."""
        return isinstance(self.msg, AccessLine)


def log_access(request_id: str, method: str, path: str, route: str, status: int, elapsed: float,
               client: Any, merchant: str | None) -> None:
    """One structured access-log line: the path without its query string, never a header.

    ``method`` and ``route`` are labels from fixed sets; what a client sent (the
    path, its address) is escaped.
    """
    now = time.time()
    access_log.handle(AccessRecord(AccessLine(request_id, method, path, route, status, elapsed, client, merchant,
                                              now), now))


class Exchange:
    """One request and its answer: the id, the start, the status sent, and the finishing of it all."""

    __slots__ = ("merchant", "metrics", "request_id", "scope", "start", "started", "status")

    def __init__(self, scope: Scope, metrics: Metrics) -> None:
        self.scope = scope
        self.metrics = metrics
        self.request_id = new_request_id()
        self.start = time.perf_counter()
        self.status = 500
        self.merchant: str | None = None
        self.started = False

    def wrap(self, send: Send) -> Send:
        """``send`` that adds the headers every answer carries, and notes the status."""

        async def finishing(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.started = True
                self.status = message["status"]
                headers = list(message.get("headers", ()))
                html = any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                headers.extend(SECURITY_HEADERS if html else BASE_HEADERS)
                headers.append((b"x-request-id", self.request_id.encode()))
                message["headers"] = headers
            await send(message)

        return finishing

    def done(self) -> None:
        """Count the request and write its log line (the path without its query string, never a header)."""
        elapsed = time.perf_counter() - self.start
        scope = self.scope
        route, method = route_label(scope["path"]), method_label(scope["method"])
        self.metrics.observe(route, method, self.status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            merchant = self.merchant or scope.get("state", {}).get("merchant")
            log_access(self.request_id, method, scope["path"], route, self.status, elapsed, scope.get("client"),
                       merchant)
