"""A real Vendure for the end-to-end tests: installed once from npm, seeded, served on 127.0.0.1 for the session.

- Install: ``@vendure/core`` and ``better-sqlite3`` at the versions pinned below, into
  ``.cache/realcarts/vendure/`` at the repository root (ignored by git), once per set of versions: the marker
  file, written last, names them, so a changed pin or a half install is installed again. better-sqlite3
  compiles from source (``nodedir=/usr`` in an ``.npmrc`` beside ``package.json`` finds Node's headers);
  better-sqlite3 13 needs Node 22, hence 12.
- Seed: a fresh SQLite database each session, filled by Vendure's own ``populate()`` (initial data: a zone,
  a country, a tax rate, a shipping method, a payment method with the dummy handler that only authorizes;
  then a products CSV), on a bootstrap of its own that is closed before the server starts.
- Serve: ``node server.js`` on a free port of 127.0.0.1, in its own process group, killed (group and all)
  when the session ends. Telemetry off (``VENDURE_DISABLE_TELEMETRY``).

Install, seed and start times are printed to the terminal, even under ``pytest -q``. Without Node and npm
the tests skip with the reason, or fail under ``make test`` / CI (``tests/services.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..services import missing

ROOT = Path(__file__).resolve().parents[2]
CART_DIR = ROOT / ".cache" / "realcarts" / "vendure"
#: The pinned versions: a change installs again.
VERSIONS = {"@vendure/core": "3.7.3", "better-sqlite3": "12.11.1"}
MARKER = CART_DIR / ".installed.json"
INSTALL_TIMEOUT = 1500.0
START_TIMEOUT = 120.0
ADMIN_USER = "superadmin"

CONFIG_JS = """\
// Vendure for cartstatus's end-to-end tests: SQLite, 127.0.0.1 only, bearer tokens.
const { dummyPaymentHandler, DefaultLogger, LogLevel } = require('@vendure/core');

exports.config = {
    apiOptions: {
        hostname: '127.0.0.1',
        port: Number(process.env.VENDURE_PORT),
        adminApiPath: 'admin-api',
        shopApiPath: 'shop-api',
    },
    authOptions: {
        tokenMethod: ['bearer', 'cookie'],
        superadminCredentials: {
            identifier: process.env.VENDURE_ADMIN_USER,
            password: process.env.VENDURE_ADMIN_PASSWORD,
        },
        cookieOptions: { secret: process.env.VENDURE_COOKIE_SECRET },
        requireVerification: false,
    },
    dbConnectionOptions: {
        type: 'better-sqlite3',
        database: process.env.VENDURE_DB,
        synchronize: true,
    },
    paymentOptions: { paymentMethodHandlers: [dummyPaymentHandler] },
    logger: new DefaultLogger({ level: LogLevel.Warn }),
};
"""

SEED_JS = """\
// Seeds a fresh database with Vendure's own populate(): initial data, then the products CSV.
const path = require('path');
const { bootstrap, LanguageCode } = require('@vendure/core');
const { populate } = require('@vendure/core/cli');
const { config } = require('./config.js');

const initialData = {
    defaultLanguage: LanguageCode.en,
    defaultZone: 'Europe',
    countries: [{ name: 'United Kingdom', code: 'GB', zone: 'Europe' }],
    taxRates: [{ name: 'Standard Tax', percentage: 20 }],
    shippingMethods: [{ name: 'Standard Shipping', price: 500 }],
    paymentMethods: [{
        name: 'Standard Payment',
        handler: { code: 'dummy-payment-handler', arguments: [{ name: 'automaticSettle', value: 'false' }] },
    }],
    collections: [],
};
const seedConfig = { ...config, apiOptions: { ...config.apiOptions, port: Number(process.env.VENDURE_SEED_PORT) } };

populate(() => bootstrap(seedConfig), initialData, path.join(__dirname, 'products.csv'))
    .then(app => app.close())
    .then(() => process.exit(0))
    .catch(err => { console.error(err); process.exit(1); });
