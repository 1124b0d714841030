"""Who is calling: a store token resolved to its account, remembered a few seconds by each worker."""

from __future__ import annotations

import time
from collections.abc import Callable

from .service import Account, OssStore


class AccountCache:
    """Token hash to account, each entry kept ``ttl`` seconds.

    The account is known before a request's body is read, without a database
    round trip per request. Revoking, rotating or renewing reaches every
    worker within ``ttl`` (the group commit checks the account again in its
    transaction, so a revoked token stores nothing even within that time).
    Unknown tokens are not remembered: the caller limits them per address.
    """

    def __init__(self, store: OssStore, ttl: float = 5.0, *, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, Account]] = {}

    def cached(self, token_hash: str) -> Account | None:
        """The account remembered for this token, or None when there is none still fresh."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[token_hash]
            return None
        return entry[1]

    async def load(self, token_hash: str) -> Account | None:
        """The account from the database (the loop never waits for it), remembered when there is one."""
        account = await self.store.account_for_hash(token_hash)
        if account is not None and self.ttl > 0:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[token_hash] = (self.clock() + self.ttl, account)
        return account
