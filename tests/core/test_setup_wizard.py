"""``cartstatus setup``: the wizard driven end to end (its prompts answered here), and the same from flags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cartstatus.cli import main
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.oss.app import create_app
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database
from cartstatus.serve import serve_in_thread
from click.testing import CliRunner, Result

from ..conftest import SHOP_PASSWORD


@pytest.fixture
def cart() -> SetiSimulator:
    return SetiSimulator(user="om", password=SHOP_PASSWORD, code="main")


@pytest.fixture
def cart_url(cart: SetiSimulator) -> Iterator[str]:
    with serve_in_thread(cart.app()) as url:
        yield url


@pytest.fixture
def oss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The real OSS server with merchant outlet's account: its URL and token (in $OSS_TOKEN)."""
    store = OssStore(open_oss_database(f"sqlite:///{tmp_path / 'oss.db'}"))
    _, token = store.create_account("outlet", dt.date(2099, 12, 31))
    monkeypatch.setenv("OSS_TOKEN", token)
    try:
        with serve_in_thread(create_app(store)) as url:
            yield url, token
    finally:
        store.engine.dispose()


@pytest.fixture
def oss_url(oss: tuple[str, str]) -> str:
    return oss[0]


@pytest.fixture
def oss_token(oss: tuple[str, str]) -> str:
    return oss[1]


#: Enter at each Notify Cart question of the default status events: the default offered kept.
KEEP_NOTIFY = [""] * len(DEFAULT_STATUS_EVENTS)


def notify_cart(setup: Path) -> dict[str, bool]:
    return {e["event"]: e.get("notify_cart", False) for e in yaml.safe_load(setup.read_text())["status_events"]}


def wizard(setup: Path, answers: list[str], *flags: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(setup), "setup", *flags], input="".join(a + "\n" for a in answers))


def check(setup: Path) -> Result:
    return CliRunner().invoke(main, ["--config", str(setup), "check"])


def test_the_wizard_writes_a_setup_file_check_accepts_then_edits_it(tmp_path: Path, cart_url: str,
                                                                    oss_url: str, oss_token: str) -> None:
    setup = tmp_path / "cartstatus.yaml"
    first = wizard(setup, [
        "y",                                   # use status updates
        "y", oss_url, "outlet", "env", "OSS_TOKEN", "2099-12-31",  # the OSS account
        "y",                                   # Load Default Status Events
        "y", *KEEP_NOTIFY[1:],                 # Notify Cart: Order Received too, the others as offered
        "y", "main", "stone edge script",      # a store and its cart, as the merchant calls it
        f"{cart_url}/seom.php", "om", "env", "SHOP_PASSWORD", "main",  # the seti connector's settings
    ])
    assert first.exit_code == 0, first.output
    output = " ".join(first.output.split())
    assert "Test Settings, the OSS: OK merchant outlet, subscription until 2099-12-31" in output
    assert "Notify Cart for Order Shipped (sets Shipped)? [Y/n]" in output
    assert "Test Settings, Generic script cart (Stone Edge script protocol) (seti): OK script version 1.000" in output
    assert check(setup).exit_code == 0
    data = yaml.safe_load(setup.read_text())
    account = {"url": oss_url, "merchant": "outlet", "token": {"$env": "OSS_TOKEN"},
               "subscription_expires": dt.date(2099, 12, 31)}  # written unquoted, as a person writes it
    # The OSS account is the store's (stores[].oss): kept with a store whose cart takes updates too.
    assert data["stores"] == [{"id": "main", "cart": "seti", "connector": {
        "url": f"{cart_url}/seom.php", "user": "om", "password": {"$env": "SHOP_PASSWORD"}, "code": "main"},
        "oss": account}]
    assert "The OSS account is saved with store main" in output
    assert notify_cart(setup) == {e: notify or e == "Order Received" for e, _, notify in DEFAULT_STATUS_EVENTS}
    assert SHOP_PASSWORD not in setup.read_text() and oss_token not in setup.read_text()

    # Run again: a comment of the merchant's stays, a store whose cart takes no updates goes to the OSS.
    setup.write_text("# our shop's setup, kept by hand too\n" + setup.read_text().replace(
        "stores:\n", "stores:\n  # the web shop\n"))
    second = wizard(setup, [
        "y", "y", oss_url, "outlet", "env", "OSS_TOKEN", "2099-12-31",
        "n",                                   # keep the status events
        "n", *KEEP_NOTIFY[1:],                 # ... but Order Received notifies no more
        "y", "outlet", "ameri cart",
    ])
    assert second.exit_code == 0, second.output
    text = setup.read_text()
    assert text.startswith("# our shop's setup, kept by hand too\n") and "  # the web shop\n" in text
    stores = yaml.safe_load(text)["stores"]
    assert [s["id"] for s in stores] == ["main", "outlet"]
    assert stores[1] == {"id": "outlet", "cart": "americart", "oss": account}
    assert notify_cart(setup) == {e: notify for e, _, notify in DEFAULT_STATUS_EVENTS}
    assert check(setup).exit_code == 0
    assert CliRunner().invoke(main, ["--config", str(setup), "test"]).exit_code == 0

    # Once more, every answer the one offered (Enter): the file's own values are the defaults; nothing changes.
    third = wizard(setup, ["", "", "", "", "", "", "", "", *KEEP_NOTIFY, "", "outlet", "americart"])
    assert third.exit_code == 0, third.output
    assert setup.read_text() == text


