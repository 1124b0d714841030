"""The shopper pages in the shopper's language: chosen from ``Accept-Language``, translated with Babel.

The catalogs are the ``.po`` files under ``locale/`` as committed; each is
compiled in memory the first time a page needs it, so a fresh clone (or an
installed wheel) needs no build step. The merchant's labels, notes and
header are not translated: they are shown as the merchant wrote them.
"""

from __future__ import annotations

import datetime as dt
import io
from functools import cache
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DEFAULT_LANGUAGE = "en"
#: English (the templates' own text) and the languages with a catalog in ``locale/``.
LANGUAGES = ("en", "fr", "de")
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a message for extraction where it is written; it is translated where it is shown."""
    return message


def accepted(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (``q=0`` left out)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(header: str | None) -> str:
    """The first language of the header the pages speak (``fr-CA`` takes ``fr``), else English."""
    wanted = [tag.replace("_", "-") for tag in accepted(header)]
    found = Locale.negotiate(wanted, LANGUAGES, sep="-") if wanted else None
    return str(found) if found else DEFAULT_LANGUAGE


@cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language`` compiled from its ``.po`` (English: the messages as written)."""
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    source = resources.files("cartstatus.oss").joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.po")
    with source.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def locale(language: str) -> Locale:
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LANGUAGE)


def format_instant(timestamp: float, language: str) -> str:
    """A moment of an order's history in the shopper's language (UTC, said so)."""
    at = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    where = locale(language)
    return f"{format_date(at, 'medium', locale=where)} {format_time(at, 'short', tzinfo=dt.UTC, locale=where)} UTC"
