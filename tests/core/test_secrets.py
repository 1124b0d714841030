"""The shop password never shows: not in any command's output, log, error message or repr."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cartstatus import ConfigError, Connector, StatusEngine, StatusUpdate, load_config
from cartstatus.cli import main
from cartstatus.controller import StackController
from cartstatus.outcomes import Delivered, Outcome
from cartstatus.secrets import (
    MASK,
    Secret,
    SecretError,
    mask_secrets,
    mask_url_passwords,
    reveal_secrets,
    secret_values,
    wrap_secrets,
)
from click.testing import CliRunner, Result

from ..conftest import SHOP_PASSWORD, add_orders
from .conftest import LiveCart, connector_registered, live_setup

INLINE_PASSWORD = "Inline-Pa55-in-the-file"
OSS_TOKEN = "oss-T0ken-value"


class Outputs:
    """Runs cartstatus commands and keeps everything they printed."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()
        self.seen: list[tuple[list[str], str]] = []

    def __call__(self, *args: str, code: int | None = 0) -> Result:
        result = self.runner.invoke(main, ["--config", str(self.config), *args])
        self.seen.append((list(args), result.output + (repr(result.exception) if result.exception else "")))
        if code is not None:
            assert result.exit_code == code, (args, result.output)
        return result


def assert_no_secret(text: str, where: Any) -> None:
    for secret in (SHOP_PASSWORD, INLINE_PASSWORD, OSS_TOKEN):
        assert secret not in text, f"secret printed by {where}"


def test_the_shop_password_never_appears(
    tmp_path: Path, live_cart: LiveCart, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OSS_TOKEN", OSS_TOKEN)
    data = live_setup(live_cart)
    data["controller"]["concurrency"] = 1  # requests in stack order: the refusal hits the first record
    data["stores"].append({"id": "second", "cart": "seti", "connector": {
        "url": live_cart.url, "user": "om", "password": INLINE_PASSWORD, "code": "second", "timeout": 3}})
    data["stores"].append({"id": "hosted", "cart": "papercart", "oss": {
        "url": "https://oss.test", "merchant": "shop-1", "token": {"$env": "OSS_TOKEN"},
        "subscription_expires": "2099-12-31"}})
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(yaml.safe_dump(data, sort_keys=False))
    orders = tmp_path / "orders.csv"
    orders.write_text("order_number,store,status,cart_order_ref,email,zip\n"
                      "1001,main,New,C1001,a@example.com,12345\n"
                      "1002,main,New,C1002,b@example.com,12345\n"
                      "2001,second,New,C2001,c@example.com,12345\n"
                      "3001,hosted,New,C3001,d@example.com,12345\n")
    run = Outputs(setup)

    run("check", code=2)  # 2: the hosted store's cart is not in the matrix (the message names no secret)
    run("events", "list")
    run("events", "list", "--json")
    run("orders", "import", str(orders))
    run("fire", "Order Shipped", "1001", "1002", "2001", "3001", "--tracking", "UPS:1Z999", "--json")
    run("fire", "Order Cancelled", "1001", "--note", "customer asked")
    run("orders", "show", "1001")
    run("orders", "show", "1001", "--json")
    run("stack", "status")
    run("stack", "status", "--json")
    run("stack", "list")
    run("stack", "list", "--json")
    # The cart refuses one update and knows store "second" under a different code: both are parked,
    # with the cart's messages and the controller's log lines.
    live_cart.simulator.fail_next("refuse")
    drained = run("controller", "--drain", code=1)  # 1: records were parked
    assert drained.exception is None or isinstance(drained.exception, SystemExit)
    assert "delivered 2, rescheduled 0, parked 2" in drained.output
    run("stack", "list", "--state", "parked")
    run("stack", "list", "--json")
    run("stack", "status")
    run("orders", "show", "2001", "--json")
    run("stack", "retry", "--all-failed")
    run("stack", "purge-failed", "--yes")
    run("fire", "No Such Event", "1001", code=2)
    run("orders", "show", "9999", code=1)

    for args, text in run.seen:
        assert_no_secret(text, args)
    assert "parked" in caplog.text  # the controller did log
    assert_no_secret(caplog.text, "the logs")
    assert any("Invalid user name or password" in text or "Unknown store code" in text for _, text in run.seen)

    config = load_config(setup)
    engine = StatusEngine(config)
    try:
        controller = StackController(config, engine.stack)
        connectors: list[Connector] = [controller._make_connector(r) for r in engine.stack.records()]
        for obj in [config, config.stores["main"], config.stores["second"], config.stores["hosted"],
                    config.stores["hosted"].oss, *connectors]:
            for text in (repr(obj), str(obj), f"{obj}"):
                assert_no_secret(text, type(obj).__name__)
    finally:
        engine.db.dispose()
    # The value is still there for the connector to use.
    password = config.stores["main"].connector["password"]
    assert isinstance(password, Secret) and password.reveal() == SHOP_PASSWORD
    assert config.stores["second"].connector["password"].reveal() == INLINE_PASSWORD


def test_a_secret_is_not_echoed_by_a_setup_file_error(tmp_path: Path) -> None:
    # The password is on a line with a YAML error, and again where it breaks the connector's schema.
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(f"stores:\n  - id: main\n    cart: seti\n    connector: {{password: {INLINE_PASSWORD}: x}}\n")
    result = CliRunner().invoke(main, ["--config", str(setup), "check"])
    assert result.exit_code == 2
    assert_no_secret(result.output, "a YAML error")

    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, {"password": ["list", INLINE_PASSWORD]}))
    assert_no_secret(str(caught.value), "a type error")


