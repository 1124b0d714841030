"""The Stone Edge cart-script protocol: building requests and reading replies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from xml.etree import ElementTree as ET

from cartstatus.connector import StatusUpdate

OM_VERSION = "6.000"

_OK = re.compile(r"^\s*SETIResponse\s*[:=]\s*(?:update\s*=\s*)?OK\s*(?:;|$)", re.IGNORECASE)
_REFUSED = re.compile(r"^\s*SETIResponse\s*[:=]\s*(?:update\s*=\s*)?False\s*;?\s*(?:Notes?\s*=\s*(?P<reason>.*))?$",
                      re.IGNORECASE | re.DOTALL)
_ERROR = re.compile(r"^\s*SETIError\s*:\s*(?P<message>.*)$", re.IGNORECASE | re.MULTILINE)
_VERSION = re.compile(r"^\s*SETIResponse\s*[:=]\s*version\s*=\s*(?P<version>[^;\s]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    """A script reply, classified."""

    kind: Literal["ok", "refused", "error", "unreadable"]
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


def parse_reply(body: str) -> Reply:
    """Classify a script's reply; anything unrecognised is ``unreadable`` (transient)."""
    text = body.strip()
    if not text:
        return Reply("unreadable", "empty reply")
    if _OK.match(text):
        return Reply("ok")
    refused = _REFUSED.match(text)
    if refused:
        return Reply("refused", (refused.group("reason") or "").strip() or "refused without a reason")
    error = _ERROR.search(text)
    if error:
        return Reply("error", error.group("message").strip() or "SETIError without a message")
    if text.startswith("<"):
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            return Reply("unreadable", "malformed XML reply")
        code = root.findtext(".//ResponseCode")
        if code is not None and code.strip() == "3":
            message = root.findtext(".//ResponseDescription") or root.findtext(".//Message") or "ResponseCode 3"
            return Reply("error", message.strip())
    return Reply("unreadable", f"not a script reply: {text[:80]!r}")


def parse_version(body: str) -> str | None:
    match = _VERSION.match(body.strip())
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