"""

SERVER_JS = """\
const { bootstrap } = require('@vendure/core');
const { config } = require('./config.js');
bootstrap(config).catch(err => { console.error(err); process.exit(1); });
"""

PRODUCTS_CSV = """\
name,slug,description,assets,facets,optionGroups,optionValues,sku,price,taxCategory,stockOnHand,trackInventory,variantAssets,variantFacets
Walnut Tray,walnut-tray,A small walnut tray.,,,,,TRAY-1,24.00,standard,100,false,,
Brass Candle Holder,brass-candle-holder,A brass candle holder.,,,,,CANDLE-1,18.50,standard,100,false,,
"""


def say(config: pytest.Config, text: str) -> None:
    """To the terminal even under ``pytest -q`` and with output captured (capture paused for the line)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(f"[realcart vendure] {text}", file=sys.__stderr__, flush=True)
        return
    with capture.global_and_fixture_disabled():
        reporter.write(f"\n[realcart vendure] {text}\n")  # a line of its own, between the progress dots


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def installed() -> dict[str, Any] | None:
    """The marker of a whole install at the pinned versions (``versions``, ``seconds`` it took), else None."""
    try:
        marker = json.loads(MARKER.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("versions") == VERSIONS else None


def install() -> float | None:
    """npm install at the pinned versions, unless already there; the seconds it took (None: it was there)."""
    if installed():
        return None
    if not (shutil.which("node") and shutil.which("npm")):
        missing("Node and npm (to install Vendure)")
    CART_DIR.mkdir(parents=True, exist_ok=True)
    MARKER.unlink(missing_ok=True)
    (CART_DIR / "package.json").write_text(json.dumps(
        {"name": "cartstatus-realcart-vendure", "private": True, "version": "0.0.0", "dependencies": VERSIONS},
        indent=2) + "\n")
    (CART_DIR / ".npmrc").write_text("nodedir=/usr\nfund=false\naudit=false\nupdate-notifier=false\n")
    started = time.monotonic()
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=CART_DIR, capture_output=True,
                          text=True, timeout=INSTALL_TIMEOUT, env={**os.environ, "VENDURE_DISABLE_TELEMETRY": "true"})
    if done.returncode != 0:
        pytest.fail(f"npm install of Vendure failed ({done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    took = time.monotonic() - started
    MARKER.write_text(json.dumps({"versions": VERSIONS, "seconds": round(took, 1)}))  # last: a half install redone
    return took


@dataclass
class VendureCart:
    """A running Vendure: its addresses and its superadmin."""

    base_url: str
    username: str
    password: str

    @property
    def admin_api(self) -> str:
        return f"{self.base_url}/admin-api"

    @property
    def shop_api(self) -> str:
        return f"{self.base_url}/shop-api"

    def admin(self, query: str, **variables: Any) -> dict[str, Any]:
        """One Admin API request as the superadmin (a fresh login each time: tests only)."""
        with httpx.Client(timeout=30) as client:
            login = client.post(self.admin_api, json={
                "query": "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { __typename } }",
                "variables": {"u": self.username, "p": self.password}})
            token = login.headers["vendure-auth-token"]
            reply = client.post(self.admin_api, json={"query": query, "variables": variables},
                                headers={"Authorization": f"Bearer {token}"})
        body: dict[str, Any] = reply.json()
        assert "errors" not in body, body
        return body["data"]

    def order(self, code: str) -> dict[str, Any]:
        """An order as the Admin API gives it back: state, payments, fulfillments."""
        data = self.admin("""query($code: String!) { orders(options: {filter: {code: {eq: $code}}}) { items {
            id code state nextStates payments { id state }
            lines { id quantity } fulfillments { id state method trackingCode lines { orderLineId quantity } } } } }""",
                          code=code)
        items = data["orders"]["items"]
        assert len(items) == 1, items
        return dict(items[0])

    def place_order(self, quantities: tuple[int, ...] = (1,)) -> str:
        """A guest order through the Shop API, paid with the dummy handler (Authorized): its code."""
        with httpx.Client(timeout=30) as client:
            headers: dict[str, str] = {}

            def shop(query: str, **variables: Any) -> dict[str, Any]:
                reply = client.post(self.shop_api, json={"query": query, "variables": variables}, headers=headers)
                if "vendure-auth-token" in reply.headers:
                    headers["Authorization"] = f"Bearer {reply.headers['vendure-auth-token']}"
                body = reply.json()
                assert "errors" not in body, body
                data: dict[str, Any] = body["data"]
                for value in data.values():
                    assert not (isinstance(value, dict) and "errorCode" in value), value
                return data

            variants = shop("{ products { items { variants { id } } } }")["products"]["items"]
            for i, quantity in enumerate(quantities):
                shop("""mutation($v: ID!, $q: Int!) { addItemToOrder(productVariantId: $v, quantity: $q) {
                          __typename ... on ErrorResult { errorCode message } } }""",
                     v=variants[i % len(variants)]["variants"][0]["id"], q=quantity)
            shop("""mutation($input: CreateCustomerInput!) { setCustomerForOrder(input: $input) {
                      __typename ... on ErrorResult { errorCode message } } }""",
                 input={"emailAddress": f"guest-{secrets.token_hex(4)}@example.com", "firstName": "Ada",
                        "lastName": "Guest"})
            shop("""mutation($input: CreateAddressInput!) { setOrderShippingAddress(input: $input) {
                      __typename ... on ErrorResult { errorCode message } } }""",
                 input={"fullName": "Ada Guest", "streetLine1": "1 High Street", "city": "London",
                        "postalCode": "N1 1AA", "countryCode": "GB"})
            method = shop("{ eligibleShippingMethods { id } }")["eligibleShippingMethods"][0]["id"]
            shop("""mutation($id: [ID!]!) { setOrderShippingMethod(shippingMethodId: $id) {
                      __typename ... on ErrorResult { errorCode message } } }""", id=[method])
            shop("""mutation { transitionOrderToState(state: "ArrangingPayment") {
                      __typename ... on ErrorResult { errorCode message } } }""")
            paid = shop("""mutation { addPaymentToOrder(input: {method: "standard-payment", metadata: {}}) {
                             __typename ... on Order { code state } ... on ErrorResult { errorCode message } } }""")
        order = paid["addPaymentToOrder"]
        assert order["state"] == "PaymentAuthorized", order
        return str(order["code"])


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"Vendure exited ({server.returncode}):\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            reply = httpx.post(f"{url}/shop-api", json={"query": "{ activeChannel { code } }"}, timeout=2)
            if reply.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"Vendure did not answer within {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}", pytrace=False)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """The server's whole process group, politely, then not."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def vendure_cart(pytestconfig: pytest.Config) -> Iterator[VendureCart]:
    """A seeded Vendure on 127.0.0.1 for the session (installed first when its versions are not there)."""
    if not (shutil.which("node") and shutil.which("npm")):
        missing("Node and npm (to install and run Vendure)")
    took = install()
    pinned = ", ".join(f"{k} {v}" for k, v in VERSIONS.items())
    if took is not None:
        say(pytestconfig, f"install ({pinned}): {took:.1f} s")
    else:
        say(pytestconfig, f"install: already in {CART_DIR.relative_to(ROOT)} ({pinned}; it took "
                          f"{(installed() or {}).get('seconds', '?')} s)")
    for name, text in (("config.js", CONFIG_JS), ("seed.js", SEED_JS), ("server.js", SERVER_JS),
                       ("products.csv", PRODUCTS_CSV)):
        (CART_DIR / name).write_text(text)
    with tempfile.TemporaryDirectory(prefix="vendure-") as work:
        port = free_port()
        env = {**os.environ, "VENDURE_DISABLE_TELEMETRY": "true", "VENDURE_PORT": str(port),
               "VENDURE_SEED_PORT": str(free_port()), "VENDURE_DB": str(Path(work) / "vendure.sqlite"),
               "VENDURE_ADMIN_USER": ADMIN_USER, "VENDURE_ADMIN_PASSWORD": f"Vendure-{secrets.token_hex(8)}",
               "VENDURE_COOKIE_SECRET": secrets.token_hex(16)}
        log = Path(work) / "vendure.log"
        started = time.monotonic()
        seeded = subprocess.run(["node", "seed.js"], cwd=CART_DIR, env=env, capture_output=True, text=True,
                                timeout=600, start_new_session=True)
        if seeded.returncode != 0:
            pytest.fail(f"seeding Vendure failed ({seeded.returncode}):\n{seeded.stderr[-3000:]}", pytrace=False)
        say(pytestconfig, f"seed (populate: initial data and {PRODUCTS_CSV.count(chr(10)) - 1} products): "
            f"{time.monotonic() - started:.1f} s")
        started = time.monotonic()
        with log.open("wb") as out:
            server = subprocess.Popen(["node", "server.js"], cwd=CART_DIR, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(url, server, log)
            say(pytestconfig, f"start: {time.monotonic() - started:.1f} s, at {url}")
            yield VendureCart(url, ADMIN_USER, env["VENDURE_ADMIN_PASSWORD"])
        finally:
            _stop(server)
