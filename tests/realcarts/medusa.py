"""A real Medusa 2.x for the end-to-end tests: installed once, started per session, seeded through its own APIs.

The install lives in ``.cache/realcarts/medusa/`` at the repository root (ignored by git), keyed by the pinned
versions below: a marker file written last holds them, so a changed pin or a half-done install is installed again.
Each session makes its own database on the throwaway PostgreSQL that ``make test`` starts
(``CARTSTATUS_TEST_POSTGRES_URL``), runs ``medusa db:setup`` and ``medusa user`` there, starts the server on a
free port of 127.0.0.1 in its own process group (killed, group and all, when the session ends) and seeds a
sellable product through the Admin API; :meth:`MedusaCart.place_order` then buys it through the Store API, as a
shopper would, giving an order whose payment is authorized and whose items are not fulfilled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..services import missing, postgres_server_url

ROOT = Path(__file__).resolve().parents[2]
CART_DIR = ROOT / ".cache" / "realcarts" / "medusa"
MEDUSA_VERSION = "2.21.2"
#: Every version pinned: a change here installs the cart again.
PACKAGE = {
    "name": "cartstatus-realcart-medusa",
    "private": True,
    "version": "0.0.0",
    "dependencies": {
        "@medusajs/cli": MEDUSA_VERSION,
        "@medusajs/framework": MEDUSA_VERSION,
        "@medusajs/medusa": MEDUSA_VERSION,
    },
    "devDependencies": {
        "@swc/core": "1.16.22",
        "@types/node": "20.19.43",
        "ts-node": "10.9.2",
        "typescript": "5.9.3",
    },
}
MARKER = ".cartstatus-installed"

MEDUSA_CONFIG = """\
const { defineConfig } = require("@medusajs/framework/utils")

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: process.env.DATABASE_URL,
    http: {
      storeCors: "http://127.0.0.1",
      adminCors: "http://127.0.0.1",
      authCors: "http://127.0.0.1",
      jwtSecret: process.env.JWT_SECRET || "cartstatus-test-jwt",
      cookieSecret: process.env.COOKIE_SECRET || "cartstatus-test-cookie",
    },
  },
  admin: { disable: true },
})
"""
TSCONFIG = {
    "compilerOptions": {"target": "ES2021", "module": "Node16", "moduleResolution": "Node16", "esModuleInterop": True,
                        "skipLibCheck": True, "declaration": False, "outDir": "./.medusa/server", "rootDir": "./",
                        "allowJs": True},
    "include": ["medusa-config.js"],
    "exclude": ["node_modules", ".medusa"],
}

#: Medusa's command line, run with node directly (npx would look the package up first).
MEDUSA_CLI = ("node", "node_modules/@medusajs/cli/cli.js")
ADMIN_EMAIL = "admin@cartstatus.test"
ADMIN_PASSWORD = "Medusa-Admin-Pass-1"
INSTALL_SECONDS = 900
SETUP_SECONDS = 600
START_SECONDS = 180
ADDRESS = {"first_name": "Ada", "last_name": "Shopper", "address_1": "1 Test Street", "city": "Springfield",
           "country_code": "us", "postal_code": "12345", "phone": "555-0100"}


#: pytest's capture manager, once the session fixture has it: output capture is lifted around each line.
_capture: list[Any] = []


def say(text: str) -> None:
    """To the terminal even under ``pytest -q`` and output capture (fd 2 is captured too, so the capture
    manager lifts it for the line)."""
    line = f"[realcart medusa] {text}"
    if _capture:
        with _capture[0].global_and_fixture_disabled():
            print(line, file=sys.__stderr__, flush=True)
    else:
        print(line, file=sys.__stderr__, flush=True)


def _run(args: list[str], *, env: dict[str, str], timeout: float, what: str) -> float:
    started = time.monotonic()
    log = CART_DIR / f"{what.replace(' ', '-')}.log"
    with log.open("w") as out:
        try:
            done = subprocess.run(args, cwd=CART_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"Medusa's {what} did not finish ({exc}); see {log}", pytrace=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        pytest.fail(f"Medusa's {what} failed (exit {done.returncode}); {log} ends:\n{tail}", pytrace=False)
    return time.monotonic() - started


def _env(database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "MEDUSA_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "NODE_ENV": "development"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@contextlib.contextmanager
def install_lock() -> Iterator[None]:
    """One session at a time installs, and writes the .env that ``medusa db:setup`` reads."""
    CART_DIR.mkdir(parents=True, exist_ok=True)
    with (CART_DIR.parent / "medusa.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_installed() -> float | None:
    """Install the pinned packages unless the marker says they are there; the seconds it took, or None."""
    CART_DIR.mkdir(parents=True, exist_ok=True)
    key = json.dumps(PACKAGE, sort_keys=True)
    (CART_DIR / "medusa-config.js").write_text(MEDUSA_CONFIG)
    (CART_DIR / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2) + "\n")
    marker = CART_DIR / MARKER
    if marker.exists() and marker.read_text() == key and (CART_DIR / "node_modules" / "@medusajs" / "cli").is_dir():
        return None
    marker.unlink(missing_ok=True)
    (CART_DIR / "package.json").write_text(json.dumps(PACKAGE, indent=2) + "\n")
    say(f"installing @medusajs/medusa {MEDUSA_VERSION} into {CART_DIR} (a few minutes, once)")
    seconds = _run(["npm", "install", "--no-audit", "--no-fund"], env=_env(), timeout=INSTALL_SECONDS,
                   what="npm install")
    marker.write_text(key)  # last: a half install is done again
    return seconds


def shutil_which(name: str) -> str | None:
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(server: str, name: str) -> str:
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


@dataclass
class MedusaCart:
    """A running Medusa: its URL, an admin's credentials, and what the seed made."""

    url: str
    email: str = ADMIN_EMAIL
    password: str = ADMIN_PASSWORD
    seeded: dict[str, Any] = field(default_factory=dict)
    _token: str | None = None

    def admin(self) -> httpx.Client:
        """An Admin API client, logged in (a token per call of this method: these are the tests' own reads)."""
        reply = httpx.post(f"{self.url}/auth/user/emailpass", json={"email": self.email, "password": self.password},
                           timeout=30)
        reply.raise_for_status()
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Bearer {reply.json()['token']}"})

    def store(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"x-publishable-api-key": self.seeded["publishable_key"]})

    def order(self, order_id: str, fields: str = "id,status,payment_status,fulfillment_status,*fulfillments,"
                                                  "*fulfillments.labels,metadata") -> dict[str, Any]:
        with self.admin() as admin:
            return _ok(admin.get(f"/admin/orders/{order_id}", params={"fields": fields}))["order"]

    def place_order(self, quantity: int = 2, *, ebook: bool = False) -> str:
        """A guest's order for ``quantity`` of the seeded product (and an e-book, which needs no shipping),
        paid with the system provider: its payment authorized."""
        seed = self.seeded
        items = [{"variant_id": seed["variant_id"], "quantity": quantity}]
        if ebook:
            items.append({"variant_id": seed["ebook_variant_id"], "quantity": 1})
        with self.store() as store:
            cart = _ok(store.post("/store/carts", json={
                "region_id": seed["region_id"], "email": f"shopper-{uuid.uuid4().hex[:6]}@example.com",
                "sales_channel_id": seed["sales_channel_id"], "items": items,
                "shipping_address": ADDRESS, "billing_address": ADDRESS}))["cart"]
            _ok(store.post(f"/store/carts/{cart['id']}/shipping-methods",
                           json={"option_id": seed["shipping_option_id"]}))
            collection = _ok(store.post("/store/payment-collections", json={"cart_id": cart["id"]}))
            collection_id = collection["payment_collection"]["id"]
            _ok(store.post(f"/store/payment-collections/{collection_id}/payment-sessions",
                           json={"provider_id": "pp_system_default"}))
            done = _ok(store.post(f"/store/carts/{cart['id']}/complete"))
        if done.get("type") != "order":
            raise AssertionError(f"Medusa did not place the order: {done!r}")
        return str(done["order"]["id"])


