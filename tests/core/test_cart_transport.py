"""Every connector's transport (cartstatus.transport) on real sockets: updates arrive whole, a connection the
cart closed is not used again, proxies in the environment are followed, and each failure is an httpx error named
for what happened."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import httpx
import pytest
from cartstatus import Connector, Delivered, RetryLater, StatusUpdate, Tracking
from cartstatus.connectors.seti import SetiConnector, protocol
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.outcomes import Outcome
from cartstatus.serve import serve_in_thread

OK = b"SETIResponse: update=OK;Notes="
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _update(i: int) -> StatusUpdate:
    return StatusUpdate(f"k{i}", "main", f"{1000 + i}", f"C{1000 + i}", "Shipped", "shipped", "New",
                        "Order Shipped", "2025-01-02T03:04:05Z", (Tracking("UPS", f"1Z{i}", "2025-01-02"),),
                        "a note & more=1", None, None)


def _seti(url: str, **settings: object) -> SetiConnector:
    return SetiConnector({"url": url, "user": "om", "password": "secret", "code": "main", **settings})


class _Plain(Connector):
    """A connector with nothing of its own: only what Connector.client gives it."""

    name = "plain"

    async def send(self, update: StatusUpdate) -> Outcome:
        await self.client.get(str(self.settings["url"]))
        return Delivered("ok")


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)
    return head + await reader.readexactly(length)


def _reply(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@contextlib.asynccontextmanager
async def _server(handle: Handler) -> AsyncIterator[str]:
    """A cart on 127.0.0.1 that answers each connection with ``handle``; yields its script's URL."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/seom.php"


async def test_updates_over_real_connections_arrive_with_every_field() -> None:
    simulator = SetiSimulator(accept_unknown=True)
    with serve_in_thread(simulator.app()) as base:
        connector = _seti(f"{base}/seom.php")
        try:
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


async def test_a_connection_the_server_closed_is_not_used_again() -> None:
    connections: list[int] = []
    hung_up = asyncio.Event()

    async def one_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        await _read_request(reader)
        writer.write(_reply(OK))  # keep-alive, as far as the client knows
        await writer.drain()
        writer.close()  # the script's server hangs up while the client keeps the connection
        await writer.wait_closed()
        hung_up.set()

    async with _server(one_reply) as url:
        connector = _seti(url)
        try:
            assert isinstance(await connector.send(_update(1)), Delivered)
            await hung_up.wait()  # closed on the server's side
            for _ in range(3):  # a few turns of the loop: the close reaches this side (at once, on loopback)
                await asyncio.sleep(0)
            # Sent on the closed connection, this would fail ("Server disconnected").
            assert isinstance(await connector.send(_update(2)), Delivered)
        finally:
            await connector.aclose()
    assert connections == [0, 1]


