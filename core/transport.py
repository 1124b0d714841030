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


class CartTransport(httpx.AsyncBaseTransport):
    """The HTTP transport under every connector's client (:attr:`Connector.client`).

    httpx's API above, aiohttp's connection pool and HTTP parser below, joined by
    httpx-aiohttp, all through public APIs. Measured with bench/deliver.py: a
    bare loop on httpx's own transport takes about three times the client CPU
    per request of a raw aiohttp loop, and the stack controller took about a
    quarter less CPU per update on this transport than on httpx's pool.
    Cookies, authentication, redirects and event hooks stay the client's
    (aiohttp keeps no cookie jar of its own here). A connection the cart closed
    while idle is not used again (aiohttp drops it when the close arrives).

    Proxies named in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, ``NO_PROXY``) are followed, as httpx's default transport
    follows them: a request goes through the pool for its proxy, or the direct
    one. (aiohttp's own ``trust_env`` would look them up in a thread for every
    request, and take logins from ``~/.netrc`` besides.)

    Every error is an httpx error named for what happened (httpx-aiohttp calls
    a refused connection or a dropped one a connect timeout, and lets a reply
    that is not HTTP through as aiohttp's own error).
    """

    def __init__(self) -> None:
        self._tls = httpx.create_ssl_context()  # verified, with the certificates the environment names, as httpx's
        self._proxies = urllib.request.getproxies()  # read once, as httpx reads them for a client
        self._pools: dict[str | None, AiohttpTransport] = {}  # by proxy URL; None: direct

    def _pool(self, url: httpx.URL) -> AiohttpTransport:
        proxy = None
        if self._proxies and not urllib.request.proxy_bypass(url.host):
            proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        pool = self._pools.get(proxy)
        if pool is None:
            pool = self._pools[proxy] = AiohttpTransport(
                verify=self._tls, proxy=httpx.Proxy(proxy) if proxy else None, client=self._session)
        return pool

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS, ssl=self._tls),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._pool(request.url).handle_async_request(request)
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            _raise_for(exc, request)
        response.stream = _CheckedStream(cast(httpx.AsyncByteStream, response.stream), request)  # aiohttp's body
        return response

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


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
