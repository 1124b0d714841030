"""PrestaShop's webservice wire format: what the connector and its simulator both speak.

Learnt from PrestaShop's own source (classes/webservice/WebserviceRequest.php, WebserviceOutputJSON.php,
classes/order/OrderCarrier.php, install-dev/langs/en/data/order_state.xml):

- replies come as JSON when asked with ``output_format=JSON`` (a query parameter every version reads);
- writes (POST, PUT) take XML only: ``<prestashop><RESOURCE>...fields...</RESOURCE></prestashop>``;
- errors come as ``{"errors": [{"code": N, "message": "..."}]}`` (or the same in XML without JSON);
- a language field (an order status's ``name``) is plain with one language, else ``[{"id", "value"}]``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

#: The order statuses a PrestaShop 1.7/8 shop is installed with, in their ids' order (1..13), English names.
DEFAULT_STATE_NAMES = (
    "Awaiting check payment",
    "Payment accepted",
    "Processing in progress",
    "Shipped",
    "Delivered",
    "Canceled",
    "Refunded",
    "Payment error",
    "On backorder (paid)",
    "Awaiting bank wire payment",
    "Remote payment accepted",
    "On backorder (not paid)",
    "Awaiting Cash On Delivery validation",
)

#: OrderCarrier.tracking_number: one string per order carrier, at most 64 characters (ObjectModel size).
TRACKING_MAX = 64
#: Several numbers of one carrier share its order carrier's tracking_number, joined with this.
TRACKING_SEPARATOR = ", "
#: Validate::isTrackingNumber: the characters PrestaShop accepts in a tracking number.
TRACKING_CHARACTERS = re.compile(r"^[~:#,%&_=\(\)\[\]\.\? \+\-@/a-zA-Z0-9]+$")

#: Webservice error codes that no retry will change (WebserviceRequest::setError's third argument).
CODE_WEBSERVICE_DISABLED = 22
CODE_XML_ERROR = 127


def split_tracking(text: str | None) -> list[str]:
    """The numbers an order carrier's ``tracking_number`` holds (one, or several joined by commas)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def join_tracking(numbers: Iterable[str]) -> str:
    return TRACKING_SEPARATOR.join(numbers)


def resource_xml(node: str, fields: Mapping[str, Any]) -> bytes:
    """``<prestashop><node><field>value</field>...</node></prestashop>``, escaped, as the webservice reads it."""
    root = ET.Element("prestashop", {"xmlns:xlink": "http://www.w3.org/1999/xlink"})
    entity = ET.SubElement(root, node)
    for name, value in fields.items():
        ET.SubElement(entity, name).text = "" if value is None else str(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def localized(value: Any) -> list[str]:
    """Every language's text of a language field: plain with one language, ``[{"id", "value"}]`` with several."""
    if isinstance(value, list):
        return [str(v.get("value", "")) for v in value if isinstance(v, Mapping)]
    if isinstance(value, Mapping):  # XML-like {"language": [...]} from some proxies: take what is there
        return localized(value.get("language", []))
    return [] if value is None else [str(value)]


def errors_in(text: str) -> list[tuple[str, str]]:
    """The webservice's errors in a reply body, JSON or XML, as (code, message); [] for anything else."""
    text = text.strip()
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            return []
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list):
            return [(str(e.get("code", "")), str(e.get("message", ""))) for e in errors if isinstance(e, dict)]
        return []
    if text.startswith("<"):
        try:
            root = ET.fromstring(text)
        except ET.ParseError:  # an HTML error page, not the webservice's
            return []
        return [((e.findtext("code") or "").strip(), (e.findtext("message") or "").strip())
                for e in root.iter("error")]
    return []


def errors_json(errors: Iterable[tuple[int, str]]) -> str:
    """An error body as the webservice writes it with ``output_format=JSON``."""
    return json.dumps({"errors": [{"code": code, "message": message} for code, message in errors]})


def errors_xml(errors: Iterable[tuple[int, str]]) -> str:
    """An error body as the webservice writes it in XML (its default)."""
    items = "".join(f"<error>\n<code><![CDATA[{code}]]></code>\n<message><![CDATA[{message}]]></message>\n</error>\n"
                    for code, message in errors)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<prestashop xmlns:xlink="http://www.w3.org/1999/xlink">\n'
            f"<errors>\n{items}</errors>\n</prestashop>\n")
