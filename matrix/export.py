"""The matrix as JSON, CSV, Markdown or a self-contained HTML page a support team can publish."""

from __future__ import annotations

import csv
import datetime as dt
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


def _html_row(row: CartRow, installed: set[str]) -> dict[str, object]:
    """What the HTML page shows of one cart (the template escapes every value)."""
    f = _flat(row, installed)
    installed_now = f["connector_installed"] == "yes"
    return {
        "key": row.key,
        "name": row.name,
        "direct": row.takes_updates and installed_now,
        "updates": UPDATE_WORDS[row.updates],
        "api": row.api or "-",
        "connector": f"{row.connector} ({'installed' if installed_now else 'not installed'})" if row.connector else "-",
        "tracking_numbers": f["tracking_numbers"],
        "inventory": f["inventory"],
        "statuses": ", ".join(row.status_vocabulary) if row.status_vocabulary else "any label",
        "caveats": row.caveats,
        "rate_limit": f["rate_limit"] or "-",
        "verified": f["verified"],
        "sources": row.sources,
    }


def to_html(rows: Sequence[CartRow], installed: set[str], today: dt.date | None = None) -> str:
    """One page, no external files (the stylesheet inlined); every value from the matrix is escaped."""
    # Here, not at the top: the other formats (and every command importing this module) need no Jinja2.
    from cartstatus.web import environment, stylesheet

    return environment("cartstatus.matrix").get_template("matrix.html").render(
        rows=[_html_row(r, installed) for r in rows], stamp=(today or dt.date.today()).isoformat(),
        stylesheet=stylesheet())


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
