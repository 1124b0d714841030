"""The connector conformance kit: the standard checks every cart connector must pass.

After singer-sdk's ``get_tap_test_class``: one line in a plugin's test module
gives a pytest class with every check::

    from cartstatus.testing import connector_test_class

    TestMyCart = connector_test_class(MyCartConnector, settings=SETTINGS, simulator=MyCartSimulator)

Every check builds a fresh simulator (``simulator`` is called with no
arguments) and a connector on it that serves the whole check, as the stack
controller keeps one per store for its run (a login's token and other per-store
caches live on the instance); checks of a crash make a second one. The kit runs
the connector's coroutines with ``asyncio.run``, so it needs no async pytest plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import httpx
import jsonschema
import pytest

from ..auth import TokenLogin
from ..connector import ConnectionResult, Connector, RateLimit, StatusUpdate, Tracking
from ..events import DEFAULT_STATUS_EVENTS
from ..outcomes import SUCCESS, AlreadyDone, Delivered, Failed, Outcome, RetryLater
from ..secrets import secret_values, wrap_secrets
from .simulator import (
    REQUIRED_FAULTS,
    AnswerTransport,
    CartSimulator,
    CheckedTransport,
    CutTransport,
    SimulatorTransport,
    SocketTransport,
    UnreachableTransport,
    serve_app,
)

T = TypeVar("T")

#: Setting names that hold a secret unless the schema says so: they must be marked ``"secret": true``.
SECRET_LOOKING = re.compile(r"(password|passwd|secret|token|api_?key|private_?key|access_?key)", re.IGNORECASE)

#: A label no cart has, for the "unknown label" check.
UNKNOWN_LABEL = "No-Such-Status-7f3a"

OUTCOME_TYPES = (Delivered, AlreadyDone, RetryLater, Failed)

#: The most labels of a vocabulary the kit sends; a larger one is sampled evenly, first and last included.
LABEL_SAMPLE = 12


def label_sample(vocabulary: Sequence[str], size: int = LABEL_SAMPLE) -> tuple[str, ...]:
    """``vocabulary`` whole when it has at most ``size`` labels, else ``size`` of them spread evenly."""
    if len(vocabulary) <= size:
        return tuple(vocabulary)
    step = (len(vocabulary) - 1) / (size - 1)
    return tuple(vocabulary[round(i * step)] for i in range(size))


def logs_in(connector_class: type[Connector], settings: Mapping[str, Any]) -> bool:
    """Whether the connector's client authenticates with a :class:`~cartstatus.auth.TokenLogin`."""
    try:
        probe = connector_class(wrap_secrets(settings, connector_class.settings_schema),
                                transport=UnreachableTransport())
        return isinstance(probe.http_auth(), TokenLogin)
    except Exception:  # a connector that cannot even be made fails the other checks, with their reasons
        return False


def make_update(cart_order_ref: str, cart_status: str, *, tracking: Sequence[Tracking] = (),
                note: str | None = None, order_number: str | None = None, status: str | None = None) -> StatusUpdate:
    """A status update as the stack would hand it to a connector.

    ``status`` (the order manager's label) is by default not ``cart_status`` (the label mapped for the
    cart), so that a connector sending the wrong one is caught.
    """
    return StatusUpdate(
        idempotency_key=str(uuid.uuid4()),
        store_id="kit",
        order_number=order_number or f"OM-{cart_order_ref}",
        cart_order_ref=cart_order_ref,
        status=status or f"OM {cart_status}",
        cart_status=cart_status,
        previous_status="New",
        event="Order Shipped",
        occurred_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC).isoformat(),
        tracking=tuple(tracking),
        note=note,
        email="shopper@example.com",
        zip="12345",
    )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@contextlib.contextmanager
def capture_logs() -> Iterator[list[str]]:
    """Every log line written, at every level, by any logger, while inside."""
    handler = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _wrong_value(prop: Mapping[str, Any]) -> Any | None:
    """A value of the wrong JSON type for ``prop``, or None when any type is allowed."""
    kind = prop.get("type")
    if isinstance(kind, list) or kind is None:
        return None
    return {"string": 12345, "integer": "not a number", "number": "not a number", "boolean": "not a boolean",
            "object": "not an object", "array": "not a list", "null": "not null"}.get(kind)


