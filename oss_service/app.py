"""The OSS web application (Starlette): the store API, the shopper pages, health and metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import unquote

import orjson
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import pages
from .logs import configure_logging_from_env, flush_logs
from .openapi import openapi_document
from .ratelimit import RateLimiter
from .service import Account, IngestJob, OrderView, OssStore, hash_token
from .storage import db_url, open_oss_database
from .wire import body_digest, validate
from .writer import BatchWriter, LoopWriter

access_log = logging.getLogger("cartstatus.oss.access")
VERSION = "1.0.0"

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


#: Sent with every JSON answer of the two hot endpoints (built once, not per request).
_JSON_HEADERS = [(b"content-type", b"application/json"), *BASE_HEADERS]


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


def log_access(request_id: str, method: str, path: str, route: str, status: int, elapsed: float,
               client: Any, merchant: str | None) -> None:
    """One structured access-log line: the path without its query string, never a header."""
    # makeRecord + handle: a log line without logging's stack walk for the caller. The
    # line is written out by hand: only the path (and a merchant, by name rules plain) needs escaping.
    line = (f'{{"ts":"{utc_timestamp(time.time())}","request_id":"{request_id}","method":"{method}",'
            f'"path":{encode_basestring(path)},"route":"{route}","status":{status},"ms":{round(elapsed * 1000, 2)},'
            f'"client":{encode_basestring(client[0]) if client else "null"},'
            f'"merchant":{encode_basestring(merchant) if merchant else "null"}}}')
    access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, line, (), None))


@dataclass(frozen=True)
class ServerSettings:
    """How the server behaves; ``cartstatus-oss serve`` options map onto these."""

    db_url: str | None = None
    #: Largest update body accepted, in bytes (413 beyond).
    max_body: int = 64 * 1024
    #: Updates per second per store token, and the burst allowed.
    ingest_rate: float = 50.0
    ingest_burst: float = 200.0
    #: Lookups per minute per client address, and the burst allowed.
    lookup_rate_per_minute: float = 30.0
    lookup_burst: float = 10.0
    #: Updates written per transaction at most.
    max_batch: int = 256
    #: SQLite: seconds a busy server waits before its next group commit, to fill it (see LoopWriter).
    commit_gather: float = 0.002
    #: Do the database work (lookups, group commits) on the event loop instead of
    #: threads: right for SQLite (local reads and commits of well under a
    #: millisecond, and no thread waiting for the interpreter lock), wrong for a
    #: database across a network. None decides by the database.
    inline_db: bool | None = None

    @classmethod
    def from_env(cls) -> ServerSettings:
        """Settings for worker processes started by uvicorn (``serve --workers N``)."""
        raw = os.environ.get("CARTSTATUS_OSS_SETTINGS")
        return cls(**json.loads(raw)) if raw else cls(db_url=db_url())


def problem(status: int, error: str, message: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers=headers)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("oss_http_requests", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("oss_http_request_duration_seconds", "Time to answer a request", ["route"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.updates = Counter("oss_updates", "Status updates received, by result", ["result"],
                               registry=self.registry)
        self.lookups = Counter("oss_lookups", "Shopper lookups, by result", ["result"], registry=self.registry)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._update_children: dict[str, Any] = {}
        self._lookup_children: dict[str, Any] = {}

    def update(self, result: str) -> None:
        child = self._update_children.get(result)
        if child is None:
            child = self._update_children[result] = self.updates.labels(result)
        child.inc()

    def lookup(self, result: str) -> None:
        child = self._lookup_children.get(result)
        if child is None:
            child = self._lookup_children[result] = self.lookups.labels(result)
        child.inc()

    def observe(self, route: str, method: str, status: str, seconds: float) -> None:
        # Labelled children are looked up once per combination, not per request.
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(route, method, status), self.latency.labels(route))
        pair[0].inc()
        pair[1].observe(seconds)


def route_label(path: str) -> str:
    """The route a path belongs to, for metrics and logs (never the merchant or order)."""
    if path.startswith("/status/"):
        return "/status/{merchant}/snippet" if path.endswith("/snippet") else "/status/{merchant}"
    if path.startswith("/api/v1/orders/"):
        return "/api/v1/orders/{order_number}"
    if path in ("/api/v1/updates", "/api/v1/lookup", "/api/v1/account", "/healthz", "/metrics",
                "/openapi.json", "/static/oss.css", "/"):
        return path
    return "other"


class AccessMiddleware:
    """Security headers (the full set on HTML), metrics and one structured access-log line per request.

    The log line has the path without its query string (lookups carry emails and
    ZIPs there) and never a header, so no token or shopper data is written. (The
    two hot endpoints do the same in :meth:`OssStarlette.answer`.)
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        request_id = new_request_id()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                html = any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                headers.extend(SECURITY_HEADERS if html else BASE_HEADERS)
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = route_label(scope["path"])
            self.metrics.observe(route, scope["method"], str(status), elapsed)
            if access_log.isEnabledFor(logging.INFO):
                log_access(request_id, scope["method"], scope["path"], route, status, elapsed, scope.get("client"),
                           scope.get("state", {}).get("merchant"))


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer of a hot endpoint: status, JSON body, extra headers, and the merchant for the log."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    merchant: str | None = None


