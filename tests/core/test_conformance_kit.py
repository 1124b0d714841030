"""The conformance kit catches connectors that break the contract (every check can fail)."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
from collections.abc import AsyncGenerator, Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from cartstatus import ConnectionResult, Connector, Delivered, Failed, Outcome, RetryLater, StatusUpdate, TokenLogin
from cartstatus.connectors.seti import SetiConnector
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.scaffold import generate
from cartstatus.testing import (
    LABEL_SAMPLE,
    ConnectorConformance,
    CutTransport,
    SocketTransport,
    connector_test_class,
    label_sample,
    make_update,
)

PASSWORD = "kit-Script-Pass-9"
SETTINGS = {"url": "http://cart.test/seom.php", "user": "om", "password": PASSWORD, "code": "main"}


def sim() -> SetiSimulator:
    return SetiSimulator(password=PASSWORD)


def kit(connector: type[SetiConnector], **kwargs: Any) -> ConnectorConformance:
    options: dict[str, Any] = {"settings": SETTINGS, "simulator": sim, "check_registration": False, **kwargs}
    return connector_test_class(connector, **options)()


def fails(check: Any, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check()


def test_the_kit_has_at_least_twelve_checks() -> None:
    checks = [name for name in dir(ConnectorConformance) if name.startswith("test_")]
    assert len(checks) >= 12
    cls = connector_test_class(SetiConnector, settings=SETTINGS, simulator=sim)
    assert cls.__name__ == "TestSetiConnectorConformance" and cls.__test__ is True
    assert ConnectorConformance.__test__ is False


class Leaky(SetiConnector):
    name = "leaky"

    async def send(self, update: StatusUpdate) -> Outcome:
        logging.getLogger("leaky").debug("posting with password %s", self.secret("password"))
        return await super().send(update)


def test_a_secret_in_the_log_fails() -> None:
    fails(kit(Leaky).test_secrets_never_in_logs_or_errors, "a secret was written to the log")


def altered(name: str, change: Callable[[SetiConnector, Outcome], Outcome]) -> type[SetiConnector]:
    """A seti connector whose every outcome passes through ``change``: a broken connector in a line."""

    async def send(self: SetiConnector, update: StatusUpdate) -> Outcome:
        return change(self, await SetiConnector.send(self, update))

    return type(name.title(), (SetiConnector,), {"name": name, "send": send})


#: Gives up for good on the first transient fault, and ignores Retry-After.
Impatient = altered("impatient", lambda c, o: Failed(o.reason) if isinstance(o, RetryLater) else o)
#: Retries at once, whatever delay the cart asked for.
Hasty = altered("hasty", lambda c, o: RetryLater(o.reason) if isinstance(o, RetryLater) else o)
#: Retries a refusal forever.
Stubborn = altered("stubborn", lambda c, o: RetryLater(o.reason) if isinstance(o, Failed) else o)
#: Writes the password into a failure's reason.
LeakyError = altered("leakyerror", lambda c, o: Failed(f"{o.reason} (logged in with {c.secret('password')})")
                     if isinstance(o, Failed) else o)


def test_a_secret_in_an_outcome_fails() -> None:
    fails(kit(LeakyError).test_secrets_never_in_logs_or_errors, "a secret appears in an outcome")


class LeakyRepr(SetiConnector):
    name = "leakyrepr"

    def __repr__(self) -> str:
        return f"LeakyRepr({self.secret('password')})"


def test_a_secret_in_repr_fails() -> None:
    fails(kit(LeakyRepr).test_secrets_never_in_repr, "a secret appears in the connector's repr")


def test_transient_faults_given_as_failed_fail() -> None:
    check = kit(Impatient)
    fails(check.test_http_429_is_retry_later_with_the_carts_delay, "a 429 gave Failed")
    fails(check.test_http_503_is_retry_later_with_the_carts_delay, "a 503 gave Failed")
    fails(check.test_timeout_is_retry_later, "never answered gave Failed")
    fails(check.test_unreachable_cart_is_retry_later, "connection refused gave Failed")


def test_ignoring_the_carts_delay_fails() -> None:
    fails(kit(Hasty).test_http_429_is_retry_later_with_the_carts_delay, "the cart asked to wait 2s")


class NoTimeout(SetiConnector):
    name = "notimeout"
    timeout = None  # type: ignore[assignment]


def test_sending_without_a_timeout_fails() -> None:
    fails(kit(NoTimeout).test_timeout_is_retry_later, "no timeout")


def test_retrying_a_permanent_refusal_fails() -> None:
    fails(kit(Stubborn).test_permanent_refusal_is_failed, "not Failed")


def test_the_permanent_fault_is_the_connectors_own() -> None:
    # For the script protocol a 404 page is transient, so declaring it permanent must fail the check.
    fails(kit(SetiConnector, permanent_fault="http_404").test_permanent_refusal_is_failed, "http_404")


class Vocal(SetiConnector):
    """Declares a vocabulary but sends any label."""

    name = "vocal"
    status_vocabulary = ("Shipped", "Cancelled")

    async def send(self, update: StatusUpdate) -> Outcome:
        return await SetiConnector.send(self, update) if update.cart_status else Failed("empty")

    def check_status(self, update: StatusUpdate) -> Failed | None:
        return None


def test_sending_a_label_outside_the_vocabulary_fails() -> None:
    fails(kit(Vocal).test_unknown_status_label_refused_before_any_request, "not Failed")


class Picky(SetiConnector):
    """Refuses labels although the script takes any."""

    name = "picky"

    async def send(self, update: StatusUpdate) -> Outcome:
        if update.cart_status.startswith("No-Such"):
            return Failed("unknown label")
        return await super().send(update)


def test_refusing_a_label_when_the_cart_takes_any_fails() -> None:
    fails(kit(Picky).test_unknown_status_label_refused_before_any_request, "refused")


class AppendingSimulator(SetiSimulator):
    """A script cart that adds the tracking numbers again on every update."""

    def order_state(self, ref: str) -> dict[str, Any] | None:
        state = super().order_state(ref)
        if state is not None:
            state["tracking"] = [t for r in self.received if r.ordernumber == ref for t in r.tracking]
        return state


def test_a_repeated_delivery_that_duplicates_fails() -> None:
    check = kit(SetiConnector, simulator=lambda: AppendingSimulator(password=PASSWORD))
    fails(check.test_repeated_delivery_does_no_harm, "a repeated delivery of 'Shipped' changed the cart")


class FakeBatch(SetiConnector):
    """Claims a batch call, then loses the last update of a batch."""

    name = "fakebatch"
    supports_batch = True

    async def send_batch(self, updates: Any) -> list[Outcome]:
        return [await self.send(u) for u in updates[:-1]] + [Delivered("pretend")]


def test_batch_that_disagrees_with_single_fails() -> None:
    fails(kit(FakeBatch).test_batch_and_single_sending_agree, "the cart ends differently")


class NoBatch(SetiConnector):
    name = "nobatch"
    supports_batch = True


def test_claiming_a_batch_call_without_one_fails() -> None:
    fails(kit(NoBatch).test_batch_and_single_sending_agree, "supports_batch is True")


class Deaf(SetiConnector):
    name = "deaf"


def test_a_connection_test_that_fails_against_a_healthy_cart_fails() -> None:
    fails(kit(Deaf, settings={**SETTINGS, "code": "other"}).test_connection_test_works,
          "failed against a healthy cart")


def test_bad_settings_the_schema_accepts_fail() -> None:
    check = kit(SetiConnector, bad_settings=[{**SETTINGS, "send_xml": False}])
    fails(check.test_settings_schema_rejects_bad_settings, r"bad_settings\[0\]")


def test_example_settings_the_schema_refuses_fail() -> None:
    fails(kit(SetiConnector, settings={**SETTINGS, "url": "ftp://x"}).test_settings_schema_is_valid_json_schema,
          "do not match settings_schema")


class Unmarked(SetiConnector):
    name = "unmarked"
    settings_schema = {**SetiConnector.settings_schema,
                       "properties": {**SetiConnector.settings_schema["properties"],
                                      "api_token": {"type": "string"}}}


def test_an_unmarked_secret_setting_fails() -> None:
    fails(kit(Unmarked).test_secret_settings_are_marked_secret, "api_token")


def test_short_secrets_are_refused_as_undetectable() -> None:
    check = kit(SetiConnector, settings={**SETTINGS, "password": "pw"}, simulator=lambda: SetiSimulator(password="pw"))
    fails(check.test_secrets_never_in_repr, "distinctive secret values")


class Mute(SetiSimulator):
    def fail_next(self, kind: str, count: int = 1) -> None:
        pass


def test_a_simulator_without_the_fault_protocol_fails() -> None:
    fails(kit(SetiConnector, simulator=lambda: Mute(password=PASSWORD)).test_simulator_speaks_the_fault_protocol,
          "must raise ValueError")


def test_an_unregistered_connector_fails_the_registration_check() -> None:
    fails(kit(Leaky, check_registration=True).test_registered_through_the_plugin_hooks, "is not registered")


class Rude(SetiConnector):
    name = "Not A Key"


def test_a_bad_name_fails() -> None:
    fails(kit(Rude).test_declares_the_contract, "must be lowercase letters")


def test_the_pytest_plugin_registers_the_marker_and_the_update_factory(
        pytestconfig: pytest.Config, cartstatus_update: Any) -> None:
    assert any(m.startswith("cartstatus_conformance:") for m in pytestconfig.getini("markers"))
    update = cartstatus_update("C-9", "shipped", note="hello")
    assert (update.cart_order_ref, update.cart_status, update.note) == ("C-9", "shipped", "hello")
    assert isinstance(update, StatusUpdate)


# -- every label, repeats, partial deliveries, logins ----------------------------------------------

@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """Two packages from ``cartstatus new-connector``, importable: an API-key cart and a cart with a login
    that refuses in HTTP 500."""
    root = tmp_path_factory.mktemp("scaffolded")
    generate("kitkey", root)
    generate("kitlogin", root, auth="login", refusal_status=500)
    paths = [str(root / "cartstatus-kitkey"), str(root / "cartstatus-kitlogin")]
    sys.path[:0] = paths
    try:
        yield {"key": importlib.import_module("cartstatus_kitkey"),
               "login": importlib.import_module("cartstatus_kitlogin")}
    finally:
        del sys.path[:2]
        for name in [n for n in sys.modules if n.startswith(("cartstatus_kitkey", "cartstatus_kitlogin"))]:
            del sys.modules[name]


def scaffold_kit(module: ModuleType, connector: type[Connector] | None = None, **kwargs: Any) -> ConnectorConformance:
    stem = module.__name__.removeprefix("cartstatus_").capitalize()
    settings = {"base_url": "http://cart.test", "api_key": "test-api-key-kitkey"} if stem == "Kitkey" else {
        "base_url": "http://cart.test", "username": "om", "password": "test-password-kitlogin"}
    options: dict[str, Any] = {"settings": settings, "simulator": getattr(module, f"{stem}Simulator"),
                               "check_registration": False, **kwargs}
    return connector_test_class(connector or getattr(module, f"{stem}Connector"), **options)()


def test_the_kit_sends_every_label_or_an_even_sample() -> None:
    assert label_sample(("a", "b", "c")) == ("a", "b", "c")
    many = tuple(f"s{i}" for i in range(30))
    sample = label_sample(many)
    assert len(sample) == LABEL_SAMPLE == 12 and len(set(sample)) == 12
    assert (sample[0], sample[-1]) == ("s0", "s29")


def test_a_wrong_mapping_of_any_label_fails(scaffolded: dict[str, ModuleType]) -> None:
    base = scaffolded["key"].KitkeyConnector
    assert scaffold_kit(scaffolded["key"]).labels() == base.status_vocabulary  # all four, not the last two

    class Mislabeled(base):  # type: ignore[misc, valid-type]
        name = "mislabeled"

        async def send(self, update: StatusUpdate) -> Outcome:
            wrong = {"processing": "pending"}.get(update.cart_status, update.cart_status)
            return await super().send(dataclasses.replace(update, cart_status=wrong))

    fails(scaffold_kit(scaffolded["key"], Mislabeled).test_delivers_every_status_label,
          "after label 'processing' the cart says the order is")


class OnceOnly(SetiConnector):
    """Refuses an update this instance has sent before: the controller's resend after a lost reply fails."""

    name = "onceonly"

    async def send(self, update: StatusUpdate) -> Outcome:
        sent = self.__dict__.setdefault("sent", set())
        if update.idempotency_key in sent:
            return Failed("sent already")
        sent.add(update.idempotency_key)
        return await super().send(update)


