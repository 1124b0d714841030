"""A simulated cart with the Stone Edge script: ``updatestatus`` and ``sendversion``.

An ASGI app (Starlette). Orders live in memory; faults can be switched on to
test every reply the connector must understand, from Python or over HTTP at
``/_sim/faults``. It speaks the conformance kit's simulator protocol
(:class:`cartstatus.testing.CartSimulator`): ``app()``, ``fail_next(kind, count)``,
``add_order``, ``order_state``, ``requests``, ``retry_after`` and
``permanent_fault``, which for the script is its refusal (``update=False``):
an HTTP error status from a script cart is transient.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import protocol

FAULTS = ("http_500", "http_503", "http_429", "http_404", "refuse", "seti_error", "xml_error",
          "timeout", "garbled", "empty", "notice", "db_warning")

#: What PHP prints before the reply: a harmless notice (``notice``: the update is
#: applied) or a failed query (``db_warning``: the script still says OK, but the
#: update is not applied).
PHP_NOTICE = "<br />\n<b>Notice</b>:  Undefined index: trackcount in <b>/var/www/seom.php</b> on line <b>41</b><br />\n"
PHP_DB_WARNING = "Warning: mysql_query(): Lock wait timeout exceeded in /var/www/seom.php on line 88\n"

REPLY_STYLES = {
    "colon": "SETIResponse: update=OK;Notes=\r\n",
    "equals": "SETIResponse=OK;",
    "upper": "SETIRESPONSE: update=OK;Notes=  \n",
}


@dataclass
class Received:
    """One update the cart accepted."""

    ordernumber: str
    refnumber: str
    orderstatus: str
    tracking: list[tuple[str, str, str]]
    fields: dict[str, str]


@dataclass
class SetiSimulator:
    user: str = "om"
    password: str = "secret"
    code: str = "main"
    orders: dict[str, str] = field(default_factory=dict)  # cart order ref -> status
    accept_unknown: bool = False
    reply_style: str = "colon"
    timeout_seconds: float = 60.0
    retry_after: int = 2
    received: list[Received] = field(default_factory=list)
    faults: deque[str] = field(default_factory=deque)
    requests: int = 0
    #: The tracking numbers the cart holds per order (the last update's set replaces them).
    tracking: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    #: The fault that gives the connector's permanent failure: the script refusing the update.
    permanent_fault: ClassVar[str] = "refuse"

    def add_order(self, ref: str, status: str = "New") -> None:
        """The cart has order ``ref`` with this status."""
        self.orders[ref] = status

    def order_state(self, ref: str) -> dict[str, Any] | None:
        """What the cart holds for order ``ref``: its status and tracking, or None when unknown."""
        if ref not in self.orders:
            return None
        return {"status": self.orders[ref], "tracking": list(self.tracking.get(ref, []))}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        """The conformance kit's view: each tracking number the cart holds for ``ref``, with its carrier."""
        return [(carrier, number) for carrier, number, _ in self.tracking.get(ref, [])]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/_sim/faults", self._set_faults, methods=["POST"]),
            Route("/_sim/orders", self._orders, methods=["GET", "POST"]),
            Route("/_sim/received", self._received, methods=["GET"]),
            Route("/{path:path}", self._script, methods=["POST"]),
        ])

    async def _script(self, request: Request) -> Response:
        self.requests += 1
        form = {k: str(v) for k, v in (await request.form()).items()}
        fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            reply = await self._fault(fault)
            if reply is not None:
                return reply
        if (form.get("setiuser"), form.get("password")) != (self.user, self.password):
            return PlainTextResponse("SETIError: Invalid user name or password")
        if form.get("code", "") != self.code:
            return PlainTextResponse(f"SETIError: Unknown store code {form.get('code', '')}")
        function = form.get("setifunction")
        if function == "sendversion":
            return PlainTextResponse("SETIResponse: version=1.000")
        if function != "updatestatus":
            return PlainTextResponse(f"SETIError: Unknown function {function}")
        try:
            number, status, tracks = protocol.parse_update_request(form)
        except Exception as exc:
            return PlainTextResponse(f"SETIError: Cannot read update: {exc}")
        if number not in self.orders and not self.accept_unknown:
            return PlainTextResponse(f"SETIResponse: update=False;Notes=Order {number} could not be found")
        if not status:
            return PlainTextResponse("SETIResponse=False;Note=No order status given")
        if fault == "db_warning":  # the query failed, the script says OK all the same
            return PlainTextResponse(PHP_DB_WARNING + REPLY_STYLES[self.reply_style])
        self.orders[number] = status
        if tracks:
            self.tracking[number] = tracks
        self.received.append(Received(number, form.get("refnumber", ""), status, tracks, form))
        return PlainTextResponse((PHP_NOTICE if fault == "notice" else "") + REPLY_STYLES[self.reply_style])

    async def _fault(self, fault: str) -> Response | None:
        if fault == "http_500":
            return PlainTextResponse("<html><body>Internal Server Error</body></html>", status_code=500)
        if fault == "http_503":
            return PlainTextResponse("busy", status_code=503, headers={"Retry-After": str(self.retry_after)})
        if fault == "http_429":
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": str(self.retry_after)})
        if fault == "http_404":
            return PlainTextResponse("Not Found", status_code=404)
        if fault == "refuse":
            return PlainTextResponse("SETIResponse: update=False;Notes=Status change not allowed")
        if fault == "seti_error":
            return PlainTextResponse("SETIError: Database connection failed")
        if fault == "xml_error":
            return Response("<Response><ResponseCode>3</ResponseCode><ResponseDescription>Login failed"
                            "</ResponseDescription></Response>", media_type="text/xml")
        if fault == "timeout":
            await asyncio.sleep(self.timeout_seconds)
            return PlainTextResponse("too late")
        if fault == "garbled":
            return PlainTextResponse("<html><title>Parse error</title>Warning: mysql_connect()</html>")
        if fault == "empty":
            return PlainTextResponse("")
        return None

    async def _set_faults(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        try:
            self.fail_next(str(body["kind"]), int(body.get("count", 1)))
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"queued": len(self.faults)})

    async def _orders(self, request: Request) -> Response:
        if request.method == "POST":
            self.orders.update({str(k): str(v) for k, v in (await request.json()).items()})
        return JSONResponse(self.orders)

    async def _received(self, request: Request) -> Response:
        return JSONResponse([{"ordernumber": r.ordernumber, "refnumber": r.refnumber,
                              "orderstatus": r.orderstatus, "tracking": r.tracking} for r in self.received])


def create_app(**kwargs: Any) -> Starlette:
    """An app for ``uvicorn --factory cartstatus.connectors.seti.simulator:create_app``."""
    kwargs.setdefault("accept_unknown", True)
    return SetiSimulator(**kwargs).app()