def test_a_wrong_answer_is_asked_again(tmp_path: Path, cart_url: str) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, ["y", "n", "y", *KEEP_NOTIFY, "y", "main",
                            "stoneedge scirpt cart",  # close enough for the matrix
                            "ftp://shop.example/seom.php", f"{cart_url}/seom.php",  # not http: asked again
                            "om", "env", "SHOP_PASSWORD", "main"])
    assert result.exit_code == 0, result.output
    assert "does not match what seti expects (pattern: ^https?://)" in result.output
    assert check(setup).exit_code == 0


def test_the_same_from_flags(tmp_path: Path, cart: SetiSimulator, cart_url: str, oss_url: str) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, [], "--no-input", "--use-status-updates", "--default-events", "--store", "main",
                    "--cart", "seti", "--setting", f"url={cart_url}/seom.php", "--setting", "user=om",
                    "--setting", "code=main", "--setting", "timeout=10", "--secret", "password=env:SHOP_PASSWORD")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(setup.read_text())["stores"][0]["connector"]["timeout"] == 10
    # Again for one setting: the store's others, its secret reference included, stay as they are.
    again = wizard(setup, [], "--no-input", "--store", "main", "--cart", "seti", "--setting", "timeout=20")
    assert again.exit_code == 0, again.output
    assert yaml.safe_load(setup.read_text())["stores"][0]["connector"] == {
        "url": f"{cart_url}/seom.php", "user": "om", "password": {"$env": "SHOP_PASSWORD"}, "code": "main",
        "timeout": 20}
    result = wizard(setup, [], "--no-input", "--oss-url", oss_url, "--oss-merchant", "outlet",
                    "--oss-token", "env:OSS_TOKEN", "--oss-expires", "2099-12-31", "--store", "outlet",
                    "--cart", "americart")
    assert result.exit_code == 0, result.output
    assert check(setup).exit_code == 0
    assert CliRunner().invoke(main, ["--config", str(setup), "test"]).exit_code == 0

    # It works as the demo does: an order shipped reaches the cart.
    cart.add_order("C1001", "New")
    (tmp_path / "orders.csv").write_text("order_number,store,status,cart_order_ref,email,zip\n"
                                         "1001,main,New,C1001,shopper@example.com,12345\n")
    for args in (["orders", "import", str(tmp_path / "orders.csv")], ["fire", "Order Shipped", "1001"],
                 ["controller", "--drain"]):
        ran = CliRunner().invoke(main, ["--config", str(setup), *args])
        assert ran.exit_code == 0, ran.output
    assert cart.orders["C1001"] == "Shipped"


def test_flags_that_are_wrong_say_so_and_write_nothing(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, [], "--no-input", "--store", "main", "--cart", "seti", "--setting", "url=http://x",
                    "--setting", "user=om", "--setting", "code=main", "--setting", "colour=red",
                    "--secret", "password=env:SHOP_PASSWORD")
    assert result.exit_code == 2
    assert "connector 'seti' has no setting colour" in result.output
    result = wizard(setup, [], "--no-input", "--store", "main", "--cart", "no such cart at all")
    assert result.exit_code == 2
    assert "is not a cart of the shopping-cart matrix" in result.output
    result = wizard(setup, [], "--no-input", "--store", "main shop")
    assert result.exit_code == 2
    assert "store: 'main shop' is not valid: expected letters, digits, _ . - (at most 64)" in result.output
    result = wizard(setup, [], "--no-input", "--store", "main", "--cart", "seti", "--setting", "password=x")
    assert result.exit_code == 2
    assert "password: a secret is given with --secret KEY=env:NAME" in result.output
    assert not setup.exists()


