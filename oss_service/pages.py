"""The shopper's pages: the lookup form, the order's status, and the snippet merchants embed.

Plain HTML built with escaping at every value; the merchant's header and footer
are sanitised when stored and again when shown.
"""

from __future__ import annotations

from html import escape

from .service import Account, OrderView, sanitize_html

CSS = """
body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}form{display:grid;gap:.6rem;max-width:24rem}label{display:grid;gap:.2rem}
input{padding:.4rem;font-size:1rem}button{padding:.5rem;font-size:1rem}
.status{font-size:1.3rem;font-weight:bold}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem;border-bottom:1px solid #ddd}.notfound{color:#a00}
.merchant-header,.merchant-footer{margin:1rem 0}small{color:#666}
""".strip()

NOT_FOUND = ("We could not find an order with that number and email address or ZIP code. "
             "Check both and try again.")


def _page(account: Account, title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{escape(title)} - {escape(account.name)}</title>
<link rel="stylesheet" href="/static/oss.css">
</head>
<body>
<div class="merchant-header">{sanitize_html(account.header_html)}</div>
<main>
{body}
</main>
<div class="merchant-footer">{sanitize_html(account.footer_html)}</div>
</body>
</html>
"""


def lookup_form(account: Account, *, order: str = "", message: str | None = None) -> str:
    notice = f'<p class="notfound" id="not-found" role="alert">{escape(message)}</p>' if message else ""
    body = f"""<h1>Order status at {escape(account.name)}</h1>
{notice}
<form method="post" action="/status/{escape(account.merchant)}" id="lookup">
<label>Order number <input name="order" id="order" required maxlength="64" value="{escape(order)}"
 autocomplete="off"></label>
<label>Email address <input name="email" id="email" type="email" maxlength="254" autocomplete="email"></label>
<label>or ZIP / postal code <input name="zip" id="zip" maxlength="20" autocomplete="postal-code"></label>
<button type="submit" id="look-up">Look up my order</button>
</form>"""
    return _page(account, "Order status", body)


def order_page(account: Account, view: OrderView) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(h.at_text)}</td><td>{escape(h.status)}</td>"
        f"<td>{escape(h.note or '')}</td></tr>"
        for h in reversed(view.history))
    tracking = ""
    if view.tracking:
        items = []
        for t in view.tracking:
            number = escape(t.number)
            link = (f'<a class="tracking" href="{escape(t.url)}" rel="noopener noreferrer">{number}</a>'
                    if t.url else f'<span class="tracking">{number}</span>')
            shipped = f" <small>shipped {escape(t.ship_date)}</small>" if t.ship_date else ""
            items.append(f"<li>{escape(t.carrier)}: {link}{shipped}</li>")
        tracking = "<h2>Tracking</h2>\n<ul>" + "".join(items) + "</ul>"
    body = f"""<h1>Order {escape(view.order_number)}</h1>
<p>Status: <span class="status" id="status">{escape(view.status)}</span></p>
{tracking}
<h2>History</h2>
<table id="history"><thead><tr><th>Date</th><th>Status</th><th>Note</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p><a href="/status/{escape(account.merchant)}">Look up another order</a></p>"""
    return _page(account, f"Order {view.order_number}", body)


def snippet(account: Account, base_url: str) -> str:
    """An HTML form merchants paste into their own site; it posts to the lookup page."""
    action = f"{base_url.rstrip('/')}/status/{account.merchant}"
    return f"""<!-- Order status lookup for {escape(account.name)} (cartstatus OSS) -->
<form method="post" action="{escape(action)}" class="oss-lookup">
  <label>Order number <input name="order" required maxlength="64"></label>
  <label>Email address <input name="email" type="email" maxlength="254"></label>
  <label>or ZIP code <input name="zip" maxlength="20"></label>
  <button type="submit">Check my order status</button>
</form>
"""


def plain_page(title: str, message: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<link rel="stylesheet" href="/static/oss.css"></head>
<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>
"""