def test_a_repeat_through_the_same_connector_that_fails_fails() -> None:
    fails(kit(OnceOnly).test_repeated_delivery_does_no_harm, "delivering label 'Shipped' again gave Failed")


class TwoCalls(SetiConnector):
    """One label, two calls: the tracking numbers, then the status."""

    name = "twocalls"

    async def send(self, update: StatusUpdate) -> Outcome:
        if update.tracking:
            first = await super().send(dataclasses.replace(update, cart_status=update.previous_status or "New"))
            if not isinstance(first, Delivered):
                return first
        return await super().send(dataclasses.replace(update, tracking=()))


def test_a_label_of_several_calls_that_ends_as_one_delivery_passes() -> None:
    check = kit(TwoCalls)
    check.test_a_repeat_after_a_partial_delivery_does_only_the_missing_steps()
    sim = sim_with_order()
    transport = CutTransport(check.transport(sim), after=1)
    outcome = check.run(check.send_one(sim, make_update("K-1", "Shipped", tracking=check.tracking()), transport))
    assert isinstance(outcome, RetryLater) and transport.requests == 2  # the check really cuts a send in two


def sim_with_order() -> SetiSimulator:
    cart = sim()
    cart.add_order("K-1")
    return cart


def test_a_repeat_that_makes_the_first_call_again_fails() -> None:
    # A cart that adds the tracking numbers on every call: the repeat after a cut must not send them again.
    check = kit(TwoCalls, simulator=lambda: AppendingSimulator(password=PASSWORD))
    fails(check.test_a_repeat_after_a_partial_delivery_does_only_the_missing_steps,
          "cut off after 1 of its 2 requests, then sent again, left the cart with")