def test_answers_that_make_an_unusable_file_leave_it_as_it_was(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text("# ours\nsystem: {UseStatusUpdates: true}\n")
    # Each answer is right alone; together they are not: a 200 s send cannot fit in the 60 s lease.
    result = wizard(setup, [], "--no-input", "--store", "main", "--cart", "seti", "--setting", "url=http://x",
                    "--setting", "user=om", "--setting", "code=main", "--setting", "timeout=200",
                    "--secret", "password=env:SHOP_PASSWORD", "--no-test")
    assert result.exit_code == 2
    assert "cannot fit inside the lease" in result.output and "is left as it was" in result.output
    assert setup.read_text() == "# ours\nsystem: {UseStatusUpdates: true}\n"


def test_a_refused_test_still_writes_and_exits_1(tmp_path: Path, cart_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG", "not-it")
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, [], "--no-input", "--store", "main", "--cart", "seti", "--setting",
                    f"url={cart_url}/seom.php", "--setting", "user=om", "--setting", "code=main",
                    "--secret", "password=env:WRONG")
    assert result.exit_code == 1
    assert "refused Invalid user name or password" in result.output
    assert check(setup).exit_code == 0


def test_load_default_events_keeps_the_file_s_comments(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text("# kept by hand\nsystem:\n  UseStatusUpdates: false   # not yet\nstack:\n  url: sqlite:///s.db\n")
    result = CliRunner().invoke(main, ["--config", str(setup), "events", "load-defaults"])
    assert result.exit_code == 0, result.output
    text = setup.read_text()
    assert text.startswith("# kept by hand\nsystem:\n  UseStatusUpdates: false   # not yet\nstack:\n")
    assert check(setup).exit_code == 0


def test_a_secret_is_written_in_clear_only_when_asked(tmp_path: Path, oss_url: str, oss_token: str) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, [], "--no-input", "--oss-url", oss_url, "--oss-merchant", "outlet",
                    "--oss-token", f"inline:{oss_token}", "--oss-expires", "2099-12-31", "--store", "outlet",
                    "--cart", "americart")
    assert result.exit_code == 0, result.output
    assert "Test Settings, the OSS: OK" in result.output
    assert yaml.safe_load(setup.read_text())["stores"][0]["oss"]["token"] == oss_token
    assert oss_token not in result.output


def test_notify_cart_from_flags(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, [], "--no-input", "--default-events", "--notify-cart", "order  received=yes",
                    "--notify-cart", "Order Shipped=no")
    assert result.exit_code == 0, result.output
    expected = {e: notify for e, _, notify in DEFAULT_STATUS_EVENTS} | {"Order Received": True, "Order Shipped": False}
    assert notify_cart(setup) == expected
    # The file's own events, one changed: the rest stay as written.
    again = wizard(setup, [], "--no-input", "--notify-cart", "Order Shipped=yes")
    assert again.exit_code == 0, again.output
    assert notify_cart(setup) == expected | {"Order Shipped": True}
    assert check(setup).exit_code == 0


@pytest.mark.parametrize(("flag", "said"), [
    ("Order Shiped=yes", "--notify-cart: no status event 'Order Shiped' in the list; did you mean 'Order Shipped'?"),
    ("Order Shipped=perhaps", "--notify-cart Order Shipped=...: yes or no, not 'perhaps'"),
    ("Order Shipped", "--notify-cart takes KEY=VALUE, not 'Order Shipped'"),
])
def test_a_wrong_notify_cart_flag_says_so_and_writes_nothing(tmp_path: Path, flag: str, said: str) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = wizard(setup, [], "--no-input", "--default-events", "--notify-cart", flag)
    assert result.exit_code == 2
    assert said in result.output
    assert not setup.exists()


def test_the_oss_account_is_saved_with_a_store(tmp_path: Path, oss_url: str) -> None:
    setup = tmp_path / "cartstatus.yaml"
    account = ["--oss-url", oss_url, "--oss-merchant", "outlet", "--oss-token", "env:OSS_TOKEN",
               "--oss-expires", "2099-12-31"]
    # A native store, tested later (no cart here): the account is the store's, not lost.
    result = wizard(setup, [], "--no-input", *account, "--store", "main", "--cart", "seti", "--setting",
                    "url=http://127.0.0.1:9/seom.php", "--setting", "user=om", "--setting", "code=main",
                    "--secret", "password=env:SHOP_PASSWORD", "--no-test")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(setup.read_text())["stores"][0]["oss"]["merchant"] == "outlet"
    # The store's account stays when it is set up again from flags that say nothing of it.
    again = wizard(setup, [], "--no-input", "--store", "main", "--cart", "seti", "--setting", "timeout=20",
                   "--no-test")
    assert again.exit_code == 0, again.output
    assert yaml.safe_load(setup.read_text())["stores"][0]["oss"]["merchant"] == "outlet"

    # No store set up: saved with the file's stores whose cart takes no updates and have no account yet.
    setup.write_text("system: {UseStatusUpdates: true}\nstores:\n  - {id: main, cart: seti, connector: "
                     "{url: 'http://127.0.0.1:9/seom.php', user: om, password: {$env: SHOP_PASSWORD}, code: main}}\n"
                     "  - {id: outlet, cart: americart}\n")
    result = wizard(setup, [], "--no-input", *account)
    assert result.exit_code == 0, result.output
    assert "The OSS account is saved with store outlet." in result.output
    stores = yaml.safe_load(setup.read_text())["stores"]
    assert "oss" not in stores[0] and stores[1]["oss"]["url"] == oss_url
    assert check(setup).exit_code == 0

    # No store that could use it: said, not written anywhere.
    setup.write_text("system: {UseStatusUpdates: true}\nstores:\n  - {id: main, cart: seti, connector: "
                     "{url: 'http://127.0.0.1:9/seom.php', user: om, password: {$env: SHOP_PASSWORD}, code: main}}\n")
    before = setup.read_text()
    result = wizard(setup, [], "--no-input", *account)
    assert result.exit_code == 0, result.output
    assert "no store of the file uses it: it is not saved" in " ".join(result.output.split())
    assert yaml.safe_load(setup.read_text())["stores"] == yaml.safe_load(before)["stores"]
