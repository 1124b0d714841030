"""The shopper pages in the shopper's language: the choice from Accept-Language, and complete catalogs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from cartstatus.oss.i18n import LANGUAGES, accepted, choose_language, format_instant, translations

OSS = Path(__file__).resolve().parents[2] / "oss_service"


@pytest.mark.parametrize(("header", "language"), [
    (None, "en"), ("", "en"), ("fr", "fr"), ("fr-CA,fr;q=0.9,en;q=0.8", "fr"), ("de-DE", "de"),
    ("es-ES,es;q=0.9,de;q=0.5,fr;q=0.4", "de"),  # the first language the pages speak, by weight
    ("en;q=0.2, fr;q=0.8", "fr"), ("fr;q=0, de", "de"),  # q=0: not wanted at all
    ("pt-BR,pt", "en"), ("*", "en"), ("fr;q=abc,de;q=0.1", "de"), ("DE_de", "de"), (";;,,", "en"),
])
def test_the_language_is_chosen_from_accept_language(header: str | None, language: str) -> None:
    assert choose_language(header) == language


def test_accepted_ranks_by_weight_then_order() -> None:
    assert accepted("da, en-gb;q=0.8, en;q=0.7, fr;q=0.8") == ["da", "en-gb", "fr", "en"]


def _messages() -> set[str]:
    """Every message the pages show, as ``pybabel extract -F oss_service/locale/babel.cfg -k N_`` finds them."""
    with (OSS / "locale" / "babel.cfg").open() as cfg:
        method_map, options = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    return {m[2] for m in extract_from_dir(str(OSS), method_map, options, keywords=keywords) if isinstance(m[2], str)}


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_message_is_translated(language: str) -> None:
    messages = _messages()
    assert {"Order status", "Shipped", "This order is cancelled.", "Please wait %(seconds)s seconds and try again."} \
        <= messages
    with (OSS / "locale" / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    assert messages - set(translated) == set(), "translate these, or drop them from the .po"
    assert set(translated) - messages == set(), "no longer used: drop them from the .po"
    for message, text in translated.items():
        assert re.findall(r"%\(\w+\)s", message) == re.findall(r"%\(\w+\)s", text), message


def test_catalogs_compile_from_the_po_files_as_committed() -> None:
    assert translations("fr").gettext("Shipped") == "Expédiée"
    assert translations("de").gettext("Order %(number)s") % {"number": "A-1"} == "Bestellung A-1"
    assert translations("en").gettext("Shipped") == "Shipped"


def test_times_read_in_the_language() -> None:
    at = 1780128000.0  # 2026-05-30 08:00 UTC
    assert format_instant(at, "en") == "May 30, 2026 8:00\u202fAM UTC"
    assert format_instant(at, "fr") == "30 mai 2026 08:00 UTC"
    assert format_instant(at, "de") == "30.05.2026 08:00 UTC"
