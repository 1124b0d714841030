"""The connector contract: what a cart connector is and what it is given.

A connector turns one :class:`StatusUpdate` into the cart's own API call and
answers with one typed outcome (see :mod:`cartstatus.outcomes`).
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from .outcomes import Failed, Outcome, RetryLater
from .secrets import SecretMask, mask_secrets, reveal, reveal_secrets

#: A reason is kept whole up to here until it is masked (a cut first could leave
#: the start of a secret); the bound only keeps a huge page from eating memory.
REASON_BOUND = 64 * 1024
#: The longest reason stored or shown, once masked (see :func:`reason_text`).
REASON_LIMIT = 500


@dataclass(frozen=True)
class Tracking:
    """One package's tracking number."""

    carrier: str
    number: str
    ship_date: str | None = None  # ISO date

    @classmethod
    def parse(cls, text: str, ship_date: str | None = None) -> Tracking:
        """``CARRIER:NUMBER`` as given on the command line."""
        carrier, sep, number = text.partition(":")
        if not sep or not carrier.strip() or not number.strip():
            raise ValueError(f"tracking {text!r} must be CARRIER:NUMBER, for example UPS:1Z999AA10123456784")
        return cls(carrier.strip(), number.strip(), ship_date)


@dataclass(frozen=True)
class StatusUpdate:
    """Everything a connector needs to send one status change, captured at enqueue."""

    idempotency_key: str
    store_id: str
    order_number: str  # the order manager's own number
    cart_order_ref: str  # the cart's own reference for the order
    status: str  # the label in the order manager
    cart_status: str  # the label mapped through the store's status_map
    previous_status: str | None
    event: str
    occurred_at: str  # ISO 8601, UTC
    tracking: tuple[Tracking, ...] = ()
    note: str | None = None
    email: str | None = None
    zip: str | None = None

    def to_payload(self) -> dict[str, Any]:
        # Spelled out rather than dataclasses.asdict (which deep-copies every
        # field): this runs once per update on the enqueue hot path.
        return {
            "idempotency_key": self.idempotency_key, "store_id": self.store_id,
            "order_number": self.order_number, "cart_order_ref": self.cart_order_ref, "status": self.status,
            "cart_status": self.cart_status, "previous_status": self.previous_status, "event": self.event,
            "occurred_at": self.occurred_at,
            "tracking": [{"carrier": t.carrier, "number": t.number, "ship_date": t.ship_date} for t in self.tracking],
            "note": self.note, "email": self.email, "zip": self.zip,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> StatusUpdate:
        values = dict(data)
        values["tracking"] = tuple(Tracking(**t) for t in values.get("tracking", ()))
        return cls(**values)


@dataclass(frozen=True)
class RateLimit:
    """A cart's published request limit: the stack controller lets at most ``requests`` requests start
    to one store in any ``per_seconds`` (a sliding window, no burst beyond it), however many a send makes."""

    requests: int
    per_seconds: float
    note: str = ""


@dataclass(frozen=True)
class LimitHint:
    """What a reply's headers said of the cart's limit (see :meth:`Connector.limit_hint`)."""

    remaining: int | None  # calls left until the reset; 0 holds the store
    reset_in: float | None  # seconds until the cart's window resets
    at: float  # time.monotonic() when the reply was read


@dataclass(frozen=True)
class ConnectionResult:
    """What a connection test found."""

    ok: bool
    detail: str


class ConnectorError(Exception):
    """A connector was configured wrongly (bad settings, unknown label)."""


class StopSend(Exception):
    """Ends a send with :attr:`outcome`: raised by :meth:`Connector.call`, caught by :meth:`Connector.outcome_of`."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(self.reason_of(outcome))
        self.outcome = outcome

    @staticmethod
    def reason_of(outcome: Outcome) -> str:
        return outcome.reason if isinstance(outcome, RetryLater | Failed) else type(outcome).__name__

    @property
    def reason(self) -> str:
        """The outcome's reason (its type's name for a success), for a connection test's detail."""
        return self.reason_of(self.outcome)


