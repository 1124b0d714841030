"""The connector contract's authentication and reply reading: TokenLogin, HeaderAuth, classify, call, GraphQL errors."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cartstatus import (
    AlreadyDone,
    Connector,
    Delivered,
    Failed,
    HeaderAuth,
    LoginFailed,
    Outcome,
    RetryLater,
    StackController,
    StatusEngine,
    StopSend,
    Token,
    TokenLogin,
)
from cartstatus.auth import jwt_expiry
from cartstatus.connector import json_body, outcome_for_transport_error
from cartstatus.graphql import graphql_errors, outcome_for_graphql
from cartstatus.stack import StackRecord

from ..conftest import add_orders, base_setup
from .conftest import ScriptedConnector

PASSWORD = "Cart-Admin-Pass-77"
NOW = 1_700_000_000.0


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def jwt(exp: float | None, sub: str = "admin") -> str:
    claims: dict[str, Any] = {"sub": sub} if exp is None else {"sub": sub, "exp": exp}
    return f"{b64({'alg': 'HS256'})}.{b64(claims)}.c2lnbmF0dXJl"


class Cart:
    """A cart with an admin login: POST /login gives a JWT; every other call needs a live token."""

    def __init__(self, *, lifetime: float = 3600.0, login_delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.login_delay = login_delay
        self.clock = NOW
        self.logins = 0
        self.live: set[str] = set()
        self.seen: list[tuple[str, str | None, bytes]] = []  # method+path, Authorization, body
        self.login_reply: httpx.Response | None = None
        self.refuse_every_token = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((f"{request.method} {request.url.path}", request.headers.get("authorization"),
                          request.content))
        if request.url.path == "/login":
            self.logins += 1
            await asyncio.sleep(self.login_delay)
            if self.login_reply is not None:
                return self.login_reply
            if json.loads(request.content) != {"user": "om", "password": PASSWORD}:
                return httpx.Response(401, json={"message": "invalid credentials"})
            token = jwt(self.clock + self.lifetime, sub=f"admin-{self.logins}")
            self.live.add(token)
            return httpx.Response(200, json={"token": token})
        token = (request.headers.get("authorization") or "").removeprefix("Bearer ")
        if self.refuse_every_token or token not in self.live:
            return httpx.Response(401, json={"message": "token revoked by an administrator"})
        if request.url.path == "/echo-token":  # a cart whose error page quotes the token
            return httpx.Response(400, text=f"bad request with token {token}")
        return httpx.Response(200, json={"ok": True, "body": request.content.decode()})


class LoginConnector(Connector):
    name = "logincart"
    settings_schema = {"type": "object", "properties": {"password": {"type": "string", "secret": True}}}

    def __init__(self, cart: Cart, **kwargs: Any) -> None:
        super().__init__({"password": PASSWORD}, transport=cart.transport())
        self.cart = cart
        self.options = kwargs

    def http_auth(self) -> httpx.Auth:
        return TokenLogin(
            lambda: self.client.build_request("POST", "http://cart.test/login",
                                              json={"user": "om", "password": self.secret("password")}),
            lambda reply: Token.from_jwt(reply.json()["token"]),
            check=self.outcome_for_response, clock=lambda: self.cart.clock, **self.options)

    async def post(self, body: str = "{}") -> Outcome:
        async def steps() -> Outcome:
            await self.call("POST", "http://cart.test/orders", content=body)
            return Delivered("posted")
        return await self.outcome_of(steps())


def auth_of(connector: Connector) -> TokenLogin:
    auth = connector.client.auth
    assert isinstance(auth, TokenLogin)
    return auth


# -- tokens ---------------------------------------------------------------------

def test_a_jwts_expiry_is_read_without_verifying_it() -> None:
    assert jwt_expiry(jwt(NOW + 60)) == NOW + 60
    assert jwt_expiry(jwt(None)) is None
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.%%%.c") is None
    assert jwt_expiry(f"{b64({})}.{b64({'exp': True})}.x") is None
    assert Token.from_jwt(jwt(NOW + 60)).expires_at == NOW + 60
    assert Token.from_jwt("opaque", lifetime=300, now=NOW).expires_at == NOW + 300
    assert Token.from_jwt("opaque").expires_at is None
    assert Token.lasting("t", 10, now=NOW) == Token("t", NOW + 10)


def test_a_token_never_shows_its_value() -> None:
    token = Token("sekrit-token-value", NOW)
    assert "sekrit" not in repr(token) and "sekrit" not in str(token)
    assert "sekrit" not in repr(HeaderAuth("X-Auth-Token", "sekrit-key-value"))


# -- TokenLogin -------------------------------------------------------------------

async def test_logs_in_once_and_sends_the_token_with_every_request() -> None:
    cart = Cart()
    connector = LoginConnector(cart)
    outcomes = [await connector.post() for _ in range(3)]
    await connector.aclose()
    assert outcomes == [Delivered("posted")] * 3
    assert cart.logins == 1
    tokens = {auth for what, auth, _ in cart.seen if what == "POST /orders"}
    assert len(tokens) == 1 and str(next(iter(tokens))).startswith("Bearer ")


async def test_concurrent_sends_wait_for_one_login() -> None:
    cart = Cart(login_delay=0.05)
    connector = LoginConnector(cart)
    outcomes = await asyncio.gather(*(connector.post() for _ in range(10)))
    await connector.aclose()
    assert outcomes == [Delivered("posted")] * 10
    assert cart.logins == 1


async def test_logs_in_again_ahead_of_expiry() -> None:
    cart = Cart(lifetime=600)
    connector = LoginConnector(cart, margin=60)
    await connector.post()
    cart.clock += 539  # 61 s left: still good
    await connector.post()
    assert cart.logins == 1
    cart.clock += 2  # 59 s left: due
    await connector.post()
    assert cart.logins == 2
    assert not any(auth is None for what, auth, _ in cart.seen if what == "POST /orders")
    await connector.aclose()


async def test_a_short_lived_token_is_renewed_at_half_its_life() -> None:
    cart = Cart(lifetime=40)
    connector = LoginConnector(cart, margin=60)
    await connector.post()
    cart.clock += 19
    await connector.post()
    assert cart.logins == 1
    cart.clock += 2
    await connector.post()
    assert cart.logins == 2
    await connector.aclose()


async def test_a_401_logs_in_again_once_and_sends_the_request_again() -> None:
    cart = Cart()
    connector = LoginConnector(cart)
    await connector.post()
    cart.live.clear()  # the cart restarted: every token it gave is void
    assert await connector.post('{"status": "shipped"}') == Delivered("posted")
    assert cart.logins == 2
    sent = [(what, body) for what, _, body in cart.seen]
    # The refused request went again, whole, after the second login.
    assert sent[-3:] == [("POST /orders", b'{"status": "shipped"}'), ("POST /login", sent[-2][1]),
                         ("POST /orders", b'{"status": "shipped"}')]
    await connector.aclose()


async def test_concurrent_401s_log_in_again_once() -> None:
    cart = Cart(login_delay=0.02)
    connector = LoginConnector(cart)
    await connector.post()
    cart.live.clear()
    outcomes = await asyncio.gather(*(connector.post() for _ in range(6)))
    await connector.aclose()
    assert outcomes == [Delivered("posted")] * 6
    assert cart.logins == 2


async def test_a_second_401_is_failed_with_the_carts_words() -> None:
    cart = Cart()
    cart.refuse_every_token = True
    connector = LoginConnector(cart)
    outcome = await connector.post()
    assert isinstance(outcome, Failed)
    assert outcome.reason == ("the cart refused a fresh login token: HTTP 401: "
                              '{"message":"token revoked by an administrator"}')
    assert cart.logins == 2  # the first login, then once again: never more
    # Connectors that catch httpx.HTTPError themselves get the same outcome from outcome_for_transport_error.
    with pytest.raises(LoginFailed) as caught:
        await connector.client.post("http://cart.test/orders")
    assert outcome_for_transport_error(caught.value) == outcome
    await connector.aclose()


@pytest.mark.parametrize(("reply", "expected"), [
    (httpx.Response(401, json={"message": "invalid credentials"}),
     Failed('login refused: HTTP 401 from the cart: {"message":"invalid credentials"}')),
    (httpx.Response(503, headers={"Retry-After": "7"}, text="busy"), RetryLater("login: HTTP 503 from the cart", 7.0)),
    (httpx.Response(200, text="<html>a proxy's page</html>"),
     RetryLater("the cart's login reply held no token (JSONDecodeError)")),
    (httpx.Response(200, json={"token": ""}), RetryLater("the cart's login reply held no token")),
    (httpx.Response(200, json={"data": {"login": {"__typename": "InvalidCredentialsError",
                                                  "errorCode": "INVALID_CREDENTIALS_ERROR",
                                                  "message": "The provided credentials are invalid"}}}),
     Failed("login refused: the cart refused: INVALID_CREDENTIALS_ERROR: The provided credentials are invalid")),
], ids=["refused", "busy", "no-json", "empty-token", "graphql-error-result"])
async def test_a_failed_login_ends_the_send_with_its_outcome(reply: httpx.Response, expected: Outcome) -> None:
    class GraphQLAware(LoginConnector):
        def classify(self, response: httpx.Response) -> Outcome | None:
            return outcome_for_graphql(response)

    cart = Cart()
    cart.login_reply = reply
    connector = GraphQLAware(cart)
    assert await connector.post() == expected
    assert [what for what, _, _ in cart.seen] == ["POST /login"]  # the request itself never went
    await connector.aclose()


async def test_a_login_request_without_a_timeout_gets_the_requests() -> None:
    cart = Cart()

    class Bare(LoginConnector):
        def http_auth(self) -> httpx.Auth:
            return TokenLogin(lambda: httpx.Request("POST", "http://cart.test/login",
                                                    json={"user": "om", "password": PASSWORD}),
                              lambda reply: Token(reply.json()["token"]))

    timeouts: list[Any] = []
    inner = cart.handle

    async def handle(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions.get("timeout"))
        return await inner(request)

    cart.handle = handle  # type: ignore[method-assign]
    connector = Bare(cart)
    await connector.post()
    await connector.aclose()
    assert len(timeouts) == 2 and timeouts[0] == timeouts[1] and timeouts[0]["read"] == Connector.timeout


async def test_a_subclass_may_override_the_login_and_the_header() -> None:
    seen: list[str | None] = []

    class ApiTokenLogin(TokenLogin):
        def login_request(self) -> httpx.Request:
            return httpx.Request("GET", "http://cart.test/session")

        def read_token(self, reply: httpx.Response) -> Token:
            return Token.lasting(reply.headers["x-session"], 3600)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/session":
            return httpx.Response(200, headers={"x-session": "sess-123456"})
        seen.append(request.headers.get("x-session-token"))
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle),
                                 auth=ApiTokenLogin(header="X-Session-Token", scheme=None)) as client:
        await client.get("http://cart.test/orders")
    assert seen == ["sess-123456"]
    with pytest.raises(NotImplementedError, match="login callable"):
        TokenLogin().login_request()


async def test_a_token_held_is_masked_in_reasons_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    cart = Cart()
    connector = LoginConnector(cart)
    assert connector.held_secrets() == ()
    with caplog.at_level(logging.DEBUG):
        async def steps() -> Outcome:
            await connector.call("GET", "http://cart.test/echo-token")
            return Delivered()
        outcome = await connector.outcome_of(steps())
    token = auth_of(connector).held_secrets[0]
    assert isinstance(outcome, Failed) and token in outcome.reason  # the cart's words, as the cart said them
    masked = connector.scrub(outcome.reason)
    assert token not in masked and "bad request with token" in masked
    assert connector.held_secrets() == (token,)
    assert token not in caplog.text and PASSWORD not in caplog.text
    assert "sub" not in repr(auth_of(connector)) and token not in repr(auth_of(connector))
    await connector.aclose()


def test_header_auth_and_httpx_basic_auth_set_their_headers() -> None:
    request = httpx.Request("GET", "http://cart.test/")
    next(HeaderAuth("Authorization", "key-123", scheme="Bearer").auth_flow(request))
    assert request.headers["authorization"] == "Bearer key-123"
    next(HeaderAuth("X-Auth-Token", "key-456").auth_flow(request))
    assert request.headers["x-auth-token"] == "key-456"
    next(httpx.BasicAuth("ck_user", "cs_secret").auth_flow(request))
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"ck_user:cs_secret").decode()


# -- classify, call, outcome_of ---------------------------------------------------------

class RefusingCart(Connector):
    """Answers business refusals with HTTP 500 and {"error": {"code", "message"}}."""

    name = "refusing"

    def classify(self, response: httpx.Response) -> Outcome | None:
        body = json_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 500 and isinstance(error, dict) and error.get("code") == "NOT_CANCELABLE":
            return Failed(f"the cart refused: {error.get('message')}")
        if response.status_code == 409:
            return AlreadyDone("the cart had it")
        return outcome_for_graphql(response)


@pytest.mark.parametrize(("reply", "expected"), [
    (httpx.Response(500, json={"error": {"code": "NOT_CANCELABLE",
                                         "message": "order is not cancelable at this status"}}),
     Failed("the cart refused: order is not cancelable at this status")),
    (httpx.Response(500, text="<html>Internal Server Error</html>"), RetryLater("HTTP 500 from the cart")),
    (httpx.Response(409), AlreadyDone("the cart had it")),
    (httpx.Response(200, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]},
                    headers={"Retry-After": "3"}),
     RetryLater("the cart asks to wait: THROTTLED: Throttled", 3.0)),
    (httpx.Response(200, json={"data": {"fulfillmentCreate": {"fulfillment": None, "userErrors": [
        {"field": ["fulfillment", "trackingInfo"], "message": "unknown carrier"}]}}}),
     Failed("the cart refused: unknown carrier (fulfillment.trackingInfo)")),
    (httpx.Response(404, text="no such order"), Failed("HTTP 404 from the cart: no such order")),
    (httpx.Response(200, json={"data": {"order": {"state": "Shipped"}}}), Delivered("done")),
], ids=["refusal-in-500", "plain-500", "classified-success", "graphql-throttled", "user-errors", "404", "ok"])
async def test_classify_reads_a_reply_before_the_status_code_rules(reply: httpx.Response, expected: Outcome) -> None:
    connector = RefusingCart({}, transport=httpx.MockTransport(lambda request: reply))

    async def steps() -> Outcome:
        await connector.call("POST", "http://cart.test/orders/1/cancel")
        return Delivered("done")
    assert await connector.outcome_of(steps()) == expected
    await connector.aclose()


async def test_outcome_of_turns_network_errors_into_retry_later() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    connector = RefusingCart({}, transport=httpx.MockTransport(refuse))

    async def direct() -> Outcome:  # a send that used the client itself
        await connector.client.get("http://cart.test/")
        return Delivered()

    async def via_call() -> Outcome:
        await connector.call("GET", "http://cart.test/")
        return Delivered()
    assert await connector.outcome_of(direct()) == RetryLater("network error: ConnectError")
    assert await connector.outcome_of(via_call()) == RetryLater("network error: ConnectError")
    with pytest.raises(StopSend) as stop:
        await connector.call("GET", "http://cart.test/")
    assert stop.value.reason == "network error: ConnectError"
    await connector.aclose()


def test_json_body_is_none_for_a_page_that_is_not_json() -> None:
    assert json_body(httpx.Response(500, text="<html>oops</html>")) is None
    assert json_body(httpx.Response(200, content=b"\xff\xfe\x00")) is None
    assert json_body(httpx.Response(200, json=[1])) == [1]


# -- GraphQL ------------------------------------------------------------------------------

def test_graphql_errors_finds_the_specs_errors_user_errors_and_error_results() -> None:
    body = {
        "errors": [{"message": "Field 'x' doesn't exist", "locations": [{"line": 1, "column": 2}]}, "bare"],
        "data": {
            "transitionOrderToState": {"__typename": "OrderStateTransitionError",
                                       "errorCode": "ORDER_STATE_TRANSITION_ERROR",
                                       "message": "Cannot transition Order from \"Delivered\" to \"Shipped\"",
                                       "transitionError": "x"},
            "orderCancel": {"job": None, "userErrors": [{"field": "reason", "message": "bad reason",
                                                          "code": "INVALID"}]},
        },
    }
    errors = graphql_errors(body)
    assert [(e.code, e.message, e.where) for e in errors] == [
        (None, "Field 'x' doesn't exist", "errors[0]"),
        (None, "bare", "errors[1]"),
        ("ORDER_STATE_TRANSITION_ERROR", 'Cannot transition Order from "Delivered" to "Shipped": x',
         "data.transitionOrderToState"),
        ("INVALID", "bad reason (reason)", "data.orderCancel.userErrors[0]"),
    ]
    assert graphql_errors({"data": {"order": {"state": "Shipped", "lines": [{"id": 1}]}}}) == []
    assert graphql_errors({"data": {"orderCancel": {"userErrors": []}}}) == []
    assert graphql_errors(None) == [] and graphql_errors(["errors"]) == []
    assert outcome_for_graphql(httpx.Response(200, text="not json")) is None


# -- one connector per store ----------------------------------------------------------------

async def test_the_controller_keeps_one_connector_per_store_for_its_run(
        make_engine: Callable[..., StatusEngine]) -> None:
    main = base_setup()["stores"][0]
    engine = make_engine(stores=[main, {**main, "id": "second"}])
    orders = add_orders(engine, 3) + add_orders(engine, 3, store="second", prefix="S")
    engine.fire("Order Shipped", orders)
    made: list[tuple[str, ScriptedConnector]] = []

    def factory(record: StackRecord) -> Connector:
        made.append((record.store_id, ScriptedConnector()))
        return made[-1][1]

    stats = await StackController(engine.config, engine.stack, connector_factory=factory).run(drain=True)
    assert stats.delivered == 6
    # Per-store state (a login's token, a carrier list) lives on these: one each, for the whole run.
    assert sorted(store for store, _ in made) == ["main", "second"]
    assert sorted(len(connector.sent) for _, connector in made) == [3, 3]
    assert all({u.store_id for u in connector.sent} == {store} for store, connector in made)


async def test_a_proxy_page_where_json_was_due_is_retry_later_not_a_raise() -> None:
    connector = Connector({}, transport=httpx.MockTransport(
        lambda request: httpx.Response(200, text="<html><body>Bad gateway, try later</body></html>")))

    async def steps() -> Outcome:
        reply = await connector.call("GET", "http://cart.test/orders/1")
        return Delivered(str(reply.json()["status"]))

    outcome = await connector.outcome_of(steps())
    assert outcome == RetryLater("the cart's reply could not be read as JSON: JSONDecodeError")
    await connector.aclose()


def test_graphql_reads_a_mutations_own_user_errors_and_a_transition_errors_words() -> None:
    cancel = {"data": {"orderCancel": {"job": None, "orderCancelUserErrors": [
        {"field": ["orderId"], "message": "Cannot cancel a fulfilled order", "code": "INVALID"}]}}}
    assert [str(e) for e in graphql_errors(cancel)] == ["INVALID: Cannot cancel a fulfilled order (orderId)"]
    refused = {"data": {"transitionFulfillmentToState": {
        "errorCode": "FULFILLMENT_STATE_TRANSITION_ERROR", "message": "errorResult.FULFILLMENT_STATE_TRANSITION_ERROR",
        "transitionError": "Cannot transition Fulfillment from Delivered to Shipped"}}}
    assert [e.message for e in graphql_errors(refused)] == [
        "errorResult.FULFILLMENT_STATE_TRANSITION_ERROR: Cannot transition Fulfillment from Delivered to Shipped"]


def test_a_5xx_with_graphql_errors_is_left_to_the_status_code_rules() -> None:
    busy = httpx.Response(503, json={"errors": "upstream busy"}, headers={"Retry-After": "4"})
    assert outcome_for_graphql(busy) is None
    assert Connector({}).outcome_for_response(busy) == RetryLater("HTTP 503 from the cart", 4.0)