class Vault(Connector):
    """A connector whose secret field has a length limit (a value would be echoed by jsonschema)."""

    name = "vault"
    settings_schema = {"type": "object", "properties": {
        "api_key": {"type": "string", "maxLength": 8, "secret": True},
        "region": {"type": "string", "enum": ["eu", "us"]},
    }}

    async def send(self, update: StatusUpdate) -> Outcome:
        return Delivered()


@pytest.fixture
def vault() -> Iterator[None]:
    with connector_registered(Vault, "test-vault-connector"):
        yield


def test_a_secret_breaking_its_schema_is_not_echoed(tmp_path: Path, vault: None) -> None:
    data = {"stores": [{"id": "v", "cart": "vault", "connector": {"api_key": {"$env": "SHOP_PASSWORD"},
                                                                     "region": "mars"}}]}
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_config(setup)
    problems = {p.field: p.message for p in caught.value.problems}
    assert set(problems) == {"stores[0].connector.api_key", "stores[0].connector.region"}
    assert "maxLength" in problems["stores[0].connector.api_key"]
    assert "'mars' is not one of eu, us" in problems["stores[0].connector.region"]  # not a secret: shown
    assert_no_secret(str(caught.value), "a secret's schema error")


def _write(tmp_path: Path, connector: dict[str, Any]) -> Path:
    setup = tmp_path / "bad.yaml"
    setup.write_text(yaml.safe_dump({"stores": [{"id": "main", "cart": "seti", "connector": {
        "url": "http://cart.test/seom.php", "user": "om", "code": "main", **connector}}]}))
    return setup


async def test_a_cart_echoing_the_form_does_not_put_the_password_in_last_error(engine: StatusEngine) -> None:
    async def echo(request: httpx.Request) -> httpx.Response:
        # A misconfigured server whose refusal page dumps what it was posted.
        return httpx.Response(403, text=f"<pre>Fatal error; $_POST = {request.content.decode()}</pre>")

    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    controller = StackController(engine.config, engine.stack, transport=httpx.MockTransport(echo))
    stop = asyncio.get_running_loop().call_later(1.0, controller.stop)
    await controller.run()
    stop.cancel()
    (record,) = engine.stack.records()
    assert record.last_error is not None and "Fatal error" in record.last_error
    assert SHOP_PASSWORD not in record.last_error and "********" in record.last_error


def test_settings_are_wrapped_revealed_and_masked_one_way(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The setup file and the conformance kit wrap a connector's settings with the same function."""
    schema = {"properties": {"password": {"secret": True}, "auth": {"properties": {"key": {"secret": True}}}}}
    monkeypatch.setenv("CS_TEST_TOKEN", "env-T0ken")
    (tmp_path / "key.txt").write_text("file-K3y\n")
    raw = {"user": "om", "password": "inline-Pa55", "auth": {"key": {"$file": "key.txt"}, "more": [1]},
           "token": {"$env": "CS_TEST_TOKEN"}}
    settings = wrap_secrets(raw, schema, tmp_path)
    assert sorted(secret_values(settings)) == ["env-T0ken", "file-K3y", "inline-Pa55"]
    assert settings["auth"]["key"].source == f"file:{tmp_path / 'key.txt'}"
    assert reveal_secrets(settings) == {**raw, "auth": {"key": "file-K3y", "more": [1]}, "token": "env-T0ken"}
    assert mask_secrets(settings) == {**raw, "password": MASK, "auth": {"key": MASK, "more": [1]}, "token": MASK}


def test_an_unresolvable_secret_says_where_it_stands() -> None:
    with pytest.raises(SecretError, match="NO_SUCH_CS_VARIABLE is not set") as caught:
        wrap_secrets({"auth": {"key": {"$env": "NO_SUCH_CS_VARIABLE"}}}, {})
    assert caught.value.data_path == ["auth", "key"]


def test_a_url_password_is_masked_in_a_message() -> None:
    text = "'postgresql://om:Db-Pa55word@db/stack' and https://user:x@host/ and sqlite:///a:b.db"
    assert mask_url_passwords(text) == f"'postgresql://om:{MASK}@db/stack' and https://user:{MASK}@host/ and sqlite:///a:b.db"
