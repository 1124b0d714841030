"""An httpx transport for talking to one cart script many times a second.

httpx's default transport, with two costs of its network streams taken out
(measured on the stack controller, which keeps several keep-alive connections
to a store busy):

* Before each request, and after each response, the connection pool asks every
  idle connection whether the server closed it (``is_readable``). The default
  stream answers through anyio's socket attributes, which call ``getpeername``
  and build a dict of attributes every time: with four connections that was
  about a sixth of the controller's CPU per update. Here the socket is looked
  up once per connection and the check is one ``poll``.
* A request went out in two writes (headers, then the form body): two system
  calls, and often two packets for the script's server to read. Here writes
  are held until the stream is read, so a request leaves in one.

Everything else (connection pooling, HTTP/1.1, TLS, timeouts, the exceptions
raised) is httpx's and httpcore's own.
"""

from __future__ import annotations

import select
import socket
import ssl
import typing

import httpcore
import httpx


class _Readable:
    """Whether a socket has something to read (the server's close, on an idle connection)."""

    __slots__ = ("_check",)

    def __init__(self, sock: socket.socket | None) -> None:
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            self._check: typing.Callable[[], bool] = lambda: True  # gone: as good as closed
        elif hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            self._check = lambda: bool(poller.poll(0))
        else:  # pragma: no cover - Windows
            self._check = lambda: bool(select.select([fd], [], [], 0)[0])

    def __call__(self) -> bool:
        return self._check()


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that sends a request in one write and checks for a close cheaply."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._unsent: list[bytes] = []
        self._readable = _Readable(inner.get_extra_info("socket"))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # Held until the response is read: HTTP/1.1 reads only after the whole request is written.
        if buffer:
            self._unsent.append(buffer)

    async def _flush(self, timeout: float | None) -> None:
        if self._unsent:
            data = b"".join(self._unsent)
            self._unsent.clear()
            await self._inner.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._unsent.clear()
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            return self._readable()
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams wrapped in :class:`_Stream`."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - not used by carts
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def script_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's HTTP transport (verified TLS, the environment's certificates) on the lean streams."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx takes no network backend of its own: give its transport a pool built
    # exactly as it builds one, with the backend above.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=True),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_Backend(),
    )
    return transport
