"""The HTTP transport under every connector's client: httpx above, aiohttp below."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from typing import NoReturn, cast

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

#: The connections one connector keeps open to its cart, busy or idle.
MAX_CONNECTIONS = 64
#: Seconds an idle connection is kept for the next request (httpx's own default).
KEEPALIVE_SECONDS = 5.0


class CartTransport(AiohttpTransport):
    """The HTTP transport under every connector's client (:attr:`Connector.client`).

    httpx's API above, aiohttp's connection pool and HTTP parser below, joined by
    httpx-aiohttp, all through public APIs. Measured with bench/deliver.py: a
    bare loop on httpx's own transport takes about three times the client CPU
    per request of a raw aiohttp loop, and the stack controller took about a
    quarter less CPU per update on this transport than on httpx's pool.
    Cookies, authentication, redirects and event hooks stay the client's
    (aiohttp keeps no cookie jar of its own here). A connection the cart closed
    while idle is not used again (aiohttp drops it when the close arrives).
    Proxies named in the environment (``HTTP_PROXY``, ``NO_PROXY``...) are
    followed, as httpx's default transport follows them. aiohttp looks them up
    in a thread for each request, so it is told to only when the environment
    names one; it then also takes a host's login from ``~/.netrc`` for a
    request that carries none, as httpx does not.

    Every error is an httpx error named for what happened (httpx-aiohttp calls
    a refused connection or a dropped one a connect timeout, and lets a reply
    that is not HTTP through as aiohttp's own error).
    """

    def __init__(self) -> None:
        tls = httpx.create_ssl_context()  # verified, with the certificates the environment names, as httpx's
        super().__init__(verify=tls, client=lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS, ssl=tls),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=bool(urllib.request.getproxies()),
        ))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            _raise_for(exc, request)
        response.stream = _CheckedStream(cast(httpx.AsyncByteStream, response.stream), request)  # aiohttp's body
        return response


class _CheckedStream(httpx.AsyncByteStream):
    """A reply's body, its read errors named as :class:`CartTransport` names them."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            _raise_for(exc, self._request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _raise_for(exc: Exception, request: httpx.Request) -> NoReturn:
    """Raise the httpx error for what aiohttp met (a timeout, a failed connect, a lost connection, a reply that
    is not HTTP), from aiohttp's own."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None else exc
    message = str(cause) or type(cause).__name__
    kind: type[httpx.TransportError]
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(cause, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        kind = httpx.ReadTimeout
    elif isinstance(cause, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        kind = httpx.ProxyError
    elif isinstance(cause, aiohttp.ClientConnectorError):  # refused, no such host, TLS handshake
        kind = httpx.ConnectError
    elif isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError  # httpx's name for a dropped reply and for one that is not HTTP
    elif isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        kind = httpx.ReadError
    elif isinstance(exc, httpx.TransportError):
        raise exc  # httpx-aiohttp's own mapping (an unsupported URL)
    else:
        kind = httpx.NetworkError
    raise kind(message, request=request) from cause