class Optimist(TwoCalls):
    """Takes the first call's success for the whole label's."""

    name = "optimist"

    async def send(self, update: StatusUpdate) -> Outcome:
        outcome = await super().send(update)
        return Delivered("close enough") if isinstance(outcome, RetryLater) and update.tracking else outcome


def test_a_send_that_reports_success_after_a_lost_call_fails() -> None:
    fails(kit(Optimist).test_a_repeat_after_a_partial_delivery_does_only_the_missing_steps, "it must be RetryLater")


def test_checks_that_do_not_apply_are_left_out(scaffolded: dict[str, ModuleType]) -> None:
    partial = "test_a_repeat_after_a_partial_delivery_does_only_the_missing_steps"
    login = "test_a_login_is_kept_for_the_store_and_renewed_once"
    seti = connector_test_class(SetiConnector, settings=SETTINGS, simulator=sim)
    assert callable(getattr(seti, partial)) and getattr(seti, login) is None  # the script has no login
    assert getattr(connector_test_class(SetiConnector, settings=SETTINGS, simulator=sim,
                                        partial_deliveries=False), partial) is None
    assert callable(getattr(type(scaffold_kit(scaffolded["login"])), login))
    assert getattr(type(scaffold_kit(scaffolded["key"])), login) is None


def test_a_connector_that_logs_in_passes_the_login_check(scaffolded: dict[str, ModuleType]) -> None:
    check = scaffold_kit(scaffolded["login"])
    check.test_a_login_is_kept_for_the_store_and_renewed_once()
    check.test_permanent_refusal_is_failed()  # a refusal in HTTP 500, read by classify


