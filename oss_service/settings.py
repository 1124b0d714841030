"""How the OSS server behaves: the options of ``cartstatus-oss serve``, shared with its worker processes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from .service import LOOKUP_FAILURE_LIMIT, LOOKUP_FAILURE_WINDOW
from .storage import db_url

SETTINGS_ENV = "CARTSTATUS_OSS_SETTINGS"


@dataclass(frozen=True)
class ServerSettings:
    """How the server behaves; ``cartstatus-oss serve`` options map onto these."""

    db_url: str | None = None
    #: Largest update body accepted, in bytes (413 beyond).
    max_body: int = 64 * 1024
    #: Updates per second per account, and the burst allowed.
    ingest_rate: float = 50.0
    ingest_burst: float = 200.0
    #: Lookups per minute per client address, and the burst allowed.
    lookup_rate_per_minute: float = 30.0
    lookup_burst: float = 10.0
    #: Failed lookups of one merchant's order number per window (seconds), counted in the database for all
    #: workers and addresses together; beyond it the order cannot be looked up until the window is over.
    lookup_failures: int = LOOKUP_FAILURE_LIMIT
    lookup_failure_window: float = LOOKUP_FAILURE_WINDOW
    #: Requests without a valid token per minute per client address, and the burst allowed.
    unauthenticated_rate_per_minute: float = 60.0
    unauthenticated_burst: float = 20.0
    #: Seconds a token's account is remembered by a worker: revoking, rotating or renewing takes this long at most.
    account_cache_seconds: float = 5.0
    #: Updates written per transaction at most.
    max_batch: int = 256
    #: The secret signing the order links (``status_url``), and earlier ones still accepted (:mod:`.links`).
    link_secret: str = field(default="", repr=False)
    previous_link_secrets: tuple[str, ...] = field(default=(), repr=False)
    #: The address shoppers reach the OSS at, for links (else the address each request came to).
    public_url: str | None = None

    def to_env(self) -> None:
        """Hand the settings to the worker processes uvicorn starts (see :meth:`from_env`)."""
        os.environ[SETTINGS_ENV] = json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerSettings:
        """Settings for worker processes started by uvicorn (``serve --workers N``)."""
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            return cls(db_url=db_url())
        values = json.loads(raw)
        values["previous_link_secrets"] = tuple(values.get("previous_link_secrets", ()))
        return cls(**values)