def _ok(reply: httpx.Response) -> dict[str, Any]:
    if reply.status_code >= 400:
        raise AssertionError(f"Medusa answered {reply.request.method} {reply.request.url.path} with "
                             f"HTTP {reply.status_code}: {reply.text[:800]}")
    body = reply.json()
    assert isinstance(body, dict), body
    return body


def seed(cart: MedusaCart) -> None:
    """A region, a stock location with a fulfillment set, service zone and shipping option, a sales channel,
    a publishable key and a product: what a shopper needs to buy, made through the Admin API."""
    with cart.admin() as admin:
        region = _ok(admin.post("/admin/regions", json={
            "name": "Test US", "currency_code": "usd", "countries": ["us"],
            "payment_providers": ["pp_system_default"]}))["region"]
        channel = _ok(admin.post("/admin/sales-channels", json={"name": "Test web shop"}))["sales_channel"]
        location = _ok(admin.post("/admin/stock-locations", json={
            "name": "Test warehouse", "address": {"address_1": "2 Depot Road", "city": "Springfield",
                                                  "country_code": "us", "postal_code": "12345"}}))["stock_location"]
        _ok(admin.post(f"/admin/stock-locations/{location['id']}/fulfillment-providers",
                       json={"add": ["manual_manual"]}))
        _ok(admin.post(f"/admin/stock-locations/{location['id']}/sales-channels", json={"add": [channel["id"]]}))
        location = _ok(admin.post(f"/admin/stock-locations/{location['id']}/fulfillment-sets",
                                  params={"fields": "*fulfillment_sets"},
                                  json={"name": "Test shipping", "type": "shipping"}))["stock_location"]
        fulfillment_set = location["fulfillment_sets"][0]
        zone_set = _ok(admin.post(f"/admin/fulfillment-sets/{fulfillment_set['id']}/service-zones", json={
            "name": "US", "geo_zones": [{"type": "country", "country_code": "us"}]}))["fulfillment_set"]
        zone = zone_set["service_zones"][0]
        profiles = _ok(admin.get("/admin/shipping-profiles", params={"type": "default"}))["shipping_profiles"]
        profile = profiles[0] if profiles else _ok(admin.post("/admin/shipping-profiles", json={
            "name": "Default", "type": "default"}))["shipping_profile"]
        option = _ok(admin.post("/admin/shipping-options", json={
            "name": "Standard", "service_zone_id": zone["id"], "shipping_profile_id": profile["id"],
            "provider_id": "manual_manual", "price_type": "flat",
            "type": {"label": "Standard", "description": "3-5 days", "code": "standard"},
            "prices": [{"currency_code": "usd", "amount": 10}],
            "rules": [{"attribute": "enabled_in_store", "value": "true", "operator": "eq"},
                      {"attribute": "is_return", "value": "false", "operator": "eq"}]}))["shipping_option"]
        key = _ok(admin.post("/admin/api-keys", json={"title": "Test storefront", "type": "publishable"}))["api_key"]
        _ok(admin.post(f"/admin/api-keys/{key['id']}/sales-channels", json={"add": [channel["id"]]}))
        product = _ok(admin.post("/admin/products", json={
            "title": "Test mug", "status": "published", "shipping_profile_id": profile["id"],
            "options": [{"title": "Size", "values": ["One"]}],
            "sales_channels": [{"id": channel["id"]}],
            "variants": [{"title": "One", "options": {"Size": "One"}, "manage_inventory": False,
                          "prices": [{"currency_code": "usd", "amount": 20}]}]}))["product"]
        # No shipping profile: its order lines need no shipping (Medusa fulfils them apart from the others).
        ebook = _ok(admin.post("/admin/products", json={
            "title": "Test e-book", "status": "published", "options": [{"title": "Format", "values": ["PDF"]}],
            "sales_channels": [{"id": channel["id"]}],
            "variants": [{"title": "PDF", "options": {"Format": "PDF"}, "manage_inventory": False,
                          "prices": [{"currency_code": "usd", "amount": 5}]}]}))["product"]
    cart.seeded.update(region_id=region["id"], sales_channel_id=channel["id"], stock_location_id=location["id"],
                       shipping_option_id=option["id"], publishable_key=key["token"],
                       variant_id=product["variants"][0]["id"], ebook_variant_id=ebook["variants"][0]["id"])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """The server and every child it left: its whole process group."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass


def start(url: str, port: int, env: dict[str, str]) -> Server:
    log = CART_DIR / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*MEDUSA_CLI, "start", "-H", "127.0.0.1", "-p", str(port)],
            cwd=CART_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    pytest.fail(f"Medusa did not answer {url}/health in {START_SECONDS} s; {log} ends:\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def medusa_cart(request: pytest.FixtureRequest) -> Iterator[MedusaCart]:
    """A running, seeded Medusa for the session (its database dropped and its process group killed after)."""
    import sqlalchemy as sa
    from cartstatus.storage import make_engine

    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        _capture[:] = [capture]

    server_url = postgres_server_url()  # fails under make test when missing, else skips
    if shutil_which("node") is None or shutil_which("npm") is None:
        missing("Node.js and npm (node, npm) to install and run Medusa")
    name = f"medusa_{uuid.uuid4().hex[:10]}"
    db_url = database_url(server_url, name)
    env = _env(db_url)
    server: Server | None = None
    try:
        with install_lock():
            installed = ensure_installed()
            say("install: " + ("already installed" if installed is None else f"{installed:.0f} s"))
            # medusa db:setup reads DATABASE_URL from the project's .env, whatever the environment says.
            (CART_DIR / ".env").write_text(f"DATABASE_URL={db_url}\nMEDUSA_DISABLE_TELEMETRY=true\n")
            setup = _run([*MEDUSA_CLI, "db:setup", "--db", name, "--no-interactive"], env=env,
                         timeout=SETUP_SECONDS, what="db setup")
        setup += _run([*MEDUSA_CLI, "user", "-e", ADMIN_EMAIL, "-p", ADMIN_PASSWORD], env=env,
                      timeout=SETUP_SECONDS, what="admin user")
        say(f"database {name} set up (migrations) with an admin user: {setup:.0f} s")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        server = start(url, port, env)
        say(f"started on {url}: {time.monotonic() - started:.1f} s")
        cart = MedusaCart(url)
        seeded = time.monotonic()
        seed(cart)
        say(f"seeded (region, stock location, shipping option, sales channel, key, two products): "
            f"{time.monotonic() - seeded:.1f} s")
        yield cart
    finally:
        if server is not None:
            server.stop()
        admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except sa.exc.SQLAlchemyError:
            pass
        finally:
            admin.dispose()
