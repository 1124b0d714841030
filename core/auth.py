"""Authentication for connectors, on httpx's own :class:`httpx.Auth` flow.

A connector returns one of these from :meth:`Connector.http_auth`; its
:attr:`Connector.client` then authenticates every request with it:

- ``httpx.BasicAuth(user, password)``: HTTP Basic (httpx's own);
- :class:`HeaderAuth`: a fixed API key in a header;
- :class:`TokenLogin`: log in for a token, keep it, log in again when it is
  due or refused.

A connector instance serves one store, so a :class:`TokenLogin` made by
``http_auth`` caches one store's token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass

import httpx

from .connector import REASON_BOUND, StopSend, outcome_for_http_error
from .outcomes import SUCCESS, Failed, Outcome, RetryLater

#: Log in again this many seconds before a token's expiry (or half its life, when shorter).
REFRESH_MARGIN = 60.0
#: How many of the tokens a login held are kept for masking (a reason may quote an older one).
TOKENS_REMEMBERED = 4


class HeaderAuth(httpx.Auth):
    """A fixed credential in a header: ``HeaderAuth("X-Auth-Token", key)``, or
    ``HeaderAuth("Authorization", key, scheme="Bearer")`` for ``Authorization: Bearer <key>``."""

    def __init__(self, name: str, value: str, *, scheme: str | None = None) -> None:
        self.name = name
        self._value = f"{scheme} {value}" if scheme else value

    def __repr__(self) -> str:
        return f"HeaderAuth({self.name!r}, ****)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.name] = self._value
        yield request


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (seconds since the epoch) of a JWT, or None when it is not a JWT or has none.

    Read without checking the signature: the cart checks it; we only need to
    know when to log in again.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):  # not base64, not UTF-8, not JSON
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


@dataclass(frozen=True, repr=False)
class Token:
    """A token a login gave, and when it stops working (seconds since the epoch; None: until refused)."""

    value: str
    expires_at: float | None = None

    def __repr__(self) -> str:  # never the value: a repr ends up in logs and reasons
        return f"Token(****, expires_at={self.expires_at!r})"

    @classmethod
    def lasting(cls, value: str, seconds: float | None, *, now: float | None = None) -> Token:
        """A token good for ``seconds`` from now (an ``expires_in``); None: until the cart refuses it."""
        if seconds is None:
            return cls(value)
        return cls(value, (time.time() if now is None else now) + float(seconds))

    @classmethod
    def from_jwt(cls, value: str, *, lifetime: float | None = None, now: float | None = None) -> Token:
        """A JWT, expiring at its ``exp`` claim; without one, after ``lifetime`` seconds (or when refused)."""
        exp = jwt_expiry(value)
        return cls(value, exp) if exp is not None else cls.lasting(value, lifetime, now=now)


class LoginFailed(StopSend, httpx.HTTPError):
    """The cart refused the login, or refused a fresh token: the send ends with :attr:`outcome`.

    An ``httpx.HTTPError``, so that the usual ``except httpx.HTTPError`` with
    :func:`~cartstatus.connector.outcome_for_transport_error` gives this outcome
    (``Failed`` with the cart's words for a refusal, ``RetryLater`` for a login
    that met a transient fault); :meth:`Connector.call` and
    :meth:`Connector.outcome_of` give it too.
    """

    def __init__(self, outcome: Failed | RetryLater, request: httpx.Request | None = None) -> None:
        httpx.HTTPError.__init__(self, outcome.reason)
        self.outcome = outcome
        if request is not None:
            self.request = request


def _login_outcome(outcome: Outcome) -> Failed | RetryLater:
    if isinstance(outcome, RetryLater):
        return RetryLater(f"login: {outcome.reason}", outcome.delay)
    return Failed(f"login refused: {getattr(outcome, 'reason', '') or type(outcome).__name__}")


class TokenLogin(httpx.Auth):
    """Log in for a token, keep it, and send it with every request.

    ``login()`` builds the login request (``client.build_request(...)``: it goes
    out through the same client and transport, and cannot recurse into this
    auth); ``read_token(reply)`` reads the :class:`Token` from its reply
    (``Token.from_jwt(reply.json()["token"])``). Both may instead be overridden
    in a subclass as :meth:`login_request` and :meth:`read_token`. ``check(reply)``
    reads the login's reply first (pass the connector's ``outcome_for_response``
    so that its :meth:`~Connector.classify` applies): any outcome there ends the
    send with :class:`LoginFailed`.

    The token is logged in for when first needed and again ``margin`` seconds
    before it expires (half its life, when that is shorter). A 401 makes it log
    in again once and send the request once more; a second 401 raises
    :class:`LoginFailed` with ``Failed`` and the cart's words. One login at a
    time: sends that find the token missing, due or refused wait for the one
    login under way and use its token.
    """

    requires_request_body = True  # the request may be sent twice (after a 401)
    requires_response_body = True  # a refusal's words go into the reason

    def __init__(
        self,
        login: Callable[[], httpx.Request] | None = None,
        read_token: Callable[[httpx.Response], Token] | None = None,
        *,
        check: Callable[[httpx.Response], Outcome | None] = outcome_for_http_error,
        header: str = "Authorization",
        scheme: str | None = "Bearer",
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._login = login
        self._read = read_token
        self.check = check
        self.header = header
        self.scheme = scheme
        self.margin = margin
        self.clock = clock
        self.logins = 0
        self._token: Token | None = None
        self._refresh_at: float | None = None
        self._held: collections.deque[str] = collections.deque(maxlen=TOKENS_REMEMBERED)
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenLogin(logins={self.logins}, token={self._token!r})"

    # -- what a subclass may override ------------------------------------------

    def login_request(self) -> httpx.Request:
        """The login request; by default the ``login`` callable's."""
        if self._login is None:
            raise NotImplementedError("give TokenLogin a login callable or override login_request")
        return self._login()

    def read_token(self, reply: httpx.Response) -> Token:
        """The token in the login's (successful) reply; by default the ``read_token`` callable's."""
        if self._read is None:
            raise NotImplementedError("give TokenLogin a read_token callable or override read_token")
        return self._read(reply)

    def attach(self, request: httpx.Request, token: str) -> None:
        """Put the token on a request: ``Authorization: Bearer <token>`` unless ``header``/``scheme`` say otherwise."""
        request.headers[self.header] = f"{self.scheme} {token}" if self.scheme else token

    # -- the flow ---------------------------------------------------------------

    @property
    def held_secrets(self) -> tuple[str, ...]:
        """The tokens held lately: :meth:`Connector.scrub` masks them as it masks the settings' secrets."""
        return tuple(self._held)

    def _due(self, token: Token | None) -> bool:
        return token is None or (self._refresh_at is not None and self.clock() >= self._refresh_at)

    def _request_for_login(self, request: httpx.Request) -> httpx.Request:
        login = self.login_request()
        if "timeout" not in login.extensions:  # never a login that could wait forever
            login.extensions["timeout"] = request.extensions.get("timeout")
        return login

    async def _accept(self, reply: httpx.Response) -> Token:
        """The token from the login's reply, kept; :class:`LoginFailed` when there is none."""
        await reply.aread()
        self.logins += 1
        outcome = self.check(reply)
        if outcome is not None and not isinstance(outcome, SUCCESS):
            raise LoginFailed(_login_outcome(outcome), reply.request)
        try:
            token = self.read_token(reply)
        except LoginFailed:
            raise
        except Exception as exc:  # a reply without a token (a proxy's page): transient, as any unreadable reply
            raise LoginFailed(RetryLater(f"the cart's login reply held no token ({type(exc).__name__})"),
                              reply.request) from None
        if not isinstance(token, Token) or not token.value:
            raise LoginFailed(RetryLater("the cart's login reply held no token"), reply.request)
        now = self.clock()
        self._refresh_at = None
        if token.expires_at is not None:
            self._refresh_at = token.expires_at - min(self.margin, max(0.0, (token.expires_at - now) / 2))
        self._token = token
        self._held.append(token.value)
        return token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        token = self._token
        if self._due(token):
            async with self._lock:  # held across the login's round trip: one login at a time
                if self._token is token:  # else another send logged in while this one waited
                    await self._accept((yield self._request_for_login(request)))
        used = self._token
        assert used is not None
        self.attach(request, used.value)
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._token is used:  # the first 401 for this token: log in again, once
                await self._accept((yield self._request_for_login(request)))
        fresh = self._token
        assert fresh is not None
        self.attach(request, fresh.value)
        response = yield request
        if response.status_code == 401:
            await response.aread()
            raise LoginFailed(Failed("the cart refused a fresh login token: HTTP 401: "
                                     + response.text[:REASON_BOUND].strip()), request)


__all__ = ["REFRESH_MARGIN", "HeaderAuth", "LoginFailed", "Token", "TokenLogin", "jwt_expiry"]