def json_reply(status: int, content: Any, headers: tuple[tuple[bytes, bytes], ...] = (),
               merchant: str | None = None) -> Reply:
    # Compact UTF-8 JSON, as Starlette's JSONResponse writes it, only quicker.
    return Reply(status, orjson.dumps(content), headers, merchant)


def problem_reply(status: int, error: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = (),
                  **extra: Any) -> Reply:
    return json_reply(status, {"error": error, "message": message, **extra}, headers)


_REPLAYED = ((b"idempotent-replayed", b"true"),)
_NOT_FOUND = problem_reply(404, "not found", pages.NOT_FOUND)
_NO_STORE = ((b"cache-control", b"no-store"),)
_UNAUTHORIZED = problem_reply(401, "unauthorized",
                              "unknown or revoked store token: ask the OSS operator for a new token",
                              ((b"www-authenticate", b'Bearer realm="oss"'),))


def _too_many(wait: float, what: str) -> Reply:
    seconds = max(1, math.ceil(wait))
    return problem_reply(429, "too many requests", f"too many {what}; try again in {seconds} s",
                         ((b"retry-after", str(seconds).encode()),))


def query_dict(query_string: bytes) -> dict[str, str]:
    """The query's parameters as Starlette's ``request.query_params`` reads them.

    ``parse_qsl(..., keep_blank_values=True)`` with the last of a repeated name
    winning; names and values without ``%`` or ``+`` skip the unquoting.
    """
    params: dict[str, str] = {}
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "))
        params[name] = value
    return params


