"""The ``seti`` connector: a cart with the Stone Edge integration script installed."""

from __future__ import annotations

import functools
import re
from urllib.parse import urlencode

import httpx
from cartstatus.connector import (
    ConnectionResult,
    Connector,
    StatusUpdate,
    outcome_for_http_error,
    outcome_for_transport_error,
)
from cartstatus.outcomes import Delivered, Failed, Outcome, RetryLater

from . import protocol

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: The most of a script's reply kept in a reason. Generous on purpose: the
#: reply is masked first, and the stack controller cuts reasons for display
#: after masking them, so a cut never leaves part of an echoed password.
REPLY_TEXT_LIMIT = 64 * 1024

#: Control characters but tab, CR and LF: a garbled reply's bytes, shown as ``\x00``.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class SetiConnector(Connector):
    """Posts ``updatestatus`` to the cart's script; only a clean success reply is delivery.

    The reply is read by its ``SETIResponse`` / ``SETIError`` line wherever it
    stands in the body (see :func:`protocol.parse_reply`). An OK that comes
    with database trouble (a PHP warning about ``mysql_query()``, ``SQLSTATE``,
    a fatal error) or next to a line that disagrees is not delivery: it is
    retried with the script's text (a status update is idempotent, and the
    controller's retry horizon parks a record that never gets a clean OK).
    See docs/seti.md.
    """

    name = "seti"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "user", "password", "code"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://", "description": "the script's URL"},
            "user": {"type": "string", "minLength": 1, "description": "setiuser"},
            "password": {"type": "string", "minLength": 1, "secret": True, "description": "the script's password"},
            "code": {"type": "string", "description": "the store code"},
            "send_xml": {"type": "boolean", "default": False, "description": "send status as XML"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
        },
    }
    status_vocabulary = None  # the script takes any label the merchant set up
    # A PHP script on the merchant's own web host: a few requests at a time is
    # as much as it should be asked to take.
    max_in_flight = 4

    def _fields(self, function: str) -> dict[str, str]:
        return protocol.base_fields(function, str(self.settings["user"]), self.secret("password"),
                                    str(self.settings.get("code", "")))

    @functools.cached_property
    def _update_login(self) -> str:
        # The same login fields open every update's form: encoded once per connector.
        return urlencode(self._fields("updatestatus"))

    @functools.cached_property
    def _url(self) -> httpx.URL:
        return httpx.URL(str(self.settings["url"]))

    async def _post_form(self, body: bytes) -> httpx.Response:
        """POST an update's form, the reply read in full."""
        return await self.client.post(self._url, content=body, headers=_FORM,
                                      timeout=self.settings.get("timeout", self.timeout))

    async def _post(self, fields: dict[str, str]) -> httpx.Response:
        timeout = self.settings.get("timeout", self.timeout)
        return await self.client.post(self._url, data=fields, timeout=timeout)

    async def send(self, update: StatusUpdate) -> Outcome:
        refused = self.check_status(update)
        if refused is not None:
            return refused
        # The form as httpx's data= would encode it (login fields first), built
        # here from the login part encoded once.
        form = f"{self._update_login}&{urlencode(protocol.update_fields(update, bool(self.settings.get('send_xml'))))}"
        try:
            response = await self._post_form(form.encode("ascii"))
        except httpx.HTTPError as exc:
            return outcome_for_transport_error(exc)
        http_outcome = outcome_for_http_error(response)
        if http_outcome is not None:
            # A 4xx page from a web server is not the script speaking: it may be a
            # misconfigured proxy that will recover, so only the script's own
            # refusal is permanent.
            if isinstance(http_outcome, Failed):
                return RetryLater(f"HTTP {response.status_code} from the cart: {self._reply_text(response.text)}")
            return http_outcome
        # Script replies are ASCII; decoding them directly skips httpx's charset
        # lookup (an email-header parse per response).
        body = response.content
        reply = protocol.parse_reply(body.decode("ascii") if body.isascii() else response.text)
        if reply.kind == "ok":
            return Delivered("SETIResponse OK")
        message = self._reply_text(reply.message)
        if reply.kind == "refused":
            return Failed(f"the cart refused the update: {message}")
        if reply.kind == "error":
            return Failed(f"the cart script reported an error: {message}")
        if reply.kind == "doubtful":
            return RetryLater(f"not taken as delivered, sent again: {message}")
        return RetryLater(f"unreadable reply from the script: {message}")

    def _reply_text(self, text: str) -> str:
        """The script's text for a reason: secrets masked first, then control characters written
        out (PostgreSQL stores no NUL in text), then bounded: nothing is cut or changed before masking."""
        return _CONTROL.sub(_escaped, self.scrub(text.strip()))[:REPLY_TEXT_LIMIT]

    async def test_connection(self) -> ConnectionResult:
        try:
            response = await self._post(self._fields("sendversion"))
        except httpx.HTTPError as exc:
            return ConnectionResult(False, outcome_for_transport_error(exc).reason)
        if response.status_code != 200:
            return ConnectionResult(False, f"HTTP {response.status_code} from {self.settings['url']}")
        version = protocol.parse_version(response.text)
        if version:
            return ConnectionResult(True, f"script version {version}")
        reply = protocol.parse_reply(response.text)
        return ConnectionResult(False, self._reply_text(reply.message) or "no version in the reply")
