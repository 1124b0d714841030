"""The merchant's look: an https logo, a real colour with readable text on it, the labels' places kept."""

from __future__ import annotations

import itertools

import pytest
from cartstatus.oss.looks import (
    DEFAULT_ACCENT,
    PageLook,
    contrast,
    load_look,
    save_look,
    text_on,
    valid_accent,
    valid_logo_url,
)
from cartstatus.oss.service import OssStore

from .conftest import TODAY


@pytest.mark.parametrize(("given", "kept"), [("#0a7", "#00aa77"), ("#00AA77", "#00aa77"), (" #123456 ", "#123456")])
def test_a_colour_is_kept_as_rrggbb(given: str, kept: str) -> None:
    assert valid_accent(given) == kept


@pytest.mark.parametrize("given", ["0a7", "#0a", "#0a77", "#ggg", "red", "#00aa77;}body{display:none",
                                   "url(x)", "", "#00aa7700"])
def test_anything_but_a_hex_colour_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not a colour: give #rgb or #rrggbb"):
        valid_accent(given)


def test_an_https_logo_is_kept() -> None:
    url = "https://cdn.example.com/acme/logo.png?v=2"
    assert valid_logo_url(url) == url


@pytest.mark.parametrize(("given", "message"), [
    ("http://cdn.example.com/logo.png", "must start with https://"),
    ("javascript:alert(1)", "must start with https://"),
    ("data:image/png;base64,AAAA", "must start with https://"),
    ("//cdn.example.com/logo.png", "must start with https://"),
    ("https:///logo.png", "names no host"),
    ("https://user:pw@cdn.example.com/logo.png", "user name or password"),
    ('https://cdn.example.com/a"onerror="x.png', "quotes"),
    ("https://cdn.example.com/a b.png", "spaces"),
    ("https://cdn.example.com:port/logo.png", "not a URL"),
    ("https://cdn.example.com/" + "a" * 2000, "longer than 2000"),
])
def test_a_logo_url_that_is_not_plain_https_is_refused(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        valid_logo_url(given)


def test_text_on_any_accent_reads_at_4_5_to_1() -> None:
    levels = ("00", "33", "66", "77", "99", "cc", "ff")
    for r, g, b in itertools.product(levels, repeat=3):
        accent = f"#{r}{g}{b}"
        assert contrast(accent, text_on(accent)) >= 4.5, accent
    assert text_on("#ffff00") == "#000000" and text_on("#1f5fa8") == "#ffffff"
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0


def test_the_look_as_css_and_its_default() -> None:
    assert PageLook().css() == f":root{{--accent:{DEFAULT_ACCENT};--on-accent:#ffffff}}\n"
    assert PageLook(accent="#ffee00").css() == ":root{--accent:#ffee00;--on-accent:#000000}\n"


def test_a_change_keeps_what_it_does_not_name(oss_store: OssStore) -> None:
    account, _ = oss_store.create_account("acme", TODAY)
    engine = oss_store.engine
    assert load_look(engine, account.id) == PageLook()
    save_look(engine, account.id, logo_url="https://x.example/l.png", accent="#00aa77", steps={"printed": "shipped"})
    save_look(engine, account.id, steps={"on hold": "backordered"})
    assert load_look(engine, account.id) == PageLook("https://x.example/l.png", "#00aa77",
                                                     {"printed": "shipped", "on hold": "backordered"})
    cleared = save_look(engine, account.id, logo_url="", accent="", reset_steps=True)
    assert cleared == PageLook()


def test_a_look_is_validated_when_saved_too(oss_store: OssStore) -> None:
    account, _ = oss_store.create_account("acme", TODAY)
    with pytest.raises(ValueError, match="https"):
        save_look(oss_store.engine, account.id, logo_url="http://x.example/l.png")
    with pytest.raises(ValueError, match="not a colour"):
        save_look(oss_store.engine, account.id, accent="blue")
    assert save_look(oss_store.engine, account.id, accent="#0A7").accent == "#00aa77"
