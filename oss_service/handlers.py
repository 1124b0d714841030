"""The OSS's request handlers: the store API, the shopper lookups and pages, health, metrics and the API description.

Every store request is authenticated before anything else: the token's
account is known (and an unknown, revoked or lapsed one refused) before a
byte of the body is read. The event loop never waits on the database: hot reads
are done from it without waiting (loop_database.py), everything else on a thread.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope

from . import pages
from .auth import AccountCache
from .i18n import N_
from .links import StatusLinks, new_secret
from .looks import PageLook, load_look
from .metrics import Metrics
from .openapi import openapi_document
from .ratelimit import RateLimiter
from .replies import NO_STORE, NOT_FOUND, REPLAYED, UNAUTHORIZED, Reply, json_reply, problem_reply, too_many
from .service import MERCHANT_RE, Account, IngestJob, LookupsLocked, OrderView, OssStore, hash_token
from .settings import ServerSettings
from .wire import LookupQuery, WireError, body_digest, lookup_query, possible_order_number, validate
from .writer import BatchWriter

VERSION = "1.0.0"


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


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _lapsed(account: Account) -> Reply:
    end = account.expires.isoformat()
    return problem_reply(402, "subscription lapsed",
                         f"the OSS subscription of merchant {account.merchant} ended on {end}; "
                         "renew it to send updates again", expires=end,
                         merchant=account.merchant).for_merchant(account.merchant)


class OssApp:
    """The handlers, with the store, the writer, the limits and the metrics they share."""

    def __init__(self, store: OssStore, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        self.writer = BatchWriter(store, settings.max_batch)
        self.accounts = AccountCache(store, settings.account_cache_seconds)
        self.metrics = Metrics()
        self.ingest_limit = RateLimiter(settings.ingest_rate, settings.ingest_burst)
        self.lookup_limit = RateLimiter(settings.lookup_rate_per_minute / 60.0, settings.lookup_burst)
        self.unauthenticated_limit = RateLimiter(settings.unauthenticated_rate_per_minute / 60.0,
                                                 settings.unauthenticated_burst)
        # Without a configured secret the links last as long as this process (serve always passes one).
        self.links = StatusLinks(settings.link_secret or new_secret(), settings.previous_link_secrets)
        self._openapi: bytes | None = None
        self._css = pages.css()

    async def aclose(self) -> None:
        """At the server's shutdown: what is queued is written, then the connections and threads are given up."""
        await self.writer.aclose()
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- who is calling ----------------------------------------------------

    async def authenticate(self, token_hash: str | None, client: str) -> Account | Reply:
        """The caller's account, or the answer for a caller without a valid token (401, or 429 per address)."""
        account = None
        if token_hash is not None:
            account = self.accounts.cached(token_hash)
            if account is None:
                if self.unauthenticated_limit.blocked(client):  # no database lookup for a guesser
                    return self._refused(client)
                account = await self.accounts.load(token_hash)
        if account is None or account.revoked:
            return self._refused(client)
        return account

    def _refused(self, client: str) -> Reply:
        wait = self.unauthenticated_limit.check(client)
        return too_many(wait, "requests without a valid token from this address") if wait else UNAUTHORIZED

    async def _account(self, request: Request) -> Account | Reply:
        token = _bearer(request.headers.get("authorization"))
        found = await self.authenticate(hash_token(token) if token else None, _client(request.scope))
        if isinstance(found, Account):
            request.scope.setdefault("state", {})["merchant"] = found.merchant
        return found

    async def _read_limited(self, length: str | None, receive: Receive) -> bytes | None:
        """The body, or None when it is larger than the limit (checked before and while reading)."""
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

    # -- store API ---------------------------------------------------------
    #
    # The two hot endpoints (updates in, shopper lookups out) are plain ASGI:
    # they read the scope and answer a Reply, without Starlette's Request,
    # Response and router (see app.OssStarlette).

    def _base_url(self, scope: Scope, host: str | None) -> str:
        """The OSS's address for links: ``--public-url``, else as this request reached it."""
        if self.settings.public_url:
            return self.settings.public_url
        if host is None:
            server = scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"

    def _accepted(self, body: dict[str, Any], merchant: str, base_url: str) -> dict[str, Any]:
        """The OK answer with the signed link to the order's page."""
        return {**body, "status_url": self.links.url(base_url, merchant, body["order_number"])}

    async def post_update(self, scope: Scope, receive: Receive) -> Reply:
        authorization = length = host = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"content-length":
                length = length or value.decode("latin-1")
            elif name == b"host":
                host = host or value.decode("latin-1")
        token = _bearer(authorization)
        token_hash = hash_token(token) if token else None
        found = await self.authenticate(token_hash, _client(scope))
        if isinstance(found, Reply):
            self.metrics.update("unauthorized" if found.status == 401 else "rate_limited")
            return found
        account = found
        if not account.active(self.store.today()):
            self.metrics.update("lapsed")
            return _lapsed(account)
        wait = self.ingest_limit.check(account.id)
        if wait is not None:
            self.metrics.update("rate_limited")
            return too_many(wait, "updates from this store").for_merchant(account.merchant)
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
        assert token_hash is not None
        result = await self.writer.submit(IngestJob(token_hash, body, body_digest(body)))
        self.metrics.update(result.kind)
        if result.kind == "stored":
            return json_reply(200, self._accepted(result.body, account.merchant, self._base_url(scope, host)),
                              merchant=account.merchant)
        if result.kind == "replayed":
            return json_reply(200, self._accepted(result.body, account.merchant, self._base_url(scope, host)),
                              REPLAYED, account.merchant)
        if result.kind == "unauthorized":  # revoked since it was remembered
            return UNAUTHORIZED
        assert result.account is not None
        if result.kind == "lapsed":
            return _lapsed(result.account)
        if result.kind == "wrong_merchant":
            reply = problem_reply(403, "wrong merchant",
                                  f"this token belongs to merchant {account.merchant}, not "
                                  f"{body.get('merchant')}: check the store's oss.merchant and oss.token",
                                  field="merchant")
        else:
            reply = problem_reply(409, "conflict",
                                  f"update {body['idempotency_key']} was already received with a different body; "
                                  "a new update needs a new idempotency key", field="idempotency_key")
        return reply.for_merchant(account.merchant)

    async def get_account(self, request: Request) -> Response:
        """The token's account: what `cartstatus test` checks ("Test Settings"); a lapsed one answers 402 with
        its end date, as an update would."""
        account = await self._account(request)
        if isinstance(account, Reply):
            return account.response()
        if not account.active(self.store.today()):
            return _lapsed(account).response()
        return JSONResponse(account.as_dict(self.store.today()))

    async def get_order(self, request: Request) -> Response:
        account = await self._account(request)
        if isinstance(account, Reply):
            return account.response()
        number = request.path_params["order_number"]
        view = None
        if possible_order_number(number):
            view = await run_in_threadpool(self.store.order_for_account, account, number)
        if view is None:
            return problem_reply(404, "not found", "this store has no such order").response()
        return JSONResponse(view.as_dict())

    # -- shoppers ----------------------------------------------------------

    async def api_lookup(self, scope: Scope, receive: Receive) -> Reply:
        wait = self.lookup_limit.check(_client(scope))
        if wait is not None:
            self.metrics.lookup("rate_limited")
            return too_many(wait, "lookups")
        q = query_dict(scope["query_string"])
        query = lookup_query(q.get("merchant", ""), q.get("order", ""), q.get("email"), q.get("zip"))
        if isinstance(query, WireError):
            self.metrics.lookup("invalid")
            return problem_reply(422, "invalid parameter", query.message, field=query.field)
        if not (query.email or query.zip):
            self.metrics.lookup("not_found")
            return NOT_FOUND
        try:
            view = await self._lookup(query)
        except LookupsLocked:
            return self._locked()
        if view is None:
            return NOT_FOUND
        return json_reply(200, view.as_dict(), NO_STORE)

    def _locked(self) -> Reply:
        self.metrics.lookup("locked")
        return too_many(self.settings.lookup_failure_window, "failed lookups of this order")

    async def _lookup(self, query: LookupQuery) -> OrderView | None:
        view = await self.store.lookup(query.merchant, query.order, email=query.email, zip_code=query.zip,
                                       failure_limit=self.settings.lookup_failures,
                                       window=self.settings.lookup_failure_window)
        self.metrics.lookup("found" if view else "not_found")
        return view

    async def _merchant(self, request: Request) -> Account | None:
        name = request.path_params["merchant"]
        if not MERCHANT_RE.match(name):
            return None
        account = await run_in_threadpool(self.store.find_account, name)
        if account is None or account.revoked:
            return None
        request.scope.setdefault("state", {})["merchant"] = account.merchant
        return account

    async def _look(self, account: Account) -> PageLook:
        return await run_in_threadpool(load_look, self.store.engine, account.id)

    @staticmethod
    def _no_store(request: Request) -> Response:
        return pages.message_page(request, N_("No such store"), N_("There is no order status page at this address."),
                                  status_code=404)

    async def status_page(self, request: Request) -> Response:
        """``/status/{merchant}``: the form (GET), the order a signed link names (GET with ``order`` and
        ``key``), or the order the form finds (POST); one route, so 405 names both methods."""
        if request.method == "POST":
            return await self.status_lookup(request)
        if "key" in request.query_params:
            return await self.status_link(request)
        return await self.status_form(request)

    async def status_form(self, request: Request) -> Response:
        account = await self._merchant(request)
        if account is None:
            return self._no_store(request)
        return pages.lookup_form(request, account, await self._look(account))

    async def _shopper_account(self, request: Request) -> Account | Response:
        """The merchant of a shopper's lookup (by form or link), or the answer: too many lookups, no such store."""
        wait = self.lookup_limit.check(_client(request.scope))
        if wait is not None:
            self.metrics.lookup("rate_limited")
            return self._wait_page(request, wait)
        account = await self._merchant(request)
        return self._no_store(request) if account is None else account

    async def _shopper_answer(self, request: Request, account: Account, view: OrderView | None,
                              order: str = "") -> Response:
        """The order's page, or the form again with "not found"; never kept by a cache."""
        look = await self._look(account)
        headers = {"Cache-Control": "no-store"}
        if view is None:
            return pages.lookup_form(request, account, look, order=order, message=pages.NOT_FOUND, status_code=404,
                                     headers=headers)
        return pages.order_page(request, account, look, view, headers=headers)

    async def status_link(self, request: Request) -> Response:
        """The order of a signed link (``status_url``); a link altered in any way reads as an unknown order."""
        account = await self._shopper_account(request)
        if not isinstance(account, Account):
            return account
        order, key = request.query_params.get("order", ""), request.query_params.get("key", "")
        view = None
        if possible_order_number(order) and self.links.valid(account.merchant, order, key):
            view = await run_in_threadpool(self.store.order_for_account, account, order)
            self.metrics.lookup("found" if view else "not_found")
        else:
            self.metrics.lookup("invalid")
        return await self._shopper_answer(request, account, view)

    async def status_lookup(self, request: Request) -> Response:
        account = await self._shopper_account(request)
        if not isinstance(account, Account):
            return account
        raw = await self._read_limited(request.headers.get("content-length"), request.receive)
        if raw is None:
            return pages.message_page(request, N_("Too large"), N_("The form was too large."), status_code=413)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        order = form.get("order", "").strip()[:64]
        query = lookup_query(account.merchant, order, form.get("email"), form.get("zip"))
        view = None
        if isinstance(query, LookupQuery) and (query.email or query.zip):
            try:
                view = await self._lookup(query)
            except LookupsLocked:
                self.metrics.lookup("locked")
                return self._wait_page(request, self.settings.lookup_failure_window)
        else:
            self.metrics.lookup("invalid")
        return await self._shopper_answer(request, account, view, order)

    @staticmethod
    def _wait_page(request: Request, wait: float) -> Response:
        seconds = too_many(wait, "lookups").headers[0][1].decode()
        return pages.message_page(request, N_("Too many lookups"), N_("Please wait %(seconds)s seconds and try again."),
                                  status_code=429, headers={"Retry-After": seconds}, seconds=seconds)

    async def status_snippet(self, request: Request) -> Response:
        account = await self._merchant(request)
        if account is None:
            return self._no_store(request)
        base = f"{request.url.scheme}://{request.url.netloc}"
        return PlainTextResponse(pages.snippet(account, base))

    async def status_look(self, request: Request) -> Response:
        """``/status/{merchant}/look.css``: the merchant's colours for its pages."""
        account = await self._merchant(request)
        if account is None:
            return self._no_store(request)
        look = await self._look(account)
        return Response(look.css(), media_type="text/css", headers={"Cache-Control": "public, max-age=300"})

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
        return pages.message_page(request, N_("Order Status System"),
                                  N_("Use the order status link your store gave you."))