def test_logging_in_for_every_send_fails(scaffolded: dict[str, ModuleType]) -> None:
    base = scaffolded["login"].KitloginConnector

    class Forgetful(base):  # type: ignore[misc, valid-type]
        name = "forgetful"

        def http_auth(self) -> httpx.Auth:
            auth = super().http_auth()
            auth.clock = lambda: float("inf")  # every token always due: a login per request
            return auth

    fails(scaffold_kit(scaffolded["login"], Forgetful).test_a_login_is_kept_for_the_store_and_renewed_once,
          r"three sends of one store \(two at once, then one\) logged in 2 times")


class LogsInOnce(TokenLogin):
    """Logs in once and never again, whatever the cart says."""

    token = ""

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._lock:
            if not self.token:
                reply = yield self.login_request()
                await reply.aread()
                self.token = reply.json()["token"]
        self.attach(request, self.token)
        yield request


def test_a_login_never_renewed_fails(scaffolded: dict[str, ModuleType]) -> None:
    base = scaffolded["login"].KitloginConnector

    class Stale(base):  # type: ignore[misc, valid-type]
        name = "stale"

        def http_auth(self) -> httpx.Auth:
            return LogsInOnce(self._login, check=self.outcome_for_response)

    check = scaffold_kit(scaffolded["login"], Stale)
    fails(check.test_a_login_is_kept_for_the_store_and_renewed_once, "once the cart stopped taking the token")


