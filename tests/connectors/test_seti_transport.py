"""The seti connector's own transport: real sockets, one write per request, closed connections noticed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest
from cartstatus import Delivered, StatusUpdate, Tracking
from cartstatus.connectors.seti import SetiConnector, protocol
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.connectors.seti.transport import _Backend, _Stream
from cartstatus.serve import serve_in_thread


def _update(i: int) -> StatusUpdate:
    return StatusUpdate(f"k{i}", "main", f"{1000 + i}", f"C{1000 + i}", "Shipped", "shipped", "New",
                        "Order Shipped", "2025-01-02T03:04:05Z", (Tracking("UPS", f"1Z{i}", "2025-01-02"),),
                        "a note & more=1", None, None)


async def test_updates_over_real_connections_arrive_with_every_field() -> None:
    simulator = SetiSimulator(accept_unknown=True)
    with serve_in_thread(simulator.app()) as base:
        connector = SetiConnector({"url": f"{base}/seom.php", "user": "om", "password": "secret", "code": "main"})
        try:
            pool = connector.client._transport._pool  # type: ignore[attr-defined]
            assert isinstance(pool._network_backend, _Backend)
            outcomes = await asyncio.gather(*(connector.send(_update(i)) for i in range(40)))
            version = await connector.test_connection()
        finally:
            await connector.aclose()
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert version.ok
    got = {r.refnumber: r for r in simulator.received}
    assert set(got) == {f"{1000 + i}" for i in range(40)}
    first = got["1000"]
    assert (first.ordernumber, first.orderstatus) == ("C1000", "shipped")
    assert first.tracking == [("UPS", "1Z0", "2025-01-02")]
    assert first.fields["orderdetail"] == "a note & more=1"
    assert first.fields["setiuser"] == "om" and first.fields["omversion"] == "6.000"


class _Recorder(httpcore.AsyncNetworkStream):
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b"HTTP/1.1 200 OK\r\n"

    async def aclose(self) -> None:
        self.closed = True


async def test_a_request_leaves_in_one_write_when_the_response_is_read() -> None:
    inner = _Recorder()
    stream = _Stream(inner)
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream.write(b"")
    await stream.write(b"a=1&b=2")
    assert inner.writes == []
    assert await stream.read(100) == b"HTTP/1.1 200 OK\r\n"
    assert inner.writes == [b"POST / HTTP/1.1\r\n\r\na=1&b=2"]
    await stream.read(100)
    assert len(inner.writes) == 1
    await stream.aclose()
    assert inner.closed
    # No socket: taken for closed, as httpcore's own check does.
    assert stream.get_extra_info("is_readable") is True


@contextlib.asynccontextmanager
async def _one_reply_server() -> AsyncIterator[tuple[str, list[int], asyncio.Event]]:
    """A server that answers one request per connection, keep-alive, then closes it."""
    connections: list[int] = []
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        body = b"SETIResponse: update=OK;Notes="
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        writer.close()  # the script's server hangs up while the client keeps the connection
        await writer.wait_closed()
        hung_up.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/seom.php", connections, hung_up


async def test_a_connection_the_server_closed_is_not_used_again() -> None:
    async with _one_reply_server() as (url, connections, hung_up):
        connector = SetiConnector({"url": url, "user": "om", "password": "secret", "code": "main"})
        try:
            assert isinstance(await connector.send(_update(1)), Delivered)
            await hung_up.wait()  # closed on the server's side (on loopback, at once on this side too)
            # Sent on the closed connection, this would fail ("Server disconnected").
            assert isinstance(await connector.send(_update(2)), Delivered)
        finally:
            await connector.aclose()
    assert connections == [0, 1]


async def test_a_proxy_named_in_the_environment_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy is a server that answers every request itself: the update must reach it.
    async with _one_reply_server() as (proxy, connections, _hung_up):
        monkeypatch.setenv("HTTP_PROXY", proxy.removesuffix("/seom.php"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        connector = SetiConnector({"url": "http://cart.invalid/seom.php", "user": "om", "password": "secret",
                                   "code": "main"})
        try:
            assert isinstance(await connector.send(_update(1)), Delivered)
        finally:
            await connector.aclose()
    assert connections == [0]


async def test_a_closed_connector_opens_a_new_transport() -> None:
    simulator = SetiSimulator(accept_unknown=True)
    with serve_in_thread(simulator.app()) as base:
        connector = SetiConnector({"url": f"{base}/seom.php", "user": "om", "password": "secret", "code": "main"})
        assert isinstance(await connector.send(_update(1)), Delivered)
        await connector.aclose()
        assert isinstance(await connector.send(_update(2)), Delivered)
        await connector.aclose()
    assert [r.refnumber for r in simulator.received] == ["1001", "1002"]


async def test_an_update_carries_the_clients_headers_and_its_form() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="SETIResponse: update=OK;Notes=")

    connector = SetiConnector({"url": "http://cart.test/seom.php", "user": "om", "password": "p&ss word",
                               "code": "main", "timeout": 7}, transport=httpx.MockTransport(handler))
    try:
        assert isinstance(await connector.send(_update(3)), Delivered)
    finally:
        await connector.aclose()
    (request,) = seen
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["user-agent"].startswith("python-httpx/")
    assert request.extensions["timeout"] == {"connect": 7, "read": 7, "write": 7, "pool": 7}
    fields = {**protocol.base_fields("updatestatus", "om", "p&ss word", "main"),
              **protocol.update_fields(_update(3))}
    # Byte for byte what httpx's data= would have sent.
    assert request.content == httpx.Request("POST", "http://x/", data=fields).content
