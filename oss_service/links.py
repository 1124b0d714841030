"""Signed links to an order's page: the ``status_url`` an update's answer carries.

``/status/{merchant}?order=NUMBER&key=SIGNATURE``, the signature a keyed
BLAKE2b (a MAC by design, RFC 7693) of the merchant and order number, keyed
with the server's link secret (``cartstatus-oss serve --link-secret``, env
``CARTSTATUS_OSS_LINK_SECRET``). Links made before, whose signature is an
HMAC-SHA256 of the same with the same secret, are still accepted. Nobody
without the secret can make one; changing the secret revokes every link made
with it, unless it is kept a while as a previous secret (accepted, never used
to sign) so links already in shoppers' mailboxes keep working. The key is in
the query, which the access log never writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

SECRET_ENV = "CARTSTATUS_OSS_LINK_SECRET"
PREVIOUS_SECRET_ENV = "CARTSTATUS_OSS_PREVIOUS_LINK_SECRET"
MIN_SECRET_LENGTH = 32
_PURPOSE = b"cartstatus-oss status link v1\n"  # the HMAC-SHA256 links' first line
_PERSON = b"oss status link"  # BLAKE2b's personalisation: these keys sign links and nothing else
_KEY_PERSON = b"oss link key"


def new_secret() -> str:
    """A fresh link secret (256 random bits)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str, what: str = "the link secret") -> str:
    """``secret`` when it is long enough to be unguessable; ValueError says what to do otherwise."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{what} is too short ({len(secret)} characters; at least {MIN_SECRET_LENGTH}): "
                         "make one with `cartstatus-oss link-secret`")
    return secret


def _signer(secret: bytes) -> Any:
    # BLAKE2b takes a key of at most 64 bytes, and a secret can be longer: the key is the secret's own
    # BLAKE2b digest, made once.
    key = hashlib.blake2b(secret, digest_size=32, person=_KEY_PERSON).digest()
    return hashlib.blake2b(digest_size=32, key=key, person=_PERSON)


class StatusLinks:
    """Signs order links with the current secret; accepts those of the current and the previous secrets."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        keys = [check_secret(secret).encode()] + [check_secret(p, "a previous link secret").encode()
                                                   for p in previous if p]
        # Each secret's keyed hash made once and copied for each link. Keyed BLAKE2b rather than HMAC-SHA256:
        # one C object to copy, where hmac's copy and digest are Python over two hash objects. Measured in one
        # server under bench/oss.py's ingest, alternating the two every half second: 1.5-4% less CPU an update
        # over two runs (making no link at all saved 4.6%).
        self._signers = [_signer(key) for key in keys]
        # How links were signed before: HMAC-SHA256 of the purpose line, the merchant and the order number.
        self._hmacs = [hmac.new(key, _PURPOSE, "sha256") for key in keys]

    @staticmethod
    def _sign(mac: Any, merchant: str, order_number: str) -> str:
        mac = mac.copy()
        mac.update(f"{merchant}\n{order_number}".encode())
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def key(self, merchant: str, order_number: str) -> str:
        return self._sign(self._signers[0], merchant, order_number)

    def path(self, merchant: str, order_number: str) -> str:
        return f"/status/{merchant}?order={quote(order_number, safe='')}&key={self.key(merchant, order_number)}"

    def url(self, base_url: str, merchant: str, order_number: str) -> str:
        return base_url.rstrip("/") + self.path(merchant, order_number)

    def valid(self, merchant: str, order_number: str, key: str) -> bool:
        """Whether ``key`` signs this merchant's order (compared in constant time, every secret and way tried)."""
        given = key.encode("ascii", "replace")
        found = False
        for mac in (*self._signers, *self._hmacs):
            found |= hmac.compare_digest(given, self._sign(mac, merchant, order_number).encode("ascii"))
        return found
