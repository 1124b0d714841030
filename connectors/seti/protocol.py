"""The Stone Edge cart-script protocol: building requests and reading replies."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal
from xml.etree import ElementTree as ET

from cartstatus.connector import StatusUpdate

OM_VERSION = "6.000"

#: A script's verdict on an update, wherever it stands in the body (PHP may print
#: notices, warnings or a whole HTML page around it): ``SETIResponse: update=OK;Notes=``,
#: ``SETIResponse=OK;``, ``SETIRESPONSE: update=False;Notes=<reason>``, ``SETIResponse=False;Note=<reason>``.
_VERDICT = re.compile(
    r"(?<![\w])SETIResponse\s*[:=]\s*(?:update\s*=\s*)?(?P<verdict>OK|False)(?![\w])"
    r"(?:[ \t]*;?[ \t]*(?:Notes?[ \t]*=[ \t]*(?P<reason>[^\r\n]*))?)?",
    re.IGNORECASE)
_ERROR = re.compile(r"(?<![\w])SETIError\s*:[ \t]*(?P<message>[^\r\n]*)", re.IGNORECASE)
#: The XML form of an error: ``<ResponseCode>3</ResponseCode>`` (1 is success, 2 no data).
_XML_CODE = re.compile(r"<ResponseCode>\s*(?P<code>\d+)\s*</ResponseCode>", re.IGNORECASE)
_XML_MESSAGE = re.compile(r"<(?P<tag>ResponseDescription|Message)>(?P<text>.*?)</(?P=tag)>",
                          re.IGNORECASE | re.DOTALL)
_VERSION = re.compile(r"(?<![\w])SETIResponse\s*[:=]\s*version\s*=\s*(?P<version>[^;\s<]+)", re.IGNORECASE)

#: A PHP diagnostic, plain (``Warning: ...``) or as PHP formats it in HTML
#: (``<b>Warning</b>:  ...``), up to the end of its line.
_DIAGNOSTIC = re.compile(
    r"(?<![\w])(?:PHP\s+)?(?P<level>(?:Catchable |Recoverable )?Fatal error|Parse error|Warning|Notice|Deprecated"
    r"|Strict Standards)(?:\s*</\w+>)?\s*:(?P<text>[^\r\n]*)",
    re.IGNORECASE)
#: Levels after which the script stopped (or never ran): whatever it printed before is in doubt.
_FATAL = ("fatal error", "parse error", "catchable fatal error", "recoverable fatal error")
#: A diagnostic about the database: a database function or extension, or the words SQL, query, database.
_DATABASE_WORD = re.compile(
    r"(?<![a-z0-9])(?:mysqli?|pg|pdo|sqlite3?|sqlsrv|mssql|odbc|oci|db2?|sql|query|queries|database)(?![a-z0-9])",
    re.IGNORECASE)
#: Where PHP says a diagnostic came from (`` in /var/www/seom.php on line 12``): judged by its message only.
_WHERE = re.compile(r"\s+in\s+\S+\s+on\s+line\b.*$", re.IGNORECASE)
#: A database's own error text, even outside a PHP diagnostic.
_DATABASE_ERROR = re.compile(
    r"SQLSTATE|SQL syntax|Deadlock found|Lock wait timeout|database error|DB error|ORA-\d{5}|"
    r"MySQL server has gone away|Duplicate entry|Unknown column|Table '[^'\r\n]*' doesn't exist",
    re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    """A script reply, classified.

    ``ok``: a clean success reply, the only one that is delivery. ``refused``:
    ``update=False`` (permanent). ``error``: ``SETIError`` or XML ResponseCode 3
    (permanent, for a person). ``doubtful``: an OK that came with database
    trouble or next to a verdict that disagrees (retried). ``unreadable``: no
    verdict at all (retried). ``message`` is the script's own text, uncut.
    """

    kind: Literal["ok", "refused", "error", "doubtful", "unreadable"]
    message: str = ""


def base_fields(function: str, user: str, password: str, code: str) -> dict[str, str]:
    return {"setifunction": function, "setiuser": user, "password": password, "code": code,
            "omversion": OM_VERSION}


def update_fields(update: StatusUpdate, as_xml: bool = False) -> dict[str, str]:
    """The ``updatestatus`` fields for one update (form or XML variant)."""
    if as_xml:
        return {"update": update_xml(update)}
    fields = {"ordernumber": update.cart_order_ref, "refnumber": update.order_number,
              "orderstatus": update.cart_status}
    if update.note:
        fields["orderdetail"] = update.note
    tracks = update.tracking
    if tracks:
        fields["trackcount"] = str(len(tracks))
        if len(tracks) == 1:
            fields.update(tracknum=tracks[0].number, trackcarrier=tracks[0].carrier,
                          trackpickupdate=tracks[0].ship_date or "")
        else:
            for i, t in enumerate(tracks, 1):
                fields[f"tracknum{i}"] = t.number
                fields[f"trackcarrier{i}"] = t.carrier
                fields[f"trackpickupdate{i}"] = t.ship_date or ""
    return fields


def update_xml(update: StatusUpdate) -> str:
    orders = ET.Element("Orders")
    order = ET.SubElement(orders, "Order")
    for tag, value in (("OrderNumber", update.cart_order_ref), ("ReferenceNumber", update.order_number),
                       ("Status", update.cart_status), ("Notes", update.note or ""), ("Comments", ""),
                       ("ChangeDateTime", update.occurred_at)):
        ET.SubElement(order, tag).text = value
    if update.tracking:
        packages = ET.SubElement(order, "Packages")
        for i, t in enumerate(update.tracking, 1):
            package = ET.SubElement(packages, "Package")
            for tag, value in (("PackageID", str(i)), ("TrackingID", t.number), ("PickupDate", t.ship_date or ""),
                               ("Shipper", t.carrier), ("Method", "")):
                ET.SubElement(package, tag).text = value
    return ET.tostring(orders, encoding="unicode")


def _lines_at(text: str, spans: list[tuple[int, int]]) -> str:
    """The whole lines holding these spans, verbatim, in order, each once, joined with `` | ``."""
    starts = sorted({text.rfind("\n", 0, begin) + 1 for begin, _ in spans})
    lines = []
    for start in starts:
        stop = text.find("\n", start)
        lines.append(text[start:stop if stop >= 0 else len(text)].strip())
    return " | ".join(line for line in lines if line)


def database_trouble(body: str) -> str:
    """The lines of ``body`` that report database trouble, or "" when there are none.

    Trouble is a PHP fatal or parse error, a PHP warning, notice or deprecation
    that names the database (a ``mysql_``/``mysqli``/``pg_``/``PDO``/``sqlite``/
    ``odbc`` function, or the words SQL, query, database), or a database's own
    error text (``SQLSTATE``, ``SQL syntax``, ``Deadlock found``, ...). Other
    PHP notices (``Undefined index: trackcount``) are not, and neither is the
    file a diagnostic names (`` in /var/www/database.php on line 3``).
    """
    spans = []
    for match in _DIAGNOSTIC.finditer(body):
        message = _WHERE.sub("", match.group("text")).replace("_", " ")  # mysql_query: the word mysql
        if match.group("level").lower() in _FATAL or _DATABASE_WORD.search(message):
            spans.append(match.span())
    spans.extend(m.span() for m in _DATABASE_ERROR.finditer(body))
    return _lines_at(body, spans) if spans else ""


def parse_reply(body: str) -> Reply:
    """Classify a script's reply by its verdict line, wherever it stands in the body.

    Only a clean success reply is delivery: one or more ``SETIResponse`` OK
    lines, no verdict that disagrees, and no database trouble anywhere in the
    body (see :func:`database_trouble`). An OK with database trouble is
    ``doubtful``: the script may not have written the change, and a status
    update is idempotent, so it is sent again (the controller's retry horizon
    parks it in the end). Lines that disagree (OK and False, OK and SETIError)
    are ``doubtful`` too. Without an OK, the first refusal or error decides.
    Anything else is ``unreadable`` (transient). No text is cut here: the
    stack controller masks secrets in a reason first and cuts it after.
    """
    text = body.strip()
    if not text:
        return Reply("unreadable", "empty reply")
    verdicts: list[tuple[int, int, Reply]] = []
    for match in _VERDICT.finditer(text):
        if match.group("verdict").lower() == "ok":
            verdicts.append((*match.span(), Reply("ok")))
        else:
            reason = (match.group("reason") or "").strip() or "refused without a reason"
            verdicts.append((*match.span(), Reply("refused", reason)))
    for match in _ERROR.finditer(text):
        message = match.group("message").strip() or "SETIError without a message"
        verdicts.append((*match.span(), Reply("error", message)))
    code = _XML_CODE.search(text)
    if code is not None and code.group("code") == "3":
        described = _XML_MESSAGE.search(text)
        message = html.unescape(described.group("text")).strip() if described else ""
        verdicts.append((*code.span(), Reply("error", message or "ResponseCode 3")))
    if not verdicts:
        return Reply("unreadable", f"not a script reply: {text}")
    verdicts.sort(key=lambda v: v[0])
    kinds = {reply.kind for _, _, reply in verdicts}
    if "ok" in kinds and len(kinds) > 1:
        return Reply("doubtful", "the script's reply lines disagree: "
                     + _lines_at(text, [(start, stop) for start, stop, _ in verdicts]))
    if kinds == {"ok"}:
        trouble = database_trouble(text)
        if trouble:
            return Reply("doubtful", f"the script answered OK but reported database trouble: {trouble}")
        return Reply("ok")
    return verdicts[0][2]


def parse_version(body: str) -> str | None:
    match = _VERSION.search(body)
    return match.group("version") if match else None


def parse_update_request(form: dict[str, str]) -> tuple[str, str, list[tuple[str, str, str]]]:
    """Read (ordernumber, orderstatus, tracking) from an ``updatestatus`` request (form or XML)."""
    if "update" in form:
        root = ET.fromstring(form["update"])
        order = root.find("Order")
        if order is None:
            raise ValueError("no <Order> in update")
        tracks = [(p.findtext("Shipper") or "", p.findtext("TrackingID") or p.findtext("TrackNum") or "",
                   p.findtext("PickupDate") or "") for p in order.iter("Package")]
        return order.findtext("OrderNumber") or "", order.findtext("Status") or "", tracks
    count = int(form.get("trackcount") or 0)
    if count == 1:
        tracks = [(form.get("trackcarrier", ""), form.get("tracknum", ""), form.get("trackpickupdate", ""))]
    else:
        tracks = [(form.get(f"trackcarrier{i}", ""), form.get(f"tracknum{i}", ""), form.get(f"trackpickupdate{i}", ""))
                  for i in range(1, count + 1)]
    return form.get("ordernumber", ""), form.get("orderstatus", ""), tracks
