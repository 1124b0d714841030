"""The shopper's pages: the lookup form, the order's status, and the snippet merchants embed.

Jinja2 templates (``templates/``, over the shared ``base.html`` and stylesheet
of :mod:`cartstatus.web`) with every value escaped; the merchant's header and
footer are sanitised when stored and again when shown (``merchant_html``).
Pages speak the shopper's language (:mod:`.i18n`); the merchant's colours come
from a stylesheet of its own (``/status/{merchant}/look.css``), since the
pages' Content-Security-Policy allows no inline style.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from cartstatus.times import iso_utc
from cartstatus.web import environment, stylesheet
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from .i18n import N_, choose_language, format_instant, translations
from .looks import PageLook
from .progress import progress
from .service import Account, OrderView, sanitize_html

NOT_FOUND = N_("We could not find an order with that number and email address or ZIP code. "
               "Check both and try again.")
#: The steps' names as shoppers read them (translated where shown).
STEP_NAMES = {"ordered": N_("Ordered"), "processing": N_("Processing"), "shipped": N_("Shipped"),
              "delivered": N_("Delivered")}


@jinja2.pass_context
def _gettext(context: jinja2.runtime.Context, message: str) -> str:
    return str(context.get("translations", translations("en")).gettext(message))


@jinja2.pass_context
def _ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return str(context.get("translations", translations("en")).ngettext(singular, plural, n))


templates = Jinja2Templates(env=environment("cartstatus.oss"))
templates.env.filters["merchant_html"] = lambda html: Markup(sanitize_html(html))
templates.env.add_extension("jinja2.ext.i18n")
templates.env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]


def css() -> bytes:
    """The stylesheet the pages link to (``/static/oss.css``)."""
    return stylesheet().encode("utf-8")


def _page(request: Request, template: str, title: str, account: Account | None, look: PageLook | None, *,
          status_code: int = 200, headers: Mapping[str, str] | None = None,
          title_params: Mapping[str, str] | None = None, **values: Any) -> Response:
    """``template`` in the shopper's language; ``title`` is a message, ``title_params`` fill its places."""
    language = choose_language(request.headers.get("accept-language"))
    catalog = translations(language)
    return templates.TemplateResponse(request, template, {
        "title": catalog.gettext(title) % (title_params or {}), "account": account, "look": look or PageLook(),
        "language": language, "translations": catalog, "when": lambda at: format_instant(at, language),
        "iso": iso_utc, **values}, status_code=status_code, headers={"Vary": "Accept-Language", **(headers or {})})


def lookup_form(request: Request, account: Account, look: PageLook, *, order: str = "", message: str | None = None,
                status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return _page(request, "lookup.html", N_("Order status"), account, look, status_code=status_code,
                 headers=headers, order=order, message=message)


def order_page(request: Request, account: Account, look: PageLook, view: OrderView,
               headers: Mapping[str, str] | None = None) -> Response:
    return _page(request, "order.html", N_("Order %(number)s"), account, look, headers=headers,
                 title_params={"number": view.order_number}, view=view,
                 progress=progress(view.status, look.steps), step_names=STEP_NAMES)


def message_page(request: Request, title: str, message: str, status_code: int = 200,
                 headers: Mapping[str, str] | None = None, **params: Any) -> Response:
    """A page of one message, belonging to no store (an unknown store, too many lookups, the front page).

    ``title`` and ``message`` are messages (marked ``N_``), translated here; ``params`` fill their
    ``%(name)s`` places.
    """
    catalog = translations(choose_language(request.headers.get("accept-language")))
    return _page(request, "message.html", title, None, None, status_code=status_code, headers=headers,
                 message=catalog.gettext(message) % params)


def snippet(account: Account, base_url: str) -> str:
    """An HTML form merchants paste into their own site; it posts to the lookup page."""
    action = f"{base_url.rstrip('/')}/status/{account.merchant}"
    return templates.get_template("snippet.html").render(account=account, action=action)