def test_a_login_without_the_simulators_login_members_fails() -> None:
    fails(kit(SetiConnector, login=True).test_a_login_is_kept_for_the_store_and_renewed_once,
          "its simulator needs logins and expire_tokens")


def test_a_login_token_in_an_outcome_fails(scaffolded: dict[str, ModuleType]) -> None:
    base = scaffolded["login"].KitloginConnector

    class LeakyToken(base):  # type: ignore[misc, valid-type]
        name = "leakytoken"

        async def send(self, update: StatusUpdate) -> Outcome:
            outcome = await super().send(update)
            held = self.held_secrets()
            return Failed(f"{outcome!r} with token {held[-1]}") if held and isinstance(outcome, Failed) else outcome

    fails(scaffold_kit(scaffolded["login"], LeakyToken).test_secrets_never_in_logs_or_errors,
          "a secret appears in an outcome")


# -- the stricter kit: what the cart received, unknown orders, server errors, credentials, sockets ------------------

def sending(name: str, change: Callable[[StatusUpdate], StatusUpdate]) -> type[SetiConnector]:
    """A seti connector that sends ``change(update)`` instead of the update: a broken connector in a line."""

    async def send(self: SetiConnector, update: StatusUpdate) -> Outcome:
        return await SetiConnector.send(self, change(update))

    return type(name.title(), (SetiConnector,), {"name": name, "send": send})


def test_the_kits_updates_tell_the_two_labels_apart() -> None:
    update = make_update("K-1", "Shipped")
    assert (update.status, update.cart_status) == ("OM Shipped", "Shipped")
    assert len({t.carrier for t in kit(SetiConnector).tracking()}) == 2