def _bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class OssApp:
    """The handlers, with the store, the writer, the limits and the metrics they share."""

    def __init__(self, store: OssStore, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        inline = settings.inline_db
        self.inline_db = store.engine.dialect.name == "sqlite" if inline is None else inline
        self.writer: BatchWriter | LoopWriter = (
            LoopWriter(store, settings.max_batch, settings.commit_gather) if self.inline_db
            else BatchWriter(store, settings.max_batch))
        self.metrics = Metrics()
        self.ingest_limit = RateLimiter(settings.ingest_rate, settings.ingest_burst)
        self.lookup_limit = RateLimiter(settings.lookup_rate_per_minute / 60.0, settings.lookup_burst)
        self._openapi: bytes | None = None
        self._css = pages.css()

    def close(self) -> None:
        self.writer.close()
        self.store.close()

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _unauthorized() -> JSONResponse:
        return problem(401, "unauthorized", "unknown or revoked store token: ask the OSS operator for a new token",
                       headers={"WWW-Authenticate": 'Bearer realm="oss"'})

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is larger than the limit (checked before and while reading)."""
        return await self._read_limited(request.headers.get("content-length"), request.receive)

    async def _read_limited(self, length: str | None, receive: Receive) -> bytes | None:
        limit = self.settings.max_body
        if length is not None and length.isdigit() and int(length) > limit:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _client(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    # -- store API ---------------------------------------------------------
    #
    # The two hot endpoints (updates in, shopper lookups out) are plain ASGI:
    # they read the scope and answer a Reply, without Starlette's Request,
    # Response, middleware and router (see OssStarlette).

    async def post_update(self, scope: Scope, receive: Receive) -> Reply:
        authorization = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"content-length":
                length = length or value.decode("latin-1")
        token = _bearer(authorization)
        if token is None:
            self.metrics.update("unauthorized")
            return _UNAUTHORIZED
        token_hash = hash_token(token)
        wait = self.ingest_limit.check(token_hash)
        if wait is not None:
            self.metrics.update("rate_limited")
            return _too_many(wait, "updates from this store")
        raw = await self._read_limited(length, receive)
        if raw is None:
            self.metrics.update("too_large")
            return problem_reply(413, "too large", f"the update body is larger than {self.settings.max_body} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:  # also a body that is not UTF-8
            self.metrics.update("invalid")
            return problem_reply(422, "invalid update", f"the body is not JSON: {exc}", field="(body)",
                                 errors=[{"field": "(body)", "message": "not JSON"}])
        errors = validate(body)
        if errors:
            self.metrics.update("invalid")
            first = errors[0]
            return problem_reply(422, "invalid update", f"{first.field}: {first.message}", field=first.field,
                                 errors=[dataclasses.asdict(e) for e in errors])
        result = await self.writer.submit(IngestJob(token_hash, body, body_digest(body)))
        self.metrics.update(result.kind)
        if result.kind == "stored":
            return json_reply(200, result.body, merchant=result.account.merchant if result.account else None)
        if result.kind == "replayed":
            return json_reply(200, result.body, _REPLAYED, result.account.merchant if result.account else None)
        if result.kind == "unauthorized":
            return _UNAUTHORIZED
        assert result.account is not None
        merchant = result.account.merchant
        if result.kind == "lapsed":
            end = result.account.expires.isoformat()
            reply = problem_reply(402, "subscription lapsed",
                                  f"the OSS subscription of merchant {merchant} ended on {end}; "
                                  "renew it to send updates again", expires=end, merchant=merchant)
        elif result.kind == "wrong_merchant":
            reply = problem_reply(403, "wrong merchant",
                                  f"this token belongs to merchant {merchant}, not "
                                  f"{body.get('merchant')}: check the store's oss.merchant and oss.token",
                                  field="merchant")
        else:
            reply = problem_reply(409, "conflict",
                                  f"update {body['idempotency_key']} was already received with a different body; "
                                  "a new update needs a new idempotency key", field="idempotency_key")
        return Reply(reply.status, reply.body, reply.headers, merchant)

    async def _account(self, request: Request) -> Account | None:
        token = _bearer(request.headers.get("authorization"))
        if token is None:
            return None
        account = await run_in_threadpool(self.store.account_for_token, token)
        if account is None or account.revoked:
            return None
        request.scope.setdefault("state", {})["merchant"] = account.merchant
        return account

    async def get_account(self, request: Request) -> Response:
        account = await self._account(request)
        if account is None:
            return self._unauthorized()
        return JSONResponse(account.as_dict(self.store.today()))

    async def get_order(self, request: Request) -> Response:
        account = await self._account(request)
        if account is None:
            return self._unauthorized()
        view = await run_in_threadpool(self.store.order_for_account, account, request.path_params["order_number"])
        if view is None:
            return problem(404, "not found", "this store has no such order")
        return JSONResponse(view.as_dict())

    # -- shoppers ----------------------------------------------------------

    async def api_lookup(self, scope: Scope, receive: Receive) -> Reply:
        client = scope.get("client")
        wait = self.lookup_limit.check(client[0] if client else "unknown")
        if wait is not None:
            self.metrics.lookup("rate_limited")
            return _too_many(wait, "lookups")
        q = query_dict(scope["query_string"])
        merchant, order = q.get("merchant", "").strip(), q.get("order", "").strip()
        email, zip_code = q.get("email", "").strip(), q.get("zip", "").strip()
        for name, given in (("merchant", merchant), ("order", order)):
            if not given:
                return problem_reply(422, "missing parameter", f"{name} is required", field=name)
        if not (email or zip_code):
            return problem_reply(422, "missing parameter", "give email or zip", field="email")
        view = await self._lookup(merchant, order, email=email or None, zip_code=zip_code or None)
        if view is None:
            self.metrics.lookup("not_found")
            return _NOT_FOUND
        self.metrics.lookup("found")
        return json_reply(200, view.as_dict(), _NO_STORE)

    async def _lookup(self, merchant: str, order: str, *, email: str | None,
                      zip_code: str | None) -> OrderView | None:
        if self.inline_db:
            return self.store.lookup(merchant, order, email=email, zip_code=zip_code)
        return await run_in_threadpool(self.store.lookup, merchant, order, email=email, zip_code=zip_code)

    async def _merchant(self, request: Request) -> Account | None:
        account = await run_in_threadpool(self.store.find_account, request.path_params["merchant"])
        if account is None or account.revoked:
            return None
        request.scope.setdefault("state", {})["merchant"] = account.merchant
        return account

    @staticmethod
    def _no_store(request: Request) -> Response:
        return pages.message_page(request, "No such store", "There is no order status page at this address.",
                                  status_code=404)

    async def status_form(self, request: Request) -> Response:
        account = await self._merchant(request)
        if account is None:
            return self._no_store(request)
        return pages.lookup_form(request, account)

    async def status_lookup(self, request: Request) -> Response:
        wait = self.lookup_limit.check(self._client(request))
        if wait is not None:
            self.metrics.lookup("rate_limited")
            seconds = str(max(1, math.ceil(wait)))
            return pages.message_page(request, "Too many lookups", f"Please wait {seconds} seconds and try again.",
                                      status_code=429, headers={"Retry-After": seconds})
        account = await self._merchant(request)
        if account is None:
            return self._no_store(request)
        raw = await self._read_body(request)
        if raw is None:
            return pages.message_page(request, "Too large", "The form was too large.", status_code=413)
        from urllib.parse import parse_qs

        form = {k: v[0].strip() for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        order = form.get("order", "")[:64]
        email, zip_code = form.get("email") or None, form.get("zip") or None
        view = None
        if order and (email or zip_code):
            view = await self._lookup(account.merchant, order, email=email, zip_code=zip_code)
        self.metrics.lookup("found" if view else "not_found")
        headers = {"Cache-Control": "no-store"}
        if view is None:
            return pages.lookup_form(request, account, order=order, message=pages.NOT_FOUND, status_code=404,
                                     headers=headers)
        return pages.order_page(request, account, view, headers=headers)

    async def status_snippet(self, request: Request) -> Response:
        account = await self._merchant(request)
        if account is None:
            return self._no_store(request)
        base = f"{request.url.scheme}://{request.url.netloc}"
        return PlainTextResponse(pages.snippet(account, base))

    # -- operations --------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        def ping() -> None:
            with self.store.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await run_in_threadpool(ping)
        except Exception as exc:
            return JSONResponse({"status": "down", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "version": VERSION})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = json.dumps(openapi_document(VERSION)).encode()
        return Response(self._openapi, media_type="application/json")

    async def css(self, request: Request) -> Response:
        return Response(self._css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    async def root(self, request: Request) -> Response:
        return pages.message_page(request, "Order Status System", "Use the order status link your store gave you.")


HotHandler = Callable[[Scope, Receive], Awaitable[Reply]]


class OssStarlette(Starlette):
    """The OSS's Starlette application, with the two hot endpoints answered ahead of its stack.

    ``POST /api/v1/updates`` and ``GET /api/v1/lookup`` go straight to their
    handlers; :meth:`answer` gives them what the middleware gives the other
    routes (the headers, the metrics and the access-log line). Every other
    request, and these paths with another method (405), take the usual way.
    """

    oss: OssApp
    hot: dict[tuple[str, str], HotHandler]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root):]
            handler = self.hot.get((scope["method"], path))
            if handler is not None:
                scope["app"] = self
                await self.answer(handler, path, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def answer(self, handler: HotHandler, route: str, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        request_id = new_request_id()
        status, merchant = 500, None
        try:
            reply = await handler(scope, receive)
            status, merchant = reply.status, reply.merchant
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-length", str(len(reply.body)).encode()), *_JSON_HEADERS,
                (b"x-request-id", request_id.encode()), *reply.headers]})
            await send({"type": "http.response.body", "body": reply.body})
        except ClientDisconnect:
            status = 499  # the client went away before its request was read: nobody to answer
        except Exception:
            # As Starlette's ServerErrorMiddleware: a plain 500, and the error goes on to the server's log.
            if status == 500:
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.start", "status": 500, "headers": [
                        (b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8"),
                        *BASE_HEADERS, (b"x-request-id", request_id.encode())]})
                    await send({"type": "http.response.body", "body": b"Internal Server Error"})
            status = 500
            raise
        finally:
            elapsed = time.perf_counter() - start
            method = scope["method"]
            self.oss.metrics.observe(route, method, str(status), elapsed)
            if access_log.isEnabledFor(logging.INFO):
                log_access(request_id, method, scope["path"], route, status, elapsed, scope.get("client"), merchant)


class _Endpoint:
    """A hot handler as a Starlette route endpoint (reached only when a root path hides the fast way)."""

    def __init__(self, handler: HotHandler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = await self.handler(scope, receive)
        scope.setdefault("state", {})["merchant"] = reply.merchant
        await send({"type": "http.response.start", "status": reply.status, "headers": [
            (b"content-length", str(len(reply.body)).encode()), (b"content-type", b"application/json"),
            *reply.headers]})
        await send({"type": "http.response.body", "body": reply.body})


def create_app(store: OssStore | None = None, settings: ServerSettings | None = None,
               *, on_close: Callable[[], None] | None = None) -> Starlette:
    """The OSS application on ``store`` (or on ``settings.db_url``, migrated)."""
    settings = settings or ServerSettings()
    if store is None:
        store = OssStore(open_oss_database(settings.db_url))
    oss = OssApp(store, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        oss.close()
        if on_close is not None:
            on_close()
        flush_logs()

    app = OssStarlette(routes=[
        Route("/", oss.root),
        Route("/api/v1/updates", _Endpoint(oss.post_update), methods=["POST"]),
        Route("/api/v1/lookup", _Endpoint(oss.api_lookup), methods=["GET"]),
        Route("/api/v1/account", oss.get_account, methods=["GET"]),
        Route("/api/v1/orders/{order_number}", oss.get_order, methods=["GET"]),
        Route("/status/{merchant}", oss.status_form, methods=["GET"]),
        Route("/status/{merchant}", oss.status_lookup, methods=["POST"]),
        Route("/status/{merchant}/snippet", oss.status_snippet, methods=["GET"]),
        Route("/healthz", oss.healthz, methods=["GET"]),
        Route("/metrics", oss.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", oss.openapi, methods=["GET"]),
        Route("/static/oss.css", oss.css, methods=["GET"]),
    ], lifespan=lifespan)
    app.add_middleware(AccessMiddleware, metrics=oss.metrics)
    app.oss = oss
    app.hot = {("POST", "/api/v1/updates"): oss.post_update, ("GET", "/api/v1/lookup"): oss.api_lookup}
    app.state.oss = oss
    return app


def app_from_env() -> Starlette:
    """The factory ``serve --workers N`` gives uvicorn: settings come from the environment."""
    configure_logging_from_env()
    settings = ServerSettings.from_env()
    engine = open_oss_database(settings.db_url, run_migrations=False)
    return create_app(OssStore(engine), settings, on_close=engine.dispose)
