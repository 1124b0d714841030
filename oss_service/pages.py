"""The shopper's pages: the lookup form, the order's status, and the snippet merchants embed.

Jinja2 templates (``templates/``, over the shared ``base.html`` and stylesheet
of :mod:`cartstatus.web`) with every value escaped; the merchant's header and
footer are sanitised when stored and again when shown (``merchant_html``).
"""

from __future__ import annotations

from collections.abc import Mapping

from cartstatus.web import environment, stylesheet
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from .service import Account, OrderView, sanitize_html

NOT_FOUND = ("We could not find an order with that number and email address or ZIP code. "
             "Check both and try again.")

templates = Jinja2Templates(env=environment("cartstatus.oss"))
templates.env.filters["merchant_html"] = lambda html: Markup(sanitize_html(html))


def css() -> bytes:
    """The stylesheet the pages link to (``/static/oss.css``)."""
    return stylesheet().encode("utf-8")


def lookup_form(request: Request, account: Account, *, order: str = "", message: str | None = None,
                status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return templates.TemplateResponse(request, "lookup.html", {
        "title": "Order status", "account": account, "order": order, "message": message},
        status_code=status_code, headers=headers)


def order_page(request: Request, account: Account, view: OrderView,
               headers: Mapping[str, str] | None = None) -> Response:
    return templates.TemplateResponse(request, "order.html", {
        "title": f"Order {view.order_number}", "account": account, "view": view}, headers=headers)


def message_page(request: Request, title: str, message: str, status_code: int = 200,
                 headers: Mapping[str, str] | None = None) -> Response:
    """A page of one message, belonging to no store (an unknown store, too many lookups, the front page)."""
    return templates.TemplateResponse(request, "message.html", {
        "title": title, "message": message, "account": None}, status_code=status_code, headers=headers)


def snippet(account: Account, base_url: str) -> str:
    """An HTML form merchants paste into their own site; it posts to the lookup page."""
    action = f"{base_url.rstrip('/')}/status/{account.merchant}"
    return templates.get_template("snippet.html").render(account=account, action=action)
