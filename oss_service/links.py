"""Signed links to an order's page: the ``status_url`` an update's answer carries.

``/status/{merchant}?order=NUMBER&key=SIGNATURE``, the signature an HMAC-SHA256
of the merchant and order number with the server's link secret
(``cartstatus-oss serve --link-secret``, env ``CARTSTATUS_OSS_LINK_SECRET``).
Nobody without the secret can make one; changing the secret revokes every
link made with it, unless it is kept a while as a previous secret (accepted,
never used to sign) so links already in shoppers' mailboxes keep working.
The key is in the query, which the access log never writes.
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
_PURPOSE = b"cartstatus-oss status link v1\n"


def new_secret() -> str:
    """A fresh link secret (256 random bits)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str, what: str = "the link secret") -> str:
    """``secret`` when it is long enough to be unguessable; ValueError says what to do otherwise."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{what} is too short ({len(secret)} characters; at least {MIN_SECRET_LENGTH}): "
                         "make one with `cartstatus-oss link-secret`")
    return secret


def _sha256(data: bytes = b"") -> Any:
    return hashlib.sha256(data)


class StatusLinks:
    """Signs order links with the current secret; accepts those of the current and the previous secrets."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        keys = [check_secret(secret).encode()] + [check_secret(p, "a previous link secret").encode()
                                                   for p in previous if p]
        # Each key's HMAC with the purpose already taken in, copied for each link, so the key's own hashing is
        # done once. Built by hmac from SHA-256 objects (a digest constructor, not the name "sha256") rather
        # than as OpenSSL's HMAC: the same HMAC-SHA256, but copying an OpenSSL 3 HMAC context took 8.5-14 µs
        # in the busy server (0.7 µs in a tight loop). Measured in one server under bench/oss.py's ingest,
        # alternating the two every half second: the server's CPU an update was 1-3% lower this way.
        self._macs = [hmac.new(key, _PURPOSE, _sha256) for key in keys]

    @staticmethod
    def _sign(mac: hmac.HMAC, merchant: str, order_number: str) -> str:
        mac = mac.copy()
        mac.update(f"{merchant}\n{order_number}".encode())
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def key(self, merchant: str, order_number: str) -> str:
        return self._sign(self._macs[0], merchant, order_number)

    def path(self, merchant: str, order_number: str) -> str:
        return f"/status/{merchant}?order={quote(order_number, safe='')}&key={self.key(merchant, order_number)}"

    def url(self, base_url: str, merchant: str, order_number: str) -> str:
        return base_url.rstrip("/") + self.path(merchant, order_number)

    def valid(self, merchant: str, order_number: str, key: str) -> bool:
        """Whether ``key`` signs this merchant's order (compared in constant time, every secret tried)."""
        given = key.encode("ascii", "replace")
        found = False
        for mac in self._macs:
            found |= hmac.compare_digest(given, self._sign(mac, merchant, order_number).encode("ascii"))
        return found
