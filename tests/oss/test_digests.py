"""The digests the OSS stores (token, body, shopper's email and ZIP) are plain SHA-256, whatever makes them."""

from __future__ import annotations

import hashlib

import pytest
from cartstatus.oss.digests import sha256_hex
from cartstatus.oss.service import hash_token, lookup_digest
from cartstatus.oss.wire import body_digest, canonical_json


@pytest.mark.parametrize("data", [b"", b"abc", "é🙂".encode(), bytes(range(256)) * 40])
def test_a_digest_is_sha256(data: bytes) -> None:
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_digests_made_one_after_another_do_not_share_state() -> None:
    assert [sha256_hex(b"abc"), sha256_hex(b"abc"), sha256_hex(b"")] == [
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]


def test_the_stored_digests_are_those_earlier_versions_stored() -> None:
    # Tokens, bodies and lookups stored before must still match: each is SHA-256 of the same text.
    assert hash_token("oss_abc") == hashlib.sha256(b"oss_abc").hexdigest()
    assert lookup_digest(7, "email", " Pat@Example.com ") == hashlib.sha256(b"7:email:pat@example.com").hexdigest()
    assert lookup_digest(7, "zip", "12345-6789") == hashlib.sha256(b"7:zip:12345").hexdigest()
    body = {"order_number": "1001", "status": "Shipped"}
    assert body_digest(body) == hashlib.sha256(canonical_json(body)).hexdigest()