async def test_a_proxy_named_in_the_environment_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy is a server that answers every request itself: the update must reach it, asked for by full URL.
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(_reply(OK))
        await writer.drain()
        writer.close()

    async with _server(proxy) as url:
        monkeypatch.setenv("HTTP_PROXY", url.removesuffix("/seom.php"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        connector = _seti("http://cart.invalid/seom.php")
        try:
            assert isinstance(await connector.send(_update(1)), Delivered)
        finally:
            await connector.aclose()
    assert [request.split(b"\r\n")[0] for request in seen] == [b"POST http://cart.invalid/seom.php HTTP/1.1"]


async def test_a_host_named_in_no_proxy_is_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    through_proxy: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        through_proxy.append(await _read_request(reader))
        writer.close()

    simulator = SetiSimulator(accept_unknown=True)
    async with _server(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url.removesuffix("/seom.php"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.delenv("no_proxy", raising=False)
        with serve_in_thread(simulator.app()) as base:
            connector = _seti(f"{base}/seom.php")
            try:
                assert isinstance(await connector.send(_update(1)), Delivered)
            finally:
                await connector.aclose()
    assert through_proxy == []
    assert [r.refnumber for r in simulator.received] == ["1001"]


async def test_a_closed_connector_opens_a_new_transport() -> None:
    simulator = SetiSimulator(accept_unknown=True)
    with serve_in_thread(simulator.app()) as base:
        connector = _seti(f"{base}/seom.php")
        assert isinstance(await connector.send(_update(1)), Delivered)
        await connector.aclose()
        assert isinstance(await connector.send(_update(2)), Delivered)
        await connector.aclose()
    assert [r.refnumber for r in simulator.received] == ["1001", "1002"]


async def test_cookies_are_the_clients_alone() -> None:
    # aiohttp keeps no jar of its own: a cookie the client dropped is not sent behind its back.
    seen: list[bytes] = []

    async def cart(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            with contextlib.suppress(asyncio.IncompleteReadError):
                seen.append(await _read_request(reader))
                writer.write(_reply(b"ok", b"Set-Cookie: session=s1; Path=/") if len(seen) == 1 else _reply(b"ok"))
                await writer.drain()
        writer.close()

    async with _server(cart) as url:
        url = url.replace("127.0.0.1", "localhost")  # aiohttp's own jar would take no cookie from an IP address
        connector = _Plain({"url": url})
        try:
            await connector.client.get(url)
            await connector.client.get(url)
            connector.client.cookies.clear()
            await connector.client.get(url)
        finally:
            await connector.aclose()
    cookies = [[line.lower() for line in request.split(b"\r\n") if line.lower().startswith(b"cookie:")]
               for request in seen]
    assert cookies == [[], [b"cookie: session=s1"], []]


async def test_an_update_carries_the_clients_headers_and_its_form() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=OK.decode())

    # A transport given (as the controller and the kit give one) is the one used.
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


# -- failures: each an httpx error named for what happened, so a send's outcome says it -----------------------


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()  # no reply at all


async def _not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"Warning: mysql_connect(): Too many connections\r\n\r\n")
    await writer.drain()
    writer.close()


async def _cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nSETIResponse: upd")  # the rest never comes
    await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(30)  # ended with the test (the server closes)


@pytest.mark.parametrize(("handle", "error", "reason"), [
    (_hang_up, httpx.RemoteProtocolError, "network error: RemoteProtocolError"),
    (_not_http, httpx.RemoteProtocolError, "network error: RemoteProtocolError"),
    (_cut_short, httpx.ReadError, "network error: ReadError"),
    (_silent, httpx.ReadTimeout, "timed out: ReadTimeout"),
], ids=["hung-up", "not-http", "cut-short", "silent"])
async def test_a_failed_reply_is_the_httpx_error_for_it(handle: Handler, error: type[httpx.HTTPError],
                                                        reason: str) -> None:
    async with _server(handle) as url:
        connector = _seti(url, timeout=0.3)
        try:
            with pytest.raises(error) as raised:
                await connector.client.post(url, data={"a": "1"})
            assert isinstance(raised.value.__cause__, aiohttp.ClientError)  # aiohttp's, beneath httpx
            outcome = await connector.send(_update(1))
        finally:
            await connector.aclose()
    assert outcome == RetryLater(reason)


async def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    # httpx-aiohttp alone calls it a ConnectTimeout: "timed out" would send the merchant looking at the wrong thing.
    async with _server(_hang_up) as url:
        pass  # the port is free again: nothing listens there
    connector = _Plain({"url": url})
    try:
        with pytest.raises(httpx.ConnectError) as raised:
            await connector.send(_update(1))
    finally:
        await connector.aclose()
    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectorError)
    assert not isinstance(raised.value, httpx.TimeoutException)


def test_aiohttp_loads_only_when_a_client_is_made() -> None:
    # `cartstatus fire` makes connectors (to check an update) but never a client: it pays no aiohttp import.
    script = textwrap.dedent("""
        import sys
        from cartstatus.connectors.seti import SetiConnector
        connector = SetiConnector({"url": "http://cart.test/seom.php", "user": "om", "password": "p", "code": "m"})
        before = "aiohttp" in sys.modules
        connector.client
        print(before, "aiohttp" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["False", "True"]
