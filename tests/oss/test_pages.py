"""The shopper's HTML pages: form, result, merchant header and footer, snippet, headers."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from cartstatus.oss.service import OssStore, tracking_url

from .conftest import bearer, update_body


async def test_the_form_page_has_the_lookup_form_and_security_headers(client: httpx.AsyncClient,
                                                                      account: Callable[..., str]) -> None:
    account("acme", name="Acme & Sons")
    r = await client.get("/status/acme")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'action="/status/acme"' in r.text and 'name="order"' in r.text
    assert "Acme &amp; Sons" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"


async def test_the_result_page_shows_status_history_and_tracking_links(client: httpx.AsyncClient,
                                                                       account: Callable[..., str]) -> None:
    token = account()
    await client.post("/api/v1/updates", headers=bearer(token), json=update_body(
        status="Printed", previous_status=None, occurred_at="2026-05-30T08:00:00Z", tracking=[]))
    await client.post("/api/v1/updates", headers=bearer(token), json=update_body(
        note="Left at the <back> door", tracking=[
            {"carrier": "UPS", "number": "1Z999AA10123456784"}, {"carrier": "USPS", "number": "9400100000000000000000"},
            {"carrier": "FedEx", "number": "123456789012"}, {"carrier": "DHL", "number": "1234567890"},
            {"carrier": "Pigeon", "number": "P1"}]))
    r = await client.post("/status/acme", data={"order": "1001", "email": "pat@example.com"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert '<span class="status" id="status">Shipped</span>' in r.text
    assert '<time datetime="2026-05-30T08:00:00Z">May 30, 2026 8:00\u202fAM UTC</time>' in r.text
    assert '<time datetime="2026-06-01T10:00:00Z">Jun 1, 2026 10:00\u202fAM UTC</time>' in r.text
    assert "Left at the &lt;back&gt; door" in r.text
    for carrier, number in [("UPS", "1Z999AA10123456784"), ("USPS", "9400100000000000000000"),
                            ("FedEx", "123456789012"), ("DHL", "1234567890")]:
        url = tracking_url(carrier, number)
        assert url is not None and number in url
        assert f'href="{url.replace("&", "&amp;")}"' in r.text
    assert '<span class="tracking">P1</span>' in r.text  # an unknown carrier: no link


async def test_a_wrong_zip_and_an_unknown_order_get_the_same_page(client: httpx.AsyncClient,
                                                                  account: Callable[..., str]) -> None:
    await client.post("/api/v1/updates", headers=bearer(account()), json=update_body())
    wrong_zip = await client.post("/status/acme", data={"order": "1001", "zip": "54321"})
    unknown = await client.post("/status/acme", data={"order": "1001", "zip": "54321"})
    other = await client.post("/status/acme", data={"order": "7777", "zip": "12345"})
    assert wrong_zip.status_code == unknown.status_code == other.status_code == 404
    assert 'id="not-found"' in wrong_zip.text
    assert wrong_zip.text.replace("1001", "N") == other.text.replace("7777", "N")
    assert "Shipped" not in wrong_zip.text


async def test_merchant_header_and_footer_are_sanitised(client: httpx.AsyncClient, account: Callable[..., str],
                                                        oss_store: OssStore) -> None:
    account()
    oss_store.set_page("acme", header_html='<h1 onclick="steal()">Acme</h1><script>alert(1)</script>'
                                           '<img src="https://acme.example/logo.png" alt="logo">',
                       footer_html='<a href="javascript:alert(1)">x</a> <a href="https://acme.example/">Shop</a>'
                                   '<style>body{display:none}</style>')
    r = await client.get("/status/acme")
    assert "<h1>Acme</h1>" in r.text
    assert '<img src="https://acme.example/logo.png" alt="logo">' in r.text
    assert 'href="https://acme.example/"' in r.text
    for bad in ("<script", "onclick", "javascript:", "<style", "alert(1)"):
        assert bad not in r.text


async def test_unknown_or_revoked_merchant_has_no_page(client: httpx.AsyncClient, account: Callable[..., str],
                                                       oss_store: OssStore) -> None:
    assert (await client.get("/status/nobody")).status_code == 404
    await client.post("/api/v1/updates", headers=bearer(account()), json=update_body())
    oss_store.revoke("acme")
    assert (await client.get("/status/acme")).status_code == 404
    r = await client.post("/status/acme", data={"order": "1001", "zip": "12345"})
    assert r.status_code == 404 and "Shipped" not in r.text


async def test_the_snippet_posts_to_the_merchants_page(client: httpx.AsyncClient, account: Callable[..., str]) -> None:
    account()
    r = await client.get("/status/acme/snippet")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert '<form method="post" action="http://oss.test/status/acme"' in r.text
    assert 'name="order"' in r.text and 'name="zip"' in r.text
