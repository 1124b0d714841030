"""The order page: opened by its signed link, its progress, the merchant's look, the shopper's language."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cartstatus.oss.app import ServerSettings
from cartstatus.oss.cli import main
from cartstatus.oss.links import StatusLinks, new_secret
from cartstatus.oss.looks import load_look, save_look
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database
from click.testing import CliRunner
from starlette.applications import Starlette

from .conftest import bearer, client_for, update_body

SECRET = new_secret()


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(ingest_rate=1000, ingest_burst=1000, lookup_rate_per_minute=60000, lookup_burst=1000,
                          account_cache_seconds=0, link_secret=SECRET)


async def _stored(client: httpx.AsyncClient, token: str, **body: object) -> str:
    reply = await client.post("/api/v1/updates", headers=bearer(token), json=update_body(**body))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["status_url"])


def _current_step(html: str) -> list[str]:
    return re.findall(r'data-step="(\w+)" aria-current="step"', html)


async def test_the_signed_link_opens_the_order_page(client: httpx.AsyncClient, account: Callable[..., str]) -> None:
    url = await _stored(client, account("acme", name="Acme"))
    assert url == StatusLinks(SECRET).url("http://oss.test", "acme", "1001")
    page = await client.get(url)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store" and page.headers["vary"] == "Accept-Language"
    assert '<span class="status" id="status">Shipped</span>' in page.text
    assert _current_step(page.text) == ["shipped"]
    assert page.text.count('class="step done"') == 2 and page.text.count('class="step todo"') == 1
    assert 'href="https://www.ups.com/track?tracknum=1Z999AA10123456784"' in page.text
    assert "<script" not in page.text


async def test_a_tampered_link_answers_exactly_as_an_unknown_order(client: httpx.AsyncClient,
                                                                  account: Callable[..., str]) -> None:
    url = await _stored(client, account())
    key = url.partition("key=")[2]
    links = StatusLinks(SECRET)
    unknown = await client.get(links.path("acme", "9999"))  # rightly signed, but no such order
    assert unknown.status_code == 404 and 'id="not-found"' in unknown.text
    for tampered in (url[:-1] + ("A" if url[-1] != "A" else "B"), url.replace("order=1001", "order=1002"),
                     url.replace(key, ""), url.replace(key, StatusLinks(new_secret()).key("acme", "1001")),
                     "/status/acme?order=1001&key=" + key.upper(), "/status/acme?key=" + key,
                     "/status/acme?order=%00&key=x"):
        reply = await client.get(tampered)
        assert (reply.status_code, reply.text) == (unknown.status_code, unknown.text), tampered
        assert reply.headers["cache-control"] == "no-store"


async def test_a_link_of_another_merchant_or_a_revoked_one_shows_no_order(
        client: httpx.AsyncClient, account: Callable[..., str], oss_store: OssStore) -> None:
    url = await _stored(client, account("acme"))
    account("other")
    other = await client.get(url.replace("/status/acme", "/status/other"))
    assert other.status_code == 404 and 'id="not-found"' in other.text and "Shipped" not in other.text
    oss_store.revoke("acme")
    gone = await client.get(url)
    assert gone.status_code == 404 and "Shipped" not in gone.text


async def test_rotating_the_secret_revokes_the_links_unless_the_old_one_is_kept(
        make_app: Callable[..., Starlette], account: Callable[..., str]) -> None:
    token = account()
    async with client_for(make_app(ServerSettings(link_secret=SECRET))) as c:
        url = await _stored(c, token)
    new = new_secret()
    async with client_for(make_app(ServerSettings(link_secret=new))) as c:
        assert (await c.get(url)).status_code == 404
        fresh = await _stored(c, token, idempotency_key="key-0002")
    async with client_for(make_app(ServerSettings(link_secret=new, previous_link_secrets=(SECRET,)))) as c:
        assert (await c.get(url)).status_code == 200
        assert (await c.get(fresh)).status_code == 200


async def test_links_and_the_form_share_the_lookup_limit(make_app: Callable[..., Starlette],
                                                         account: Callable[..., str]) -> None:
    token = account()
    async with client_for(make_app(ServerSettings(link_secret=SECRET, lookup_rate_per_minute=1,
                                                  lookup_burst=2))) as c:
        url = await _stored(c, token)
        assert (await c.get(url)).status_code == 200
        assert (await c.post("/status/acme", data={"order": "1001", "zip": "12345"})).status_code == 200
        limited = await c.get(url)
        assert limited.status_code == 429 and "Shipped" not in limited.text
        assert int(limited.headers["retry-after"]) >= 1
        assert (await c.post("/status/acme", data={"order": "1001", "zip": "12345"})).status_code == 429
        assert (await c.get("/status/acme")).status_code == 200  # the bare form is no lookup


async def test_cancelled_and_backordered_orders_are_shown_as_such(client: httpx.AsyncClient,
                                                                  account: Callable[..., str]) -> None:
    token = account()
    for number, label, state in (("2001", "Order canceled", "cancelled"), ("2002", "Back Ordered", "backordered")):
        page = await client.get(await _stored(client, token, order_number=number, status=label))
        assert f'id="order-state" data-state="{state}"' in page.text
        assert 'id="steps"' not in page.text and 'aria-current="step"' not in page.text
        assert f'id="status">{label}<' in page.text  # the merchant's label as written


async def test_the_merchants_look_and_step_mapping_apply(client: httpx.AsyncClient, account: Callable[..., str],
                                                         oss_store: OssStore) -> None:
    url = await _stored(client, account("acme", name="Acme"), status="Printed")
    assert _current_step((await client.get(url)).text) == ["processing"]  # "print": processing by default
    acme = oss_store.account("acme")
    save_look(oss_store.engine, acme.id, logo_url="https://cdn.example.com/acme.png", accent="#ffcc00",
              steps={"printed": "shipped"})
    page = (await client.get(url)).text
    assert _current_step(page) == ["shipped"]
    assert '<img class="logo" src="https://cdn.example.com/acme.png" alt="Acme">' in page
    assert '<link rel="stylesheet" href="/status/acme/look.css">' in page
    css = await client.get("/status/acme/look.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.text == ":root{--accent:#ffcc00;--on-accent:#000000}\n"
    assert (await client.get("/status/nobody/look.css")).status_code == 404


async def test_the_page_speaks_the_shoppers_language_but_keeps_the_merchants_words(
        client: httpx.AsyncClient, account: Callable[..., str]) -> None:
    url = await _stored(client, account(), note="Left at the door")
    french = await client.get(url, headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.text
    assert "<h1>Commande 1001</h1>" in french.text and "<title>Commande 1001" in french.text
    assert '<span class="name">Expédiée</span>' in french.text  # the step, translated
    assert '<span class="status" id="status">Shipped</span>' in french.text  # the merchant's label, as written
    assert "Left at the door" in french.text and "1 juin 2026" in french.text
    german = await client.get(url, headers={"Accept-Language": "de"})
    assert '<html lang="de">' in german.text and "Sendungsverfolgung" in german.text
    spanish = await client.get(url, headers={"Accept-Language": "es"})
    assert '<html lang="en">' in spanish.text and "<h1>Order 1001</h1>" in spanish.text
    form = await client.post("/status/acme", data={"order": "1", "zip": "0"}, headers={"Accept-Language": "fr"})
    assert "Nous n'avons trouvé aucune commande" in form.text
    wait = await client.get("/", headers={"Accept-Language": "de"})
    assert "Bestellstatus" in wait.text


def _update(db: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["accounts", "update", *args, "--db", db])
    return result.exit_code, result.output


def test_accounts_update_validates_and_sets_the_look(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    CliRunner().invoke(main, ["accounts", "create", "acme", "--expires", "2027-01-31", "--db", db])
    code, out = _update(db, "acme", "--logo-url", "http://cdn.example.com/l.png")
    assert code == 1 and "--logo-url: the logo URL must start with https://" in out
    code, out = _update(db, "acme", "--accent", "teal")
    assert code == 1 and "--accent: 'teal' is not a colour" in out
    code, out = _update(db, "acme", "--step", "Printed=lost")
    assert code == 1 and "--step: 'lost'" in out
    code, out = _update(db, "acme", "--display-name", "Acme Outfitters", "--logo-url", "https://cdn.example.com/l.png",
                        "--accent", "#0a7", "--step", "Printed=shipped", "--step", "On Hold=backordered", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["name"], shown["logo_url"], shown["accent"]) == ("Acme Outfitters", "https://cdn.example.com/l.png",
                                                                    "#00aa77")
    assert shown["steps"] == {"printed": "shipped", "on hold": "backordered"}
    code, out = _update(db, "acme", "--reset-steps", "--accent", "", "--json")
    assert code == 0 and json.loads(out)["steps"] == {} and json.loads(out)["accent"] is None
    assert json.loads(out)["logo_url"] == "https://cdn.example.com/l.png"
    store = OssStore(open_oss_database(db))
    assert load_look(store.engine, store.account("acme").id).logo_url == "https://cdn.example.com/l.png"
    store.close()


def test_serve_refuses_a_short_link_secret_and_link_secret_makes_one() -> None:
    result = CliRunner().invoke(main, ["serve", "--link-secret", "too-short", "--no-migrate"])
    assert result.exit_code == 1 and "--link-secret: the link secret is too short" in result.output
    assert "too-short" not in result.output.replace("--link-secret", "")  # the secret is not echoed
    made = CliRunner().invoke(main, ["link-secret"]).output.strip()
    assert len(made) >= 32 and made != CliRunner().invoke(main, ["link-secret"]).output.strip()
