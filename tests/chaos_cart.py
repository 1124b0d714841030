"""A script cart (the seti protocol) that misbehaves on purpose, for the chaos test.

A raw asyncio HTTP/1.1 server with keep-alive on 127.0.0.1, in a thread with
its own event loop, so that it can do what a real cart's web server does on a
bad day: answer 500, 503 or 429, hang, drop the connection, garble the reply,
or trickle a reply for longer than the controller's lease.

A fault never applies the update: an order's status changes only with a clean
``SETIResponse: update=OK`` reply, so an update applied twice can only come
from a real double send. Which request gets which fault is drawn from the seed
and the request's own content (order, status, how often the cart has seen that
update before), not from timing: a seed gives every record the same faults in
every run.

The cart keeps, per order, every status it applied with the number of the
request that applied it (:attr:`ChaosCart.applied`).
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

#: Fault kinds and their share of all update requests (30% in all).
FAULT_WEIGHTS: dict[str, float] = {
    "http_500": 0.05,
    "http_503": 0.04,   # with Retry-After
    "http_429": 0.04,   # with Retry-After
    "timeout": 0.04,    # no reply for longer than the client's timeout, then the connection closes
    "dropped": 0.04,    # the connection closed (or reset) without a reply
    "garbled": 0.05,    # a reply that is not a clean OK (junk, a broken status line, an OK with a failed query)
    "slow": 0.04,       # a reply trickled for longer than the lease, with no verdict at the end
}
OK_REPLY = b"SETIResponse: update=OK;Notes=\r\n"
GARBLED = (
    (b"HTTP/1.1 200 OK", b"\x00\xff\xfeSETIResp\x81\x9f garbage"),
    (b"HTTP/1.1 200 OK", b"<html><b>Parse error</b>: syntax error, unexpected '}' in seom.php</html>"),
    # The lie a real script tells: its query failed, it says OK all the same.
    (b"HTTP/1.1 200 OK", b"SETIResponse: OK; Warning: mysql_query(): update failed\r\n"),
    (b"HTTP/1.1 2OO OK??", b"SETIResponse: update=OK;Notes="),
)


@dataclass
class ChaosCart:
    """The cart. ``with ChaosCart(...) as url:`` serves it; the script of store S is ``{url}/S/seom.php``."""

    password: str
    seed: int
    lease_seconds: float
    client_timeout: float
    fault_rate: float = 0.3
    retry_after: int = 1
    #: What each order shows now, by the cart's order reference.
    shows: dict[str, str] = field(default_factory=dict)
    #: Every status applied, per order: (status, request number, seconds since the cart started), in order.
    applied: dict[str, list[tuple[str, int, float]]] = field(default_factory=lambda: defaultdict(list))
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    #: Requests read and not yet answered (or dropped).
    open_requests: int = 0
    _seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add_order(self, ref: str, status: str) -> None:
        self.shows[ref] = status

    # -- serving ------------------------------------------------------------

    def __enter__(self) -> str:
        self._started = time.monotonic()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="chaos-cart", daemon=True)
        self._thread.start()
        if not self._ready.wait(20) or not self._port:
            raise RuntimeError("the chaos cart did not start")
        return f"http://127.0.0.1:{self._port}"

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._port = 0
        handlers: set[asyncio.Task[None]] = set()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await self._connection(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass  # the client went away (a killed controller, its own timeout)
            finally:
                handlers.discard(task)
                writer.close()

        try:
            server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=512)
            self._port = server.sockets[0].getsockname()[1]
        finally:
            self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    def wait_quiet(self, seconds: float = 30.0) -> None:
        """Wait until no request is being handled (a trickled reply may still be running)."""
        give_up = threading.Event()
        for _ in range(int(seconds / 0.05)):
            if not self.open_requests:
                return
            give_up.wait(0.05)
        raise AssertionError(f"the cart still handles {self.open_requests} requests after {seconds}s")

    # -- one connection, several requests (keep-alive) -------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # closed between requests
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
            length = int(headers.get("content-length", "0").strip() or 0)
            self.requests += 1
            self.open_requests += 1
            try:
                body = await reader.readexactly(length)
                keep_open = await self._request(self.requests, body, writer)
            finally:
                self.open_requests -= 1
            if not keep_open or headers.get("connection", "").strip().lower() == "close":
                return

    async def _request(self, number: int, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to be closed."""
        form = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
        if form.get("setifunction") != "updatestatus":
            return await self._reply(writer, b"SETIResponse: version=1.000")
        if form.get("password") != self.password:
            return await self._reply(writer, b"SETIError: Invalid user name or password")
        ref, status = form.get("ordernumber", ""), form.get("orderstatus", "")
        if ref not in self.shows:
            return await self._reply(writer, f"SETIResponse: update=False;Notes=Order {ref} could not be found")
        rng = random.Random(f"{self.seed}/{ref}/{status}/{self._seen[ref, status]}")
        self._seen[ref, status] += 1
        fault = self._draw(rng)
        if fault is not None:
            self.faults[fault] += 1
            return await self._fault(fault, rng, writer)
        self.shows[ref] = status
        self.applied[ref].append((status, number, time.monotonic() - self._started))
        return await self._reply(writer, OK_REPLY)

    def _draw(self, rng: random.Random) -> str | None:
        draw = rng.random()
        if draw >= self.fault_rate:
            return None
        total = sum(FAULT_WEIGHTS.values())
        point = draw / self.fault_rate * total
        for kind, weight in FAULT_WEIGHTS.items():
            point -= weight
            if point < 0:
                return kind
        return kind

    async def _fault(self, kind: str, rng: random.Random, writer: asyncio.StreamWriter) -> bool:
        if kind == "http_500":
            return await self._reply(writer, b"<html><body>Internal Server Error</body></html>", "500 Internal Error")
        if kind in ("http_503", "http_429"):
            status = "503 Service Unavailable" if kind == "http_503" else "429 Too Many Requests"
            return await self._reply(writer, b"busy", status, f"Retry-After: {self.retry_after}\r\n")
        if kind == "timeout":
            await asyncio.sleep(self.client_timeout * 1.5)
            return False
        if kind == "dropped":
            if rng.random() < 0.5:
                writer.transport.abort()  # a reset rather than a close
            return False
        if kind == "garbled":
            status_line, text = rng.choice(GARBLED)
            writer.write(b"%s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                         % (status_line, len(text), text))
            await writer.drain()
            return True
        # slow: each byte sooner than the client's timeout, the whole reply later than the lease.
        gap = self.client_timeout / 2.5
        dots = math.ceil((self.lease_seconds + 1.0) / gap)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % dots)
        await writer.drain()
        for _ in range(dots):
            await asyncio.sleep(gap)
            writer.write(b".")
            await writer.drain()
        return True

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, text: bytes | str, status: str = "200 OK",
                     extra: str = "") -> bool:
        body = text.encode() if isinstance(text, str) else text
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        await writer.drain()
        return True


def applied_backwards(applied: list[tuple[str, int, float]], walk: list[str]) -> list[str]:
    """The statuses applied after a later one of the walk had been (empty when never backwards)."""
    rank = {status: i for i, status in enumerate(walk)}
    highest = -1
    backwards = []
    for status, _number, _at in applied:
        if rank[status] < highest:
            backwards.append(status)
        highest = max(highest, rank[status])
    return backwards


def timeline(applied: list[tuple[str, int, float]]) -> str:
    """An order's applies for a failure message: ``S01 #12 0.31s, S02 #40 0.95s, ...``."""
    return ", ".join(f"{status} #{number} {at:.2f}s" for status, number, at in applied)


__all__ = ["FAULT_WEIGHTS", "ChaosCart", "applied_backwards", "timeline"]