@pytest.mark.parametrize(("change", "match"), [
    (lambda u: dataclasses.replace(u, tracking=()), r"the cart holds tracking numbers \[\]"),
    (lambda u: dataclasses.replace(u, tracking=u.tracking[:1]), r"holds tracking numbers \[\('ups'"),
    (lambda u: dataclasses.replace(u, tracking=u.tracking * 2), "exactly once"),
    (lambda u: dataclasses.replace(u, cart_status=u.status), "not update.status"),
], ids=["drops-tracking", "first-number-only", "every-number-twice", "sends-status"])
def test_a_connector_that_sends_the_wrong_data_fails(change: Callable[[StatusUpdate], StatusUpdate],
                                                    match: str) -> None:
    check = kit(sending("wrongdata", change))
    fails(check.test_delivers_every_status_label, match)
    fails(check.test_delivers_over_a_real_socket, "over a real socket")


def test_a_carrier_lost_on_the_way_fails() -> None:
    lost = sending("nocarrier", lambda u: dataclasses.replace(
        u, tracking=tuple(dataclasses.replace(t, carrier="") for t in u.tracking)))
    fails(kit(lost).test_delivers_every_status_label, "with its carrier, exactly once")


#: Claims a delivery whatever the cart said.
Blind = altered("blind", lambda c, o: Delivered("sent") if isinstance(o, Failed) else o)


@pytest.mark.parametrize(("connector", "match"), [(Stubborn, "gave RetryLater"), (Blind, "gave Delivered")])
def test_an_unknown_order_not_failed_fails(connector: type[SetiConnector], match: str) -> None:
    fails(kit(connector).test_an_update_for_an_order_the_cart_lacks_is_failed, match)


#: Takes a proxy's 502 for a permanent refusal.
ProxyShy = altered("proxyshy", lambda c, o: Failed(o.reason) if isinstance(o, RetryLater) and "502" in o.reason else o)


def test_server_errors_taken_as_permanent_fail() -> None:
    fails(kit(Impatient).test_http_500_and_502_are_retry_later, "a bare HTTP 500 page gave Failed")
    fails(kit(ProxyShy).test_http_500_and_502_are_retry_later, "a bare HTTP 502 page gave Failed")


class Trusting(SetiConnector):
    """Reports a working connection without asking the cart."""

    name = "trusting"

    async def test_connection(self) -> ConnectionResult:
        return ConnectionResult(True, "configured")


class Vague(SetiConnector):
    """Fails the connection test without the cart's reason."""

    name = "vague"

    async def test_connection(self) -> ConnectionResult:
        result = await super().test_connection()
        return result if result.ok else ConnectionResult(False, "connection test failed")


def test_a_refused_credential_reported_as_working_or_without_the_reason_fails() -> None:
    fails(kit(Trusting).test_connection_test_reports_a_refused_credential, "the connection test passed")
    fails(kit(Vague).test_connection_test_reports_a_refused_credential, "it should give the cart's reason")
    kit(SetiConnector).test_connection_test_reports_a_refused_credential()  # the cart's words: passes


def test_the_refused_credential_check_is_left_out_only_with_nothing_to_refuse() -> None:
    class Open(SetiConnector):
        name = "open"
        settings_schema = {**SetiConnector.settings_schema, "properties": {
            k: {kk: vv for kk, vv in p.items() if kk != "secret"}
            for k, p in SetiConnector.settings_schema["properties"].items()}}

    check = "test_connection_test_reports_a_refused_credential"
    assert getattr(connector_test_class(Open, settings=SETTINGS, simulator=sim), check) is None
    assert callable(getattr(connector_test_class(Open, settings=SETTINGS, simulator=sim,
                                                 refused_settings={**SETTINGS, "password": "nope-nope"}), check))


class HandMade(SetiConnector):
    """Sets its own Content-Length: the in-process transport reads the whole body anyway, a server does not."""

    name = "handmade"

    async def send(self, update: StatusUpdate) -> Outcome:
        self.client.headers["Content-Length"] = "7"
        return await super().send(update)


def test_a_connector_that_works_only_in_process_fails_over_a_real_socket() -> None:
    check = kit(HandMade)
    check.test_delivers_every_status_label()  # in memory it looks fine
    fails(check.test_delivers_over_a_real_socket, "Content-Length")