class RequestPacer(Protocol):
    """Keeps a store's requests to its limit (the stack controller's :class:`~cartstatus.ratelimits.Pacer`)."""

    async def acquire(self) -> None: ...

    def hint(self, hint: LimitHint) -> None: ...


@runtime_checkable
class HoldsSecrets(Protocol):
    """An ``httpx.Auth`` that obtains secrets at run time (a login's token) names them here for masking."""

    @property
    def held_secrets(self) -> tuple[str, ...]: ...


class Connector:
    """Base class for cart connectors.

    Subclasses set the class attributes and implement :meth:`send`; they may
    override :meth:`send_batch` when the cart has a batch call.
    """

    #: The connector's key, as named in the matrix and in a store's ``cart``.
    name: ClassVar[str] = ""
    #: JSON Schema of the store's ``connector:`` settings; secrets carry ``"secret": true``.
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: The cart's fixed status vocabulary, or None when the cart takes any label.
    status_vocabulary: ClassVar[tuple[str, ...] | None] = None
    #: The cart's own value for each standard label (those "Load Default Status Events" writes:
    #: Shipped, Cancelled...), used where a store's ``status_map`` does not name the label.
    default_status_map: ClassVar[Mapping[str, str]] = {}
    #: The cart's published request limit, if any.
    rate_limit: ClassVar[RateLimit | None] = None
    #: Whether the cart has a real batch call.
    supports_batch: ClassVar[bool] = False
    #: Seconds before a request is given up as timed out.
    timeout: ClassVar[float] = 30.0
    #: The most requests the stack controller keeps in flight to one store at
    #: once; None leaves it to the controller's ``concurrency``.
    max_in_flight: ClassVar[int | None] = None

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = dict(settings)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._held_mask: tuple[tuple[str, ...], SecretMask] = ((), SecretMask())
        self._limit_hint: LimitHint | None = None
        self._pacer: RequestPacer | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_secrets(self.settings)!r})"

    @property
    def client(self) -> httpx.AsyncClient:
        """One pooled HTTP client per connector instance: on the transport given (the kit's, a test's),
        else on :class:`~cartstatus.transport.CartTransport`."""
        if self._client is None:
            # Imported here: aiohttp takes a while to load, and `cartstatus fire` loads connectors, never a client.
            from .transport import CartTransport

            self._client = httpx.AsyncClient(
                transport=self._transport if self._transport is not None else CartTransport(),
                auth=self._auth,
                timeout=self.timeout_for(self.settings),
                # Every request, a login's included, takes its place in the store's limit.
                event_hooks={"request": [self._paced]},
            )
        return self._client

    def pace_with(self, pacer: RequestPacer | None) -> None:
        """Keep every request of :attr:`client` to ``pacer`` (the stack controller's, for this store)."""
        self._pacer = pacer

    async def _paced(self, _request: httpx.Request) -> None:
        if self._pacer is not None:
            await self._pacer.acquire()

    @classmethod
    def timeout_for(cls, settings: Mapping[str, Any]) -> float:
        """Seconds one whole send may take for a store: its ``timeout`` setting, else the class's.

        The stack controller holds every send to this as one total deadline
        (connect, write and read together), and ``cartstatus check`` refuses a
        timeout that cannot end inside the controller's lease.
        """
        value = settings.get("timeout", cls.timeout)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else cls.timeout

    def secret(self, key: str) -> str:
        return str(reveal(self.settings[key]))

    @functools.cached_property
    def _mask(self) -> SecretMask:
        return SecretMask.of_settings(self.settings)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of the settings masked in every form a cart may echo it
        (:class:`~cartstatus.secrets.SecretMask`): a cart's error page may echo the posted form.

        Secrets obtained at run time (:meth:`held_secrets`: a login's tokens) are masked too.
        Mask first, then cut (:func:`reason_text`): a cut first could leave the start of a secret.
        """
        text = self._mask(text)
        held = self.held_secrets()
        if held != self._held_mask[0]:
            self._held_mask = (held, SecretMask(held))
        return self._held_mask[1](text)

    # -- authentication ----------------------------------------------------

    def http_auth(self) -> httpx.Auth | None:
        """How every request of :attr:`client` authenticates; None (the default) adds nothing.

        Return ``httpx.BasicAuth(user, password)``, a
        :class:`~cartstatus.auth.HeaderAuth` for an API key, or a
        :class:`~cartstatus.auth.TokenLogin` for a cart with a login. Called once
        per connector instance, that is once per store: a login's token is kept
        for the instance's life.
        """
        return None

    @functools.cached_property
    def _auth(self) -> httpx.Auth | None:
        return self.http_auth()

    def held_secrets(self) -> tuple[str, ...]:
        """Secrets obtained at run time (the tokens a :class:`~cartstatus.auth.TokenLogin` held)."""
        auth = self.__dict__.get("_auth")  # not made here: a connector that never sent holds none
        return auth.held_secrets if isinstance(auth, HoldsSecrets) else ()

    # -- the cart's limit ----------------------------------------------------

    def limit_hint(self, *, remaining: int | None = None, reset_in: float | None = None) -> None:
        """Tell the stack controller what the cart's reply said of its limit, for this store.

        ``remaining``: calls left until the reset (0 holds every send to this
        store until then, or for the declared ``per_seconds`` when the reset is
        unknown); ``reset_in``: seconds until the cart's window resets. Call it
        from :meth:`classify` or :meth:`send` with the cart's own headers
        (``X-Rate-Limit-Requests-Left``, ``X-Rate-Limit-Time-Reset-Ms``...). A 429
        with ``Retry-After`` read by :meth:`call` does it for you. The latest hint wins.
        """
        self._limit_hint = LimitHint(remaining, reset_in, time.monotonic())
        if self._pacer is not None:
            self._pacer.hint(self._limit_hint)

    @property
    def latest_limit_hint(self) -> LimitHint | None:
        """The last hint given (the controller's pacer has it at once), for tests."""
        return self._limit_hint

    # -- reading replies -----------------------------------------------------

    def classify(self, response: httpx.Response) -> Outcome | None:
        """The connector's own reading of a reply, before the status-code rules; None leaves it to them.

        Override it for a cart whose status codes do not say it all: a business
        refusal in an HTTP 500 (``Failed``), an error inside an HTTP 200 (GraphQL
        ``errors``, ``userErrors``, an ``ErrorResult``: see
        :func:`~cartstatus.graphql.outcome_for_graphql`), a "nothing to do" reply
        (``AlreadyDone``). It must not raise: read the body with :func:`json_body`.
        """
        return None

    def outcome_for_response(self, response: httpx.Response) -> Outcome | None:
        """None when the reply lets the send go on; else the outcome that ends it.

        :meth:`classify` first, then :func:`outcome_for_http_error`.
        """
        outcome = self.classify(response)
        if outcome is None:
            outcome = outcome_for_http_error(response)
            if response.status_code == 429 and isinstance(outcome, RetryLater) and outcome.delay is not None:
                self.limit_hint(remaining=0, reset_in=outcome.delay)  # the whole store is throttled
        return outcome

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request to the cart through :attr:`client`: the reply, when it lets the send go on.

        Otherwise raises :class:`StopSend` with the outcome: the reply's
        (:meth:`outcome_for_response`), or a network error's, a timeout's or a
        failed login's (:func:`outcome_for_transport_error`). ``kwargs`` are
        ``httpx.AsyncClient.request``'s. Use it inside :meth:`outcome_of`.
        """
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise StopSend(outcome_for_transport_error(exc)) from exc
        outcome = self.outcome_for_response(response)
        if outcome is not None:
            raise StopSend(outcome)
        return response

    async def outcome_of(self, steps: Awaitable[Outcome]) -> Outcome:
        """The outcome of a send's ``steps``: theirs, or that of the :class:`StopSend` that ended them.

        ``return self.check_status(update) or await self.outcome_of(self._steps(update))``
        in :meth:`send`, with ``_steps`` calling :meth:`call` for each request.
        A stray network error or timeout gives ``RetryLater``, and so does a reply that is not the JSON
        ``response.json()`` expected (a proxy's HTML page in front of the cart).
        """
        try:
            return await steps
        except StopSend as stop:
            return stop.outcome
        except httpx.HTTPError as exc:
            return outcome_for_transport_error(exc)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # a proxy's HTML page where JSON was due
            return RetryLater(f"the cart's reply could not be read as JSON: {type(exc).__name__}")

    @classmethod
    def vocabulary_for(cls, settings: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The statuses one store's cart takes: :attr:`status_vocabulary`, unless the store's settings
        add some (a cart plugin's own statuses). ``cartstatus check`` and :meth:`check_status` ask this."""
        return cls.status_vocabulary

    @functools.cached_property
    def vocabulary(self) -> tuple[str, ...] | None:
        """This store's statuses (:meth:`vocabulary_for` its settings)."""
        return self.vocabulary_for(reveal_secrets(self.settings))

    def check_status(self, update: StatusUpdate) -> Failed | None:
        """Refuse, before any request, a label outside the store's vocabulary."""
        vocab = self.vocabulary
        if vocab is not None and update.cart_status not in vocab:
            return Failed(
                f"status {update.cart_status!r} is not one of {self.name}'s statuses "
                f"({', '.join(vocab)}); map it with the store's status_map"
            )
        return None

    async def send(self, update: StatusUpdate) -> Outcome:
        raise NotImplementedError

    async def send_batch(self, updates: Sequence[StatusUpdate]) -> list[Outcome]:
        """Send several updates; by default one at a time, in order."""
        return [await self.send(u) for u in updates]

    async def test_connection(self) -> ConnectionResult:
        return ConnectionResult(False, f"{self.name} has no connection test")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def reason_text(text: str, limit: int = REASON_LIMIT) -> str:
    """A reason ready to store or show on one line: control characters and runs of
    white space made one space, stripped, cut to ``limit`` characters (ending "…").

    Call it on a masked text, never before masking (``reason_text(connector.scrub(reason))``).
    """
    flat = _CONTROL_OR_SPACE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for (seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def outcome_for_http_error(response: httpx.Response) -> Outcome | None:
    """The outcome for an HTTP status that is not success, or None when it is 2xx.

    429, 408 and 5xx are transient; other 4xx will never succeed as sent.
    """
    code = response.status_code
    if 200 <= code < 300:
        return None
    if code in (408, 425, 429) or code >= 500:
        return RetryLater(f"HTTP {code} from the cart", retry_after_seconds(response))
    # Whole (to a bound): the caller masks it, then cuts it (a cut first could leave part of a secret).
    return Failed(f"HTTP {code} from the cart: {response.text[:REASON_BOUND].strip()}")


def outcome_for_transport_error(exc: httpx.HTTPError) -> RetryLater | Failed:
    """Network errors and timeouts are transient; a failed login (:class:`~cartstatus.auth.LoginFailed`) has its own."""
    if isinstance(exc, StopSend) and isinstance(exc.outcome, RetryLater | Failed):
        return exc.outcome
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "network error"
    return RetryLater(f"{kind}: {type(exc).__name__}")


def json_body(response: httpx.Response) -> Any:
    """The reply's JSON, or None when it has none (an HTML error page, an empty body): for ``classify``."""
    try:
        return response.json()
    except ValueError:  # not JSON, or not text at all
        return None


@dataclass
class ConnectorInfo:
    """A registered connector, as listed by ``cartstatus plugins``."""

    name: str
    cls: type[Connector]
    plugin: str = "cartstatus"
    extra: dict[str, Any] = field(default_factory=dict)
