"""Signed order links (status_url): only the secret makes them, any change breaks them, rotation revokes them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cartstatus.oss.links import MIN_SECRET_LENGTH, StatusLinks, check_secret, new_secret

SECRET = "s" * MIN_SECRET_LENGTH
OTHER = "o" * MIN_SECRET_LENGTH


def test_a_link_names_the_order_and_carries_its_signature() -> None:
    links = StatusLinks(SECRET)
    url = links.url("https://status.example.com/", "acme", "A-1001/2#3")
    assert url == f"https://status.example.com/status/acme?order=A-1001%2F2%233&key={links.key('acme', 'A-1001/2#3')}"
    assert links.valid("acme", "A-1001/2#3", links.key("acme", "A-1001/2#3"))
    assert len(links.key("acme", "A-1001")) == 43  # 256 bits, base64url without padding


SECRETS = pytest.mark.parametrize("secret", [SECRET, "s" * 64, "long " * 30],
                                  ids=["generated", "one block", "over a block"])


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@SECRETS
def test_the_key_is_the_documented_keyed_blake2b(secret: str) -> None:
    # BLAKE2b of the merchant and the order number, keyed with the secret's own BLAKE2b digest (so a secret of
    # any length makes a key), each personalised for links (links.py).
    key = hashlib.blake2b(secret.encode(), digest_size=32, person=b"oss link key").digest()
    mac = hashlib.blake2b(b"acme\nA-1001", digest_size=32, key=key, person=b"oss status link").digest()
    assert StatusLinks(secret).key("acme", "A-1001") == _b64(mac)
    assert StatusLinks(OTHER, [secret]).valid("acme", "A-1001", _b64(mac))


@SECRETS
def test_links_signed_before_with_hmac_sha256_stay_valid(secret: str) -> None:
    # Links made before the keyed BLAKE2b are in shoppers' mailboxes: HMAC-SHA256 of the purpose line, the
    # merchant and the order number with the secret (a secret longer than SHA-256's block hashed first, as
    # HMAC says). They stay valid, under the current secret and a previous one, and are no longer made.
    old = _b64(hmac.digest(secret.encode(), b"cartstatus-oss status link v1\nacme\nA-1001", "sha256"))
    assert StatusLinks(secret).valid("acme", "A-1001", old)
    assert StatusLinks(OTHER, [secret]).valid("acme", "A-1001", old)
    assert not StatusLinks(OTHER).valid("acme", "A-1001", old)
    assert not StatusLinks(secret).valid("acme", "A-1002", old)
    assert StatusLinks(secret).key("acme", "A-1001") != old


@pytest.mark.parametrize(("merchant", "order", "alter"), [
    ("acme", "A-1002", lambda k: k),  # another order under the same key
    ("acmf", "A-1001", lambda k: k),  # another merchant
    ("acme", "A-1001", lambda k: k[:-1] + ("A" if k[-1] != "A" else "B")),  # one character changed
    ("acme", "A-1001", lambda k: k[:-1]),  # cut short
    ("acme", "A-1001", lambda k: ""),
    ("acme", "A-1001", lambda k: k + "é"),
])
def test_a_tampered_link_is_refused(merchant: str, order: str, alter: object) -> None:
    links = StatusLinks(SECRET)
    key = links.key("acme", "A-1001")
    assert callable(alter)
    assert not links.valid(merchant, order, alter(key))


def test_another_secret_makes_other_keys() -> None:
    assert StatusLinks(SECRET).key("acme", "A-1001") != StatusLinks(OTHER).key("acme", "A-1001")


def test_rotating_the_secret_revokes_old_links_unless_kept_as_previous() -> None:
    old = StatusLinks(SECRET).key("acme", "A-1001")
    rotated = StatusLinks(OTHER)
    assert not rotated.valid("acme", "A-1001", old)
    grace = StatusLinks(OTHER, previous=[SECRET])
    assert grace.valid("acme", "A-1001", old)  # links already in mailboxes keep working for a while
    assert grace.key("acme", "A-1001") == rotated.key("acme", "A-1001")  # new links: the new secret only
    assert grace.valid("acme", "A-1001", grace.key("acme", "A-1001"))


def test_a_short_secret_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"at least 32.*cartstatus-oss link-secret"):
        StatusLinks("short")
    with pytest.raises(ValueError, match="previous link secret"):
        StatusLinks(SECRET, previous=["short"])
    assert check_secret(new_secret()) != check_secret(new_secret())