def test_the_serve_fixture_serves_a_simulator_on_127_0_0_1(cartstatus_serve: Callable[[Any], str]) -> None:
    cart = sim_with_order()
    url = cartstatus_serve(cart.app())
    assert url.startswith("http://127.0.0.1:")
    check = kit(SetiConnector)
    transport = SocketTransport(url)
    outcome = check.run(check.send_one(cart, make_update("K-1", "Shipped", tracking=check.tracking()), transport))
    assert isinstance(outcome, Delivered) and transport.requests >= 1
    assert cart.tracking_numbers("K-1") == [(t.carrier, t.number) for t in check.tracking()]


def raising(self: SetiConnector, update: StatusUpdate) -> Outcome:
    raise KeyError("tracking")


def test_a_send_that_raises_fails_with_the_kits_message() -> None:
    Raiser = type("Raiser", (SetiConnector,), {"name": "raiser", "send": raising})
    fails(kit(Raiser).test_delivers_every_status_label, r"send\(\) raised KeyError: 'tracking'. send\(\) must "
          "return an Outcome")


def refuse_orderstatus(request: httpx.Request) -> None:
    """A stand-in for an API description: the script takes no ``orderstatus`` of more than 8 characters."""
    form = dict(httpx.QueryParams(request.content.decode()))
    if len(form.get("orderstatus", "")) > 8:
        raise ValueError(f"orderstatus {form['orderstatus']!r} is longer than 8 characters")


def test_a_request_that_breaks_the_carts_description_fails_every_check_that_sent_it() -> None:
    checked = kit(SetiConnector, statuses=["Shipped", "Cancelled-by-shop"], check_request=refuse_orderstatus)
    checked.test_delivers_every_status_label()  # the cart took it: the description is what fails
    with pytest.raises(AssertionError, match=r"break the cart's API description:\n  POST /seom.php: orderstatus"):
        checked.assert_requests_follow_the_description()


def test_requests_that_follow_the_description_pass() -> None:
    checked = kit(SetiConnector, statuses=["Shipped"], check_request=refuse_orderstatus)
    checked.test_delivers_every_status_label()
    checked.test_delivers_over_a_real_socket()
    checked.assert_requests_follow_the_description()
    assert checked.__dict__["request_problems"] == []


class MapsOutside(SetiConnector):
    name = "maps-outside"
    status_vocabulary = ("Shipped", "Cancelled")
    default_status_map = {"Shipped": "Shipped", "Delivered": "delivered"}


class MapsUnknownLabel(SetiConnector):
    name = "maps-unknown"
    default_status_map = {"Shiped": "shipped"}


def test_a_default_status_map_outside_the_vocabulary_fails() -> None:
    fails(kit(MapsOutside).test_default_status_map_gives_the_carts_own_values, "outside status_vocabulary")


def test_a_default_status_map_of_labels_that_are_not_standard_fails() -> None:
    fails(kit(MapsUnknownLabel).test_default_status_map_gives_the_carts_own_values, r"\['Shiped'\].*not standard")


def test_order_ref_names_the_carts_own_references() -> None:
    seen: list[str] = []

    def numeric_only(request: httpx.Request) -> None:
        ref = dict(httpx.QueryParams(request.content.decode())).get("ordernumber")
        if ref is not None:
            seen.append(ref)
            if not ref.isdigit():
                raise ValueError(f"ordernumber {ref!r} is not a number")

    lettered = kit(SetiConnector, check_request=numeric_only)
    lettered.test_delivers_every_status_label()
    with pytest.raises(AssertionError, match="'K-100' is not a number"):
        lettered.assert_requests_follow_the_description()
    checked = kit(SetiConnector, check_request=numeric_only, order_ref=str)
    seen.clear()
    checked.test_delivers_every_status_label()
    checked.assert_requests_follow_the_description()
    assert seen and all(ref.isdigit() for ref in seen)
