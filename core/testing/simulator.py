"""The simulator protocol the conformance kit drives, and the transport that carries it.

A connector's simulator is a small in-memory copy of its cart's API subset. To
be driven by the kit it offers:

- ``app()``: the cart as an ASGI app (Starlette or any other);
- ``fail_next(kind, count=1)``: the next ``count`` requests get fault ``kind``
  instead of an answer; kinds the kit uses are ``http_429`` and ``http_503``
  (both answered with a ``Retry-After`` of ``retry_after`` seconds),
  ``timeout`` (the cart never answers) and the simulator's ``permanent_fault``;
  an unknown kind raises ``ValueError``;
- ``permanent_fault``: the fault kind that is the cart's "this will never
  succeed" answer. ``http_4xx`` (a 4xx such as 422 with the cart's error body)
  for most REST carts; for a Stone Edge script cart it is ``refuse``, the
  script's ``update=False``, because an HTTP error status from a script is
  transient (a proxy page, a web server hiccup);
- ``retry_after``: the seconds its 429 and 503 answers ask the client to wait;
- ``requests``: how many requests it has received;
- ``add_order(ref, status="New")``: the cart has an order with reference ``ref``;
- ``order_state(ref)``: what the cart holds for that order (a JSON-like mapping
  with at least ``status``, in the connector's vocabulary, and anything a
  delivery creates, such as shipments), or None when it has no such order;
- ``tracking_numbers(ref)``: every tracking number the cart holds for that
  order, as ``(carrier, number)`` pairs, one pair per record the cart keeps (a
  number recorded twice is listed twice), the carrier by its name (a cart
  that stores carrier codes gives the name it knows them by; the kit compares
  names without regard to case). The kit checks that each number it sent is
  there exactly once, with its carrier.

A simulator can also be served over a real socket: :func:`serve_app` serves
any ASGI app on a free port of 127.0.0.1, and :class:`SocketTransport` sends a
connector's requests there, whatever host its settings name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import httpx

from ..serve import serve_in_thread

#: The fault kinds every simulator must offer (plus its ``permanent_fault``).
REQUIRED_FAULTS = ("http_429", "http_503", "timeout")


@runtime_checkable
class CartSimulator(Protocol):
    """What the conformance kit needs of a connector's simulator."""

    @property
    def permanent_fault(self) -> str: ...

    @property
    def retry_after(self) -> float: ...

    @property
    def requests(self) -> int: ...

    def app(self) -> Any: ...

    def fail_next(self, kind: str, count: int = 1) -> None: ...

    def add_order(self, ref: str, status: str = "New") -> None: ...

    def order_state(self, ref: str) -> Mapping[str, Any] | None: ...

    def tracking_numbers(self, ref: str) -> Sequence[tuple[str, str]]: ...


class SimulatorTransport(httpx.AsyncBaseTransport):
    """A simulator's ASGI app as an httpx transport that keeps the request's timeout.

    ``httpx.ASGITransport`` ignores timeouts (there is no socket), so a cart that
    never answers would hang the test. This transport gives up, as a socket
    would, with ``httpx.ReadTimeout`` once the request's read timeout passes,
    shortened to ``timeout_cap`` seconds so that the kit stays fast. Requests
    sent with no read timeout at all are counted in ``untimed``: against a real
    cart they could wait forever.
    """

    def __init__(self, app: Any, *, timeout_cap: float | None = 0.5) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.timeout_cap = timeout_cap
        self.untimed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        read = (request.extensions.get("timeout") or {}).get("read")
        if read is None:
            self.untimed += 1
        limits = [t for t in (read, self.timeout_cap) if t is not None]
        if not limits:
            return await self._inner.handle_async_request(request)
        limit = min(limits)
        try:
            return await asyncio.wait_for(self._inner.handle_async_request(request), limit)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {limit:g}s", request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def simulator_transport(simulator: CartSimulator, *, timeout_cap: float | None = 0.5) -> SimulatorTransport:
    """An httpx transport that sends to ``simulator`` in memory: no sockets, no patching."""
    return SimulatorTransport(simulator.app(), timeout_cap=timeout_cap)


class CheckedTransport(httpx.AsyncBaseTransport):
    """Another transport, in front of which ``check(request)`` looks at every request before it goes on:
    an exception it raises (the request breaks the cart's API description) is kept in ``problems``
    as ``"METHOD /path: message"``, and the request still goes on, so the check fails with every problem
    rather than the connector with a surprise."""

    def __init__(self, inner: httpx.AsyncBaseTransport, check: Callable[[httpx.Request], object],
                 problems: list[str]) -> None:
        self._inner = inner
        self._check = check
        self.problems = problems

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        try:
            self._check(request)
        except Exception as exc:
            self.problems.append(f"{request.method} {request.url.raw_path.decode()}: {exc}")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class UnreachableTransport(httpx.AsyncBaseTransport):
    """A cart that cannot be reached at all: every request fails to connect."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        raise httpx.ConnectError("connection refused", request=request)


class CutTransport(httpx.AsyncBaseTransport):
    """Another transport, whose connection is lost after its first ``after`` requests (None: never).

    Counts every request in ``requests``. The kit cuts a delivery that takes
    several requests after each of them, to see that sending it again makes
    only the missing changes.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, *, after: int | None = None) -> None:
        self._inner = inner
        self.after = after
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.after is not None and self.requests > self.after:
            raise httpx.ConnectError(f"connection lost after {self.after} requests", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class AnswerTransport(httpx.AsyncBaseTransport):
    """Another transport, in front of which ``answer_next(status)`` makes the next requests get a bare
    ``status`` page (a web server's or a proxy's, not the cart's own error body), without reaching the cart."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.pending: list[int] = []

    def answer_next(self, status: int, count: int = 1) -> None:
        self.pending.extend([status] * count)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.pending:
            status = self.pending.pop(0)
            return httpx.Response(status, headers={"content-type": "text/html"},
                                  text=f"<html><body><h1>{status} {httpx.codes.get_reason_phrase(status)}</h1>"
                                       "</body></html>")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` (a simulator's ``app()``) on a free port of 127.0.0.1 until the block ends;
    yields its base URL (``http://127.0.0.1:PORT``). The socket is bound before the server starts."""
    with serve_in_thread(app, lifespan="off") as url:
        yield url


class SocketTransport(httpx.AsyncBaseTransport):
    """Sends every request over a real TCP socket to ``base_url`` (from :func:`serve_app`), keeping its
    path and query: a connector whose settings name ``http://cart.test`` reaches the served simulator."""

    def __init__(self, base_url: str) -> None:
        self._target = httpx.URL(base_url)
        self._inner = httpx.AsyncHTTPTransport()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        request.url = request.url.copy_with(scheme=self._target.scheme, host=self._target.host,
                                            port=self._target.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
