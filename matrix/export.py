"""The matrix as JSON, CSV, Markdown or a self-contained HTML page a support team can publish."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections.abc import Sequence

from .loader import UPDATE_WORDS, CartRow

FORMATS = ("json", "csv", "markdown", "html")
CSV_COLUMNS = ["key", "name", "aliases", "updates", "api", "connector", "connector_installed", "tracking_numbers",
               "inventory", "status_vocabulary", "caveats", "rate_limit", "sources", "verified"]


def _flat(row: CartRow, installed: set[str]) -> dict[str, str]:
    return {
        "key": row.key,
        "name": row.name,
        "aliases": "; ".join(row.aliases),
        "updates": row.updates,
        "api": row.api or "",
        "connector": row.connector or "",
        "connector_installed": "yes" if row.connector_installed(installed) else "no",
        "tracking_numbers": "yes" if row.tracking_numbers else "no",
        "inventory": "yes" if row.inventory else "no",
        "status_vocabulary": "; ".join(row.status_vocabulary) if row.status_vocabulary else "",
        "caveats": "; ".join(row.caveats),
        "rate_limit": row.rate_limit.summary if row.rate_limit else "",
        "sources": " ".join(row.sources),
        "verified": row.verified.isoformat() if row.verified else "not verified",
    }


def to_json(rows: Sequence[CartRow], installed: set[str]) -> str:
    data = []
    for r in rows:
        d = r.as_dict()
        d["connector_installed"] = r.connector_installed(installed)
        data.append(d)
    return json.dumps({"carts": data}, indent=2, ensure_ascii=False) + "\n"


def to_csv(rows: Sequence[CartRow], installed: set[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(_flat(r, installed))
    return out.getvalue()


def _md(text: str) -> str:
    # A pipe would end the cell; a newline would end the row.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: Sequence[CartRow], installed: set[str]) -> str:
    lines = ["| cart | key | status updates | connector | tracking | inventory | caveats | verified |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        f = _flat(r, installed)
        connector = f"{r.connector} ({'installed' if f['connector_installed'] == 'yes' else 'not installed'})" \
            if r.connector else "-"
        source = " ".join(f"[{i + 1}]({u})" for i, u in enumerate(r.sources))
        lines.append("| " + " | ".join(_md(c) for c in (
            r.name, r.key, UPDATE_WORDS[r.updates], connector, f["tracking_numbers"], f["inventory"],
            f["caveats"] or "-", f"{f['verified']} {source}")) + " |")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.4rem .6rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f3f3f3}tr.direct td.upd{color:#075e00}tr.oss td.upd{color:#8a4b00}ul{margin:0;padding-left:1.1rem}
caption{text-align:left;margin-bottom:.6rem;color:#555}"""


def to_html(rows: Sequence[CartRow], installed: set[str], today: dt.date | None = None) -> str:
    """One page, no external files; every value from the matrix is escaped."""
    e = html.escape
    body = []
    for r in rows:
        f = _flat(r, installed)
        direct = r.takes_updates and f["connector_installed"] == "yes"
        caveats = "".join(f"<li>{e(c)}</li>" for c in r.caveats) or "-"
        sources = "".join(f'<li><a href="{e(u, quote=True)}" rel="noopener">{e(u)}</a></li>' for u in r.sources)
        connector = e(r.connector) + (" (installed)" if f["connector_installed"] == "yes" else " (not installed)") \
            if r.connector else "-"
        vocab = e(", ".join(r.status_vocabulary)) if r.status_vocabulary else "any label"
        body.append(
            f'<tr class="{"direct" if direct else "oss"}" id="{e(r.key, quote=True)}">'
            f"<td><strong>{e(r.name)}</strong><br><code>{e(r.key)}</code></td>"
            f'<td class="upd">{e(UPDATE_WORDS[r.updates])}<br>{"sent directly" if direct else "needs the OSS"}</td>'
            f"<td>{e(r.api or '-')}</td><td>{connector}</td>"
            f"<td>{f['tracking_numbers']}</td><td>{f['inventory']}</td><td>{vocab}</td>"
            f"<td><ul>{caveats}</ul></td><td>{e(f['rate_limit'] or '-')}</td>"
            f"<td>{e(f['verified'])}<ul>{sources}</ul></td></tr>")
    stamp = (today or dt.date.today()).isoformat()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Shopping-cart matrix</title><style>{_CSS}</style></head><body>"
            "<h1>Shopping-cart matrix</h1>"
            "<p>Whether each shopping cart accepts order-status updates, and how. Carts marked "
            "&ldquo;needs the OSS&rdquo; reach shoppers through the Order Status System.</p>"
            f"<table><caption>{len(rows)} carts, exported {e(stamp)}</caption><thead><tr>"
            "<th>cart</th><th>status updates</th><th>how</th><th>connector</th><th>tracking</th>"
            "<th>inventory</th><th>statuses</th><th>caveats</th><th>rate limit</th><th>verified</th>"
            "</tr></thead><tbody>" + "".join(body) + "</tbody></table></body></html>\n")


def export(rows: Sequence[CartRow], fmt: str, installed: set[str], today: dt.date | None = None) -> str:
    if fmt == "json":
        return to_json(rows, installed)
    if fmt == "csv":
        return to_csv(rows, installed)
    if fmt == "markdown":
        return to_markdown(rows, installed)
    if fmt == "html":
        return to_html(rows, installed, today)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
