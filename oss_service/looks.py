"""The merchant's look on the shopper page: a logo, an accent colour and the labels' places on the path.

Kept in a table of its own (``oss_page_looks``), read only for pages; values
are validated on the way in (``cartstatus-oss accounts update``) so a page
never shows an http logo or a colour a browser would not understand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .storage import page_looks, write_transaction

#: The accent when the merchant set none: a dark blue, white text on it.
DEFAULT_ACCENT = "#1f5fa8"
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
MAX_URL_LENGTH = 2000


def valid_accent(text: str) -> str:
    """``#rgb`` or ``#rrggbb`` as ``#rrggbb`` in lower case; ValueError says what is wrong."""
    value = text.strip()
    if not _HEX.match(value):
        raise ValueError(f"{text!r} is not a colour: give #rgb or #rrggbb, e.g. '#0a7' or '#00aa77'")
    if len(value) == 4:
        value = "#" + "".join(c * 2 for c in value[1:])
    return value.lower()


def valid_logo_url(text: str) -> str:
    """An https URL with a host, no credentials and nothing a page could trip on; ValueError otherwise."""
    value = text.strip()
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"the logo URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or c in "\"'<>\\" for c in value):
        raise ValueError("the logo URL has spaces, quotes or control characters: percent-encode them")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL: {exc}") from None
    if parts.scheme.lower() != "https":
        raise ValueError(f"the logo URL must start with https:// (shoppers' browsers block others), not {text!r}")
    if not parts.hostname:
        raise ValueError(f"the logo URL {text!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the logo URL must not carry a user name or password")
    return value


def _luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_on(accent: str) -> str:
    """White or black, whichever reads better on ``accent`` (at least 4.58:1, the square root of 21, for any)."""
    return max(("#ffffff", "#000000"), key=lambda text: contrast(accent, text))


@dataclass(frozen=True)
class PageLook:
    logo_url: str | None = None
    accent: str | None = None
    #: The merchant's own places of labels, by label key (see :mod:`.progress`).
    steps: Mapping[str, str] = field(default_factory=dict)

    @property
    def colour(self) -> str:
        return self.accent or DEFAULT_ACCENT

    @property
    def on_accent(self) -> str:
        return text_on(self.colour)

    def css(self) -> str:
        """The page's colours as CSS custom properties (a stylesheet: the pages allow no inline style)."""
        return f":root{{--accent:{self.colour};--on-accent:{self.on_accent}}}\n"

    def as_dict(self) -> dict[str, Any]:
        return {"logo_url": self.logo_url, "accent": self.accent, "steps": dict(self.steps)}


def load_look(engine: Engine, account_id: int) -> PageLook:
    with engine.connect() as conn:
        row = conn.execute(sa.select(page_looks).where(page_looks.c.account_id == account_id)).first()
    if row is None:
        return PageLook()
    return PageLook(row.logo_url, row.accent, json.loads(row.steps) if row.steps else {})


def save_look(engine: Engine, account_id: int, *, logo_url: str | None = None, accent: str | None = None,
              steps: Mapping[str, str] | None = None, reset_steps: bool = False) -> PageLook:
    """Change what is given (an empty logo or accent clears it) and return the look; ValueError for a logo
    URL or colour that is not one (see :func:`valid_logo_url`, :func:`valid_accent`)."""
    logo_url = valid_logo_url(logo_url) if logo_url else logo_url
    accent = valid_accent(accent) if accent else accent
    with write_transaction(engine) as conn:
        row = conn.execute(sa.select(page_looks).where(page_looks.c.account_id == account_id)).first()
        values: dict[str, Any] = {"logo_url": row.logo_url, "accent": row.accent,
                                  "steps": row.steps} if row else {"logo_url": None, "accent": None, "steps": None}
        if logo_url is not None:
            values["logo_url"] = logo_url or None
        if accent is not None:
            values["accent"] = accent or None
        if reset_steps or steps:
            merged = {} if reset_steps or not values["steps"] else json.loads(values["steps"])
            merged.update(steps or {})
            values["steps"] = json.dumps(merged, sort_keys=True) if merged else None
        if row is None:
            conn.execute(page_looks.insert().values(account_id=account_id, **values))
        else:
            conn.execute(page_looks.update().where(page_looks.c.account_id == account_id).values(**values))
    return load_look(engine, account_id)