class ConnectorConformance:
    """The checks; build a collectable subclass with :func:`connector_test_class`."""

    __test__ = False  # this base is not a test class; the subclasses are

    connector_class: ClassVar[type[Connector]]
    settings: ClassVar[dict[str, Any]]
    simulator: ClassVar[Callable[[], CartSimulator]]
    permanent_fault: ClassVar[str | None] = None
    bad_settings: ClassVar[tuple[dict[str, Any], ...]] = ()
    refused_settings: ClassVar[dict[str, Any] | None] = None
    statuses: ClassVar[tuple[str, ...] | None] = None
    check_registration: ClassVar[bool] = True
    timeout_cap: ClassVar[float] = 0.5
    #: Looks at every request the connector sends to its simulator and raises when it breaks the cart's
    #: API description (see ``check_request`` of :func:`connector_test_class`); None checks nothing.
    check_request: ClassVar[Callable[[httpx.Request], object] | None] = None
    #: The cart's reference for the kit's order number ``n`` (see ``order_ref`` of :func:`connector_test_class`).
    order_ref: ClassVar[Callable[[int], str]] = staticmethod(lambda n: f"K-{n:03d}")
    #: Secrets the connectors of this check obtained at run time (a login's tokens).
    held: list[str]

    # -- helpers -----------------------------------------------------------

    def new_simulator(self) -> CartSimulator:
        sim = type(self).simulator()
        assert isinstance(sim, CartSimulator), (
            f"{type(sim).__name__} does not speak the simulator protocol: it needs app(), fail_next(kind, count), "
            "add_order(ref, status), order_state(ref), tracking_numbers(ref), requests, retry_after and "
            "permanent_fault "
            "(see cartstatus.testing.simulator)")
        return sim

    def ref(self, n: int) -> str:
        """The cart's reference for the kit's order ``n``."""
        return type(self).order_ref(n)

    def connector_settings(self) -> dict[str, Any]:
        return wrap_secrets(self.settings, self.connector_class.settings_schema)

    @contextlib.asynccontextmanager
    async def connector(self, transport: httpx.AsyncBaseTransport) -> AsyncIterator[Connector]:
        connector = self.connector_class(self.connector_settings(), transport=transport)
        try:
            yield connector
        finally:
            self.__dict__.setdefault("held", []).extend(connector.held_secrets())
            await connector.aclose()

    def transport(self, sim: CartSimulator) -> httpx.AsyncBaseTransport:
        return self.checked(SimulatorTransport(sim.app(), timeout_cap=self.timeout_cap))

    def checked(self, transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        """``transport``, with every request looked at by ``check_request`` when there is one."""
        check = type(self).check_request
        if check is None:
            return transport
        return CheckedTransport(transport, check, self.__dict__.setdefault("request_problems", []))

    @pytest.fixture(autouse=True)
    def _requests_follow_the_carts_description(self) -> Iterator[None]:
        """After each check: every request sent passed ``check_request``."""
        yield
        self.assert_requests_follow_the_description()

    def assert_requests_follow_the_description(self) -> None:
        problems = self.__dict__.setdefault("request_problems", [])
        assert not problems, (
            f"{len(problems)} request(s) the connector sent break the cart's API description:\n  "
            + "\n  ".join(dict.fromkeys(problems)))

    def run(self, coro: Awaitable[T]) -> T:
        async def main() -> T:
            return await coro
        return asyncio.run(main())

    def labels(self) -> tuple[str, ...]:
        """Labels to send: ``statuses``, else every label of the vocabulary (:func:`label_sample` of a
        large one), else ordinary ones for a cart that takes any label."""
        if self.statuses:
            return tuple(self.statuses)
        vocab = self.connector_class.status_vocabulary
        if vocab:
            return label_sample(vocab)
        return ("Shipped", "Cancelled")

    def tracking(self) -> tuple[Tracking, ...]:
        """Two numbers of two carriers: a connector that drops any, or sends only the first, is caught."""
        return (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"),
                Tracking("FedEx", "794644790132", "2024-05-02"))

    async def send(self, connector: Connector, update: StatusUpdate) -> Outcome:
        """``connector.send(update)``, with a raise turned into the kit's message."""
        try:
            return await connector.send(update)
        except Exception as exc:
            raise AssertionError(
                f"send() raised {type(exc).__name__}: {exc}. send() must return an Outcome (Delivered, "
                "AlreadyDone, RetryLater or Failed) for anything the cart or the network does, never raise: "
                "wrap its requests in self.outcome_of(...) with self.call(...)") from exc

    async def send_one(self, sim: CartSimulator, update: StatusUpdate,
                       transport: httpx.AsyncBaseTransport | None = None) -> Outcome:
        async with self.connector(transport or self.transport(sim)) as connector:
            return await self.send(connector, update)

    def assert_tracking(self, sim: CartSimulator, ref: str, label: str, what: str = "") -> None:
        """The cart holds every tracking number sent, with its carrier, exactly once."""
        held = sorted((str(c).casefold(), str(n)) for c, n in sim.tracking_numbers(ref))
        sent = sorted((t.carrier.casefold(), t.number) for t in self.tracking())
        assert held == sent, (
            f"after label {label!r}{what} the cart holds tracking numbers {held!r}; it should hold each one sent, "
            f"with its carrier, exactly once: {sent!r}")

    def state(self, sim: CartSimulator, ref: str) -> Any:
        """A snapshot of the cart's order (a copy, so that later changes cannot alter it)."""
        return copy.deepcopy(sim.order_state(ref))

    def assert_outcome(self, outcome: Any, what: str) -> None:
        assert isinstance(outcome, OUTCOME_TYPES), (
            f"{what}: send() returned {outcome!r}; it must return exactly one of Delivered, AlreadyDone, "
            "RetryLater or Failed")

    async def send_with_fault(self, sim: CartSimulator, kind: str,
                              transport: httpx.AsyncBaseTransport | None = None) -> Outcome:
        """The cart answers with fault ``kind`` to a connector that has already sent once (logged in,
        filled its caches), as the controller's connectors mostly have."""
        label = self.labels()[0]
        sim.add_order(self.ref(99))
        sim.add_order(self.ref(100))
        async with self.connector(transport or self.transport(sim)) as connector:
            first = await self.send(connector, make_update(self.ref(99), label, tracking=self.tracking()))
            assert isinstance(first, SUCCESS), f"a good update, before the fault, gave {first!r}"
            if isinstance(transport, AnswerTransport) and kind.startswith("http_"):
                transport.answer_next(int(kind.removeprefix("http_")))
            else:
                sim.fail_next(kind)
            return await self.send(connector, make_update(self.ref(100), label, tracking=self.tracking()))

    # -- declarations and settings ------------------------------------------

    def test_declares_the_contract(self) -> None:
        cls = self.connector_class
        assert isinstance(cls.name, str) and re.match(r"^[a-z0-9][a-z0-9_-]*$", cls.name), (
            f"{cls.__name__}.name must be lowercase letters, digits, '_' or '-' (the matrix's connector), "
            f"got {cls.name!r}")
        assert cls.send is not Connector.send, f"{cls.__name__} must implement async send(update)"
        assert asyncio.iscoroutinefunction(cls.send), f"{cls.__name__}.send must be async"
        assert asyncio.iscoroutinefunction(cls.send_batch), f"{cls.__name__}.send_batch must be async"
        vocab = cls.status_vocabulary
        assert vocab is None or (isinstance(vocab, tuple) and vocab and all(isinstance(v, str) and v for v in vocab)), (
            f"{cls.__name__}.status_vocabulary must be None (any label) or a tuple of labels, got {vocab!r}")
        assert cls.rate_limit is None or isinstance(cls.rate_limit, RateLimit), (
            f"{cls.__name__}.rate_limit must be a RateLimit or None")
        assert isinstance(cls.supports_batch, bool), f"{cls.__name__}.supports_batch must be True or False"

    def test_default_status_map_gives_the_carts_own_values(self) -> None:
        cls = self.connector_class
        mapping = cls.default_status_map
        assert isinstance(mapping, Mapping) and all(isinstance(v, str) and v for v in mapping.values()), (
            f"{cls.__name__}.default_status_map must map labels to the cart's own values (strings), got {mapping!r}")
        standard = {label for _, label, _ in DEFAULT_STATUS_EVENTS}
        unknown = sorted(set(mapping) - standard)
        assert not unknown, (
            f"{cls.__name__}.default_status_map maps {unknown!r}, which are not standard labels; the standard "
            f"labels are {sorted(standard)!r} (a merchant's own labels go in the store's status_map)")
        if cls.status_vocabulary is not None:
            outside = {k: v for k, v in mapping.items() if v not in cls.status_vocabulary}
            assert not outside, (
                f"{cls.__name__}.default_status_map gives values outside status_vocabulary: {outside!r}")

    def test_settings_schema_is_valid_json_schema(self) -> None:
        schema = self.connector_class.settings_schema
        assert isinstance(schema, dict) and schema.get("type") == "object", (
            "settings_schema must be a JSON Schema for an object (\"type\": \"object\")")
        jsonschema.validators.validator_for(schema).check_schema(schema)
        errors = [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(self.settings)]
        assert not errors, f"the kit's example settings do not match settings_schema: {errors}"

    def test_settings_schema_rejects_bad_settings(self) -> None:
        schema = self.connector_class.settings_schema
        validator = jsonschema.validators.validator_for(schema)(schema)
        bad: list[tuple[str, Any]] = [("a list instead of a mapping", [self.settings])]
        for key in schema.get("required", []):
            bad.append((f"without required {key!r}", {k: v for k, v in self.settings.items() if k != key}))
        for key, prop in schema.get("properties", {}).items():
            wrong = _wrong_value(prop)
            if wrong is not None:
                bad.append((f"{key!r} of the wrong type", {**self.settings, key: wrong}))
        bad.extend((f"bad_settings[{i}]", s) for i, s in enumerate(self.bad_settings))
        assert len(bad) > 1, (
            "settings_schema declares nothing to check: give properties, required fields or bad_settings")
        accepted = [why for why, settings in bad if validator.is_valid(settings)]
        assert not accepted, f"settings_schema accepts bad settings: {', '.join(accepted)}"

    def test_secret_settings_are_marked_secret(self) -> None:
        props = self.connector_class.settings_schema.get("properties", {})
        unmarked = [k for k, p in props.items() if SECRET_LOOKING.search(k) and not p.get("secret")]
        assert not unmarked, f"settings that hold secrets must carry \"secret\": true in the schema: {unmarked}"
        for key, prop in props.items():
            if prop.get("secret"):
                assert prop.get("type") == "string", f"secret setting {key!r} must be a string"

    # -- secrets -----------------------------------------------------------

    def _secrets(self) -> list[str]:
        values = secret_values(self.connector_settings())
        short = [v for v in values if len(v) < 8]
        assert not short, "give the kit distinctive secret values (8 characters or more) so that leaks can be found"
        return values

    def test_secrets_never_in_repr(self) -> None:
        secrets = self._secrets()
        connector = self.connector_class(self.connector_settings(), transport=UnreachableTransport())
        shown = " ".join([repr(connector), str(connector), repr(connector.settings), f"{connector.settings}"])
        leaked = [s for s in secrets if s in shown]
        assert not leaked, "a secret appears in the connector's repr or str"

    def test_secrets_never_in_logs_or_errors(self) -> None:
        secrets = self._secrets()
        texts: list[str] = []

        async def exercise() -> None:
            faults = [None, *REQUIRED_FAULTS, self.permanent()]
            for kind in faults:
                sim = self.new_simulator()
                sim.add_order(self.ref(100))
                if kind:
                    sim.fail_next(kind)
                try:
                    outcome = await self.send_one(sim, make_update(self.ref(100), self.labels()[0]))
                    texts.append(repr(outcome))
                except Exception as exc:
                    texts.append(f"{type(exc).__name__}: {exc}")
            for kind in faults:  # and each fault after a first send (a login, a token held)
                if kind:
                    try:
                        texts.append(repr(await self.send_with_fault(self.new_simulator(), kind)))
                    except Exception as exc:
                        texts.append(f"{type(exc).__name__}: {exc}")
            for fault in (None, "http_503"):
                sim = self.new_simulator()
                if fault:
                    sim.fail_next(fault, 5)
                async with self.connector(self.transport(sim)) as connector:
                    try:
                        texts.append(repr(await connector.test_connection()))
                    except Exception as exc:
                        texts.append(f"{type(exc).__name__}: {exc}")
            try:
                unreachable = make_update(self.ref(100), self.labels()[0])
                texts.append(repr(await self.send_one(self.new_simulator(), unreachable, UnreachableTransport())))
            except Exception as exc:
                texts.append(f"{type(exc).__name__}: {exc}")

        with capture_logs() as lines:
            self.run(exercise())
        secrets = [*secrets, *self.__dict__.get("held", [])]  # and the tokens its logins obtained
        leaked_in_logs = [line for line in lines if any(s in line for s in secrets)]
        assert not leaked_in_logs, f"a secret was written to the log ({len(leaked_in_logs)} lines)"
        leaked = [t for t in texts if any(s in t for s in secrets)]
        assert not leaked, f"a secret appears in an outcome or error ({len(leaked)} of them)"

    # -- sending -----------------------------------------------------------

    def test_delivers_every_status_label(self) -> None:
        sim = self.new_simulator()
        labels = self.labels()

        async def deliver() -> list[tuple[str, Any, Outcome]]:
            async with self.connector(self.transport(sim)) as connector:  # one per store, for the whole run
                sent = []
                for i, label in enumerate(labels):
                    sim.add_order(self.ref(100 + i))
                    before = self.state(sim, self.ref(100 + i))
                    update = make_update(self.ref(100 + i), label, tracking=self.tracking(), note="kit")
                    sent.append((label, before, await self.send(connector, update)))
                return sent

        for i, (label, before, outcome) in enumerate(self.run(deliver())):
            had = isinstance(before, Mapping) and before.get("status") == label
            assert isinstance(outcome, Delivered) or (had and isinstance(outcome, AlreadyDone)), (
                f"label {label!r} to a known order gave {outcome!r}, not Delivered")
            state = self.state(sim, self.ref(100 + i))
            assert state is not None and state.get("status") == label, (
                f"after label {label!r} the cart says the order is {state!r}; it should have status {label!r} "
                "(send update.cart_status, the label mapped for the cart, not update.status)")
            self.assert_tracking(sim, self.ref(100 + i), label)

    def test_http_429_is_retry_later_with_the_carts_delay(self) -> None:
        sim = self.new_simulator()
        outcome = self.run(self.send_with_fault(sim, "http_429"))
        assert isinstance(outcome, RetryLater), f"a 429 gave {outcome!r}, not RetryLater"
        self.assert_delay_honoured(outcome, sim)

    def test_http_503_is_retry_later_with_the_carts_delay(self) -> None:
        sim = self.new_simulator()
        outcome = self.run(self.send_with_fault(sim, "http_503"))
        assert isinstance(outcome, RetryLater), f"a 503 gave {outcome!r}, not RetryLater"
        self.assert_delay_honoured(outcome, sim)

    def test_http_500_and_502_are_retry_later(self) -> None:
        """A bare 500 or 502 page (the web server's or a proxy's, not the cart's refusal) is a passing fault."""
        for status in (500, 502):
            sim = self.new_simulator()
            outcome = self.run(self.send_with_fault(sim, f"http_{status}", AnswerTransport(self.transport(sim))))
            assert isinstance(outcome, RetryLater), (
                f"a bare HTTP {status} page gave {outcome!r}, not RetryLater: a server error passes, retry it")

    def test_an_update_for_an_order_the_cart_lacks_is_failed(self) -> None:
        sim = self.new_simulator()
        label = self.labels()[0]
        sim.add_order(self.ref(99))

        async def deliver() -> tuple[Outcome, Outcome]:
            async with self.connector(self.transport(sim)) as connector:
                first = await self.send(connector, make_update(self.ref(99), label))
                return first, await self.send(connector, make_update(self.ref(404), label, tracking=self.tracking()))

        first, outcome = self.run(deliver())
        assert isinstance(first, SUCCESS), f"a good update, before the unknown order, gave {first!r}"
        assert isinstance(outcome, Failed), (
            f"an update for order K-404, which the cart does not have, gave {outcome!r}: it must be Failed, "
            "not retried, since retrying will never find the order")
        assert outcome.reason.strip(), "Failed needs a reason a person can act on"

    def assert_delay_honoured(self, outcome: RetryLater, sim: CartSimulator) -> None:
        # Retry-After may be an HTTP date, good to the second; a connector may add a margin.
        assert outcome.delay is not None and outcome.delay >= float(sim.retry_after) - 1.0, (
            f"the cart asked to wait {sim.retry_after}s; RetryLater.delay is {outcome.delay!r}")

    def test_timeout_is_retry_later(self) -> None:
        sim = self.new_simulator()
        transport = SimulatorTransport(sim.app(), timeout_cap=self.timeout_cap)
        outcome = self.run(self.send_with_fault(sim, "timeout", self.checked(transport)))
        assert transport.untimed == 0, (
            "the connector sent a request with no timeout: a cart that never answers would hold it forever")
        assert isinstance(outcome, RetryLater), f"a cart that never answered gave {outcome!r}, not RetryLater"

    def test_unreachable_cart_is_retry_later(self) -> None:
        transport = UnreachableTransport()
        outcome = self.run(self.send_one(self.new_simulator(), make_update(self.ref(100), self.labels()[0]), transport))
        assert transport.requests >= 1, "the connector did not try to reach the cart"
        assert isinstance(outcome, RetryLater), f"a connection refused gave {outcome!r}, not RetryLater"

    def permanent(self) -> str:
        return self.permanent_fault or self.new_simulator().permanent_fault

    def test_permanent_refusal_is_failed(self) -> None:
        kind = self.permanent()
        outcome = self.run(self.send_with_fault(self.new_simulator(), kind))
        assert isinstance(outcome, Failed), (
            f"the cart's permanent refusal ({kind}) gave {outcome!r}, not Failed: retrying will never succeed")
        assert outcome.reason.strip(), "Failed needs a reason a person can act on"

    def test_unknown_status_label_refused_before_any_request(self) -> None:
        sim = self.new_simulator()
        sim.add_order(self.ref(100))
        outcome = self.run(self.send_one(sim, make_update(self.ref(100), UNKNOWN_LABEL)))
        self.assert_outcome(outcome, "an unknown label")
        if self.connector_class.status_vocabulary is None:
            # A cart with no fixed vocabulary takes any label: the connector must pass it through.
            assert isinstance(outcome, Delivered), f"a cart that takes any label refused {UNKNOWN_LABEL!r}: {outcome!r}"
            state = self.state(sim, self.ref(100))
            assert state is not None and state.get("status") == UNKNOWN_LABEL, f"the cart holds {state!r}"
        else:
            assert isinstance(outcome, Failed), f"a label outside status_vocabulary gave {outcome!r}, not Failed"
            assert sim.requests == 0, f"the connector sent {sim.requests} requests for a label the cart cannot take"

    def test_repeated_delivery_does_no_harm(self) -> None:
        sim = self.new_simulator()
        labels = self.labels()

        async def deliver() -> list[tuple[str, list[Outcome], list[Any]]]:
            found = []
            async with self.connector(self.transport(sim)) as connector:
                for i, label in enumerate(labels):
                    ref = self.ref(100 + i)
                    sim.add_order(ref)
                    update = make_update(ref, label, tracking=self.tracking(), note="kit")
                    outcomes = [await self.send(connector, update)]
                    states = [self.state(sim, ref)]
                    # A reply lost on the way: the same connector sends the record again ...
                    outcomes.append(await self.send(connector, update))
                    states.append(self.state(sim, ref))
                    # ... and a controller that crashed after sending sends it from a new connector.
                    outcomes.append(await self.send_one(sim, update))
                    states.append(self.state(sim, ref))
                    self.assert_tracking(sim, ref, label, ", delivered three times,")
                    found.append((label, outcomes, states))
            return found

        for label, outcomes, states in self.run(deliver()):
            assert isinstance(outcomes[0], SUCCESS), f"the first delivery of {label!r} gave {outcomes[0]!r}"
            for again, state in zip(outcomes[1:], states[1:], strict=True):
                assert isinstance(again, SUCCESS), (
                    f"delivering label {label!r} again gave {again!r}; it must succeed (Delivered or AlreadyDone)")
                assert state == states[0], (
                    f"a repeated delivery of {label!r} changed the cart: {states[0]!r} became {state!r}")

    def test_a_repeat_after_a_partial_delivery_does_only_the_missing_steps(self) -> None:
        """A label that takes several calls, cut off after each of them, then sent again, ends as one delivery."""
        labels = self.labels()

        async def cut(label: str, after: int | None) -> tuple[int, Outcome, Outcome | None, Any]:
            sim = self.new_simulator()
            sim.add_order(self.ref(100))
            update = make_update(self.ref(100), label, tracking=self.tracking(), note="kit")
            transport = CutTransport(self.transport(sim), after=after)
            async with self.connector(transport) as connector:
                first = await self.send(connector, update)
            again = None if after is None else await self.send_one(sim, update)
            return transport.requests, first, again, self.state(sim, self.ref(100))

        for label in labels:
            calls, clean, _, whole = self.run(cut(label, None))
            assert isinstance(clean, SUCCESS), f"label {label!r} gave {clean!r}"
            for after in range(1, calls):
                _, first, again, state = self.run(cut(label, after))
                assert isinstance(first, RetryLater), (
                    f"label {label!r} takes {calls} requests; with the connection lost after {after} of them "
                    f"the send gave {first!r}: it must be RetryLater, the cart has only part of the change")
                assert isinstance(again, SUCCESS), (
                    f"label {label!r} sent again after a send cut off after {after} of its {calls} requests "
                    f"gave {again!r}")
                assert state == whole, (
                    f"label {label!r} cut off after {after} of its {calls} requests, then sent again, left the "
                    f"cart with {state!r}, not {whole!r} as one delivery does: read the cart's state first "
                    "and make only the missing changes")

    def test_a_login_is_kept_for_the_store_and_renewed_once(self) -> None:
        """For a connector that logs in (:class:`~cartstatus.auth.TokenLogin`): its simulator offers ``logins``
        (how many logins it took, faults aside) and ``expire_tokens()`` (every token it gave stops working)."""
        sim = self.new_simulator()
        missing = [m for m in ("logins", "expire_tokens") if not hasattr(sim, m)]
        assert not missing, (
            f"{self.connector_class.__name__} logs in (TokenLogin): its simulator needs {' and '.join(missing)} "
            "(logins: how many logins it took, faults aside; expire_tokens(): every token it gave stops working)")
        label = self.labels()[0]

        async def deliver() -> tuple[list[Outcome], int, Outcome, int]:
            async with self.connector(self.transport(sim)) as connector:
                for ref in (self.ref(101), self.ref(102), self.ref(103), self.ref(104)):
                    sim.add_order(ref)
                first = await asyncio.gather(*(self.send(connector, make_update(ref, label))
                                               for ref in (self.ref(101), self.ref(102))))
                first.append(await self.send(connector, make_update(self.ref(103), label)))
                logins = int(sim.logins)  # type: ignore[attr-defined]
                sim.expire_tokens()  # type: ignore[attr-defined]
                later = await self.send(connector, make_update(self.ref(104), label))
                return first, logins, later, int(sim.logins)  # type: ignore[attr-defined]

        first, logins, later, after = self.run(deliver())
        assert all(isinstance(o, SUCCESS) for o in first), f"three sends of one store gave {first!r}"
        assert logins == 1, (f"three sends of one store (two at once, then one) logged in {logins} times: one "
                             "login, its token kept for the connector's life (TokenLogin does so)")
        assert isinstance(later, SUCCESS), (
            f"once the cart stopped taking the token, a send gave {later!r}: log in again once and send again")
        assert after == 2, f"a refused token took {after - 1} more logins; it must take one"

    def test_batch_and_single_sending_agree(self) -> None:
        labels = self.labels()
        refs = [self.ref(201), self.ref(202), self.ref(203)]
        updates = [make_update(ref, labels[i % len(labels)], tracking=self.tracking() if i == 0 else ())
                   for i, ref in enumerate(refs)]
        if self.connector_class.status_vocabulary is not None:
            updates.append(make_update(self.ref(204), UNKNOWN_LABEL))
            refs.append(self.ref(204))

        async def single(sim: CartSimulator) -> list[Outcome]:
            async with self.connector(self.transport(sim)) as connector:
                return [await self.send(connector, u) for u in updates]

        async def batch(sim: CartSimulator) -> list[Outcome]:
            async with self.connector(self.transport(sim)) as connector:
                return list(await connector.send_batch(updates))

        sims = self.new_simulator(), self.new_simulator()
        for sim in sims:
            for ref in refs:
                sim.add_order(ref)
        one_by_one = self.run(single(sims[0]))
        together = self.run(batch(sims[1]))
        assert len(together) == len(updates), f"send_batch gave {len(together)} outcomes for {len(updates)} updates"
        for outcome in together:
            self.assert_outcome(outcome, "send_batch")
        assert [type(o) for o in together] == [type(o) for o in one_by_one], (
            f"batch and single sending disagree: {together!r} vs {one_by_one!r}")
        states = [[self.state(sim, ref) for ref in refs] for sim in sims]
        assert states[0] == states[1], f"the cart ends differently: single {states[0]!r}, batch {states[1]!r}"
        if self.connector_class.supports_batch:
            assert sims[1].requests < sims[0].requests, (
                "supports_batch is True but send_batch made as many requests as sending one by one")

    # -- the connection test -----------------------------------------------

    def test_connection_test_works(self) -> None:
        async def check() -> ConnectionResult:
            async with self.connector(self.transport(self.new_simulator())) as connector:
                return await connector.test_connection()

        result = self.run(check())
        assert isinstance(result, ConnectionResult), f"test_connection() returned {result!r}"
        assert result.ok, f"the connection test failed against a healthy cart: {result.detail}"

    def test_connection_test_reports_a_failing_cart(self) -> None:
        sim = self.new_simulator()
        sim.fail_next("http_503", 5)

        async def check() -> ConnectionResult:
            async with self.connector(self.transport(sim)) as connector:
                return await connector.test_connection()

        result = self.run(check())
        assert isinstance(result, ConnectionResult), f"test_connection() returned {result!r}"
        assert not result.ok and result.detail.strip(), (
            f"a cart answering 503 must fail the connection test with a reason, got {result!r}")

    def wrong_credentials(self) -> dict[str, Any]:
        """``refused_settings``, else the example settings with every secret field made wrong."""
        if self.refused_settings is not None:
            return dict(self.refused_settings)
        props = self.connector_class.settings_schema.get("properties", {})
        return {k: f"wrong-{v}" if props.get(k, {}).get("secret") else v for k, v in self.settings.items()}

    def test_connection_test_reports_a_refused_credential(self) -> None:
        """A cart refusing the store's credential fails the connection test, in the cart's words."""
        sim = self.new_simulator()
        replies: list[httpx.Response] = []

        class Recording(SimulatorTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                reply = await super().handle_async_request(request)
                await reply.aread()
                replies.append(reply)
                return reply

        settings = wrap_secrets(self.wrong_credentials(), self.connector_class.settings_schema)

        async def check() -> ConnectionResult:
            connector = self.connector_class(
                settings, transport=self.checked(Recording(sim.app(), timeout_cap=self.timeout_cap)))
            try:
                return await connector.test_connection()
            finally:
                await connector.aclose()

        result = self.run(check())
        assert isinstance(result, ConnectionResult), f"test_connection() returned {result!r}"
        assert not result.ok, f"with a wrong credential the connection test passed: {result!r}"
        assert replies, "with a wrong credential the connection test sent no request: it checks nothing"
        said = [str(replies[-1].status_code), *re.findall(r"[A-Za-z]{4,}", replies[-1].text)]
        assert any(word.casefold() in result.detail.casefold() for word in said), (
            f"with a wrong credential the connection test says {result.detail!r}; it should give the cart's "
            f"reason (its answer was HTTP {replies[-1].status_code}: {replies[-1].text[:200]!r})")

    def test_delivers_over_a_real_socket(self) -> None:
        """The connector against its simulator served on 127.0.0.1, not only through the in-process transport."""
        sim = self.new_simulator()
        labels = self.labels()

        async def deliver(url: str) -> tuple[list[Outcome], ConnectionResult, int]:
            transport = SocketTransport(url)
            async with self.connector(self.checked(transport)) as connector:
                result = await connector.test_connection()
                outcomes = []
                for i, label in enumerate(labels):
                    sim.add_order(self.ref(100 + i))
                    outcomes.append(await self.send(connector, make_update(self.ref(100 + i), label,
                                                                           tracking=self.tracking())))
            return outcomes, result, transport.requests

        with serve_app(sim.app()) as url:
            outcomes, result, requests = self.run(deliver(url))
        assert requests >= len(labels), "the connector did not send through the socket"
        assert result.ok, f"over a real socket the connection test failed: {result.detail}"
        for i, (label, outcome) in enumerate(zip(labels, outcomes, strict=True)):
            assert isinstance(outcome, Delivered), f"over a real socket label {label!r} gave {outcome!r}"
            state = self.state(sim, self.ref(100 + i))
            assert state is not None and state.get("status") == label, (
                f"over a real socket, after label {label!r} the cart says the order is {state!r}")
            self.assert_tracking(sim, self.ref(100 + i), label, " over a real socket")

    # -- the simulator and the plugin -----------------------------------------

    def test_simulator_speaks_the_fault_protocol(self) -> None:
        sim = self.new_simulator()
        for kind in (*REQUIRED_FAULTS, self.permanent()):
            sim.fail_next(kind, 1)
        try:
            sim.fail_next("no_such_fault")
        except ValueError:
            pass
        else:
            raise AssertionError("fail_next() must raise ValueError for a fault kind it does not know")
        assert self.state(sim, "never-added") is None, "order_state must be None for an order the cart lacks"

    def test_registered_through_the_plugin_hooks(self) -> None:
        if not self.check_registration:
            pytest.skip("check_registration=False: the connector is not installed as a plugin here")
        from ..plugins import get_connectors

        registered = get_connectors().get(self.connector_class.name)
        assert registered is self.connector_class, (
            f"connector {self.connector_class.name!r} is not registered through register_connectors "
            f"(found {registered!r}); is the plugin installed with its 'cartstatus' entry point? "
            "Try `cartstatus plugins`.")


def connector_test_class(
    connector_class: type[Connector],
    *,
    settings: Mapping[str, Any],
    simulator: Callable[[], CartSimulator],
    permanent_fault: str | None = None,
    bad_settings: Sequence[Mapping[str, Any]] = (),
    statuses: Sequence[str] | None = None,
    check_registration: bool = True,
    timeout_cap: float = 0.5,
    partial_deliveries: bool = True,
    login: bool | None = None,
    refused_settings: Mapping[str, Any] | None = None,
    check_request: Callable[[httpx.Request], object] | None = None,
    order_ref: Callable[[int], str] | None = None,
) -> type[ConnectorConformance]:
    """A pytest test class running every conformance check against ``connector_class``.

    ``settings``: store settings that work against the simulator (secrets as
    plain strings; the kit wraps fields marked secret, as the setup file does).
    ``simulator``: a zero-argument callable giving a fresh simulator.
    ``permanent_fault``: the fault kind that is the cart's permanent refusal,
    when not the simulator's own ``permanent_fault``. ``bad_settings``: more
    settings the schema must refuse. ``statuses``: labels to send (default:
    from the vocabulary: every label, or an even sample of :data:`LABEL_SAMPLE`).
    ``check_registration``: check that the installed plugin registers the
    connector. ``partial_deliveries``: check that a label taking several
    requests, cut off after each, ends as one delivery once sent again (False
    leaves that check out). ``login``: check that a login is kept per store and
    renewed once when refused; by default when ``http_auth()`` is a
    :class:`~cartstatus.auth.TokenLogin`. ``refused_settings``: settings whose
    credential the simulator refuses (default: ``settings`` with every secret
    field's value prefixed with ``wrong-``); the refused-credential check is
    left out when there are neither these nor secret fields. ``check_request``:
    called with every request the connector sends to the simulator (body read);
    it raises when the request breaks the cart's own API description (an
    OpenAPI validator, for example), and each check then fails listing them.
    ``order_ref``: the cart's reference for the kit's order number ``n`` (default
    ``K-100``; ``str`` for a cart whose order ids are numbers).
    """
    attrs: dict[str, Any] = {
        "__test__": True,
        "__doc__": f"cartstatus conformance checks for {connector_class.__name__}.",
        "connector_class": connector_class,
        "settings": dict(settings),
        "simulator": staticmethod(simulator),
        "permanent_fault": permanent_fault,
        "bad_settings": tuple(dict(s) for s in bad_settings),
        "statuses": tuple(statuses) if statuses else None,
        "check_registration": check_registration,
        "timeout_cap": timeout_cap,
        "refused_settings": None if refused_settings is None else dict(refused_settings),
        "check_request": None if check_request is None else staticmethod(check_request),
        **({"order_ref": staticmethod(order_ref)} if order_ref is not None else {}),
        "pytestmark": [pytest.mark.cartstatus_conformance],
    }
    # A check that does not apply is left out (None is not collected), rather than shown as skipped.
    if not partial_deliveries:
        attrs["test_a_repeat_after_a_partial_delivery_does_only_the_missing_steps"] = None
    secret_fields = [k for k, p in connector_class.settings_schema.get("properties", {}).items()
                     if p.get("secret") and k in settings]
    if refused_settings is None and not secret_fields:
        attrs["test_connection_test_reports_a_refused_credential"] = None
    if not (logs_in(connector_class, settings) if login is None else login):
        attrs["test_a_login_is_kept_for_the_store_and_renewed_once"] = None
    return type(f"Test{connector_class.__name__}Conformance", (ConnectorConformance,), attrs)
