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
import hmac
import secrets
from collections.abc import Sequence
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


class StatusLinks:
    """Signs order links with the current secret; accepts those of the current and the previous secrets."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._keys = [check_secret(secret).encode()] + [check_secret(p, "a previous link secret").encode()
                                                        for p in previous if p]

    @staticmethod
    def _sign(key: bytes, merchant: str, order_number: str) -> str:
        mac = hmac.digest(key, _PURPOSE + f"{merchant}\n{order_number}".encode(), "sha256")  # one call, in C
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def key(self, merchant: str, order_number: str) -> str:
        return self._sign(self._keys[0], merchant, order_number)

    def path(self, merchant: str, order_number: str) -> str:
        return f"/status/{merchant}?order={quote(order_number, safe='')}&key={self.key(merchant, order_number)}"

    def url(self, base_url: str, merchant: str, order_number: str) -> str:
        return base_url.rstrip("/") + self.path(merchant, order_number)

    def valid(self, merchant: str, order_number: str, key: str) -> bool:
        """Whether ``key`` signs this merchant's order (compared in constant time, every secret tried)."""
        given = key.encode("ascii", "replace")
        found = False
        for k in self._keys:
            found |= hmac.compare_digest(given, self._sign(k, merchant, order_number).encode("ascii"))
        return found
