"""A real browser (headless Debian Chromium) on the shopper's pages served on 127.0.0.1.

It looks an order up with the form, opens the order's signed link (``status_url``) on a phone-sized
(360 px) and a desktop (1280 px) screen, checks the current step through the DOM, that nothing scrolls
sideways on the phone, that a tampered link reads as an unknown order, and runs axe-core on the pages (no
serious or critical violation). Screenshots are kept as test artefacts in ``test-artifacts/oss-browser/``
at the repository root (ignored by git).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.links import StatusLinks, new_secret
from cartstatus.oss.looks import save_look
from cartstatus.oss.service import OssStore
from cartstatus.serve import serve_in_thread

from ..services import chromium_paths
from .axe import axe_script, axe_violations, serious
from .conftest import bearer, update_body

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "oss-browser"
SECRET = new_secret()
PHONE, DESKTOP = (360, 780), (1280, 900)


@pytest.fixture
def browser() -> Iterator[Any]:
    browser_path, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="cartstatus-chromium-") as profile:
        options = Options()
        options.binary_location = browser_path
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        # An explicit driver path: Selenium Manager never downloads anything.
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


@dataclass
class Served:
    url: str
    status_url: str  # of order A-1001, as the OSS answered the update


@pytest.fixture
def served(oss_store: OssStore, settings: ServerSettings) -> Iterator[Served]:
    account, token = oss_store.create_account("acme", dt.date(2027, 1, 31), "Acme Outfitters")
    oss_store.set_page("acme", header_html="<p>Welcome to <b>Acme</b></p>", footer_html="<small>Acme Inc.</small>")
    save_look(oss_store.engine, account.id, accent="#0a7")  # no logo: the test never leaves 127.0.0.1
    app = create_app(oss_store, dataclasses.replace(settings, link_secret=SECRET))
    with serve_in_thread(app) as url:
        answers = [httpx.post(f"{url}/api/v1/updates", headers=bearer(token), json=update_body(
            order_number=number, status=status, zip="12345", occurred_at=at, note=note, tracking=tracking))
            for number, status, at, note, tracking in (
                ("A-1001", "Processing", "2026-05-30T08:00:00Z", None, []),
                ("A-1001", "Shipped", "2026-06-01T10:00:00Z", "Left with the neighbour at number 12",
                 [{"carrier": "UPS", "number": "1Z999AA10123456784", "ship_date": "2026-06-01"}]),
                ("C-3003", "Cancelled", "2026-06-01T10:00:00Z", None, []))]
        assert [a.status_code for a in answers] == [200] * 3
        yield Served(url, answers[1].json()["status_url"])
    app.state.oss.close()


def look_up(driver: Any, url: str, order: str, zip_code: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/status/acme")
    driver.find_element(By.ID, "order").send_keys(order)
    driver.find_element(By.ID, "zip").send_keys(zip_code)
    driver.find_element(By.ID, "look-up").click()
    WebDriverWait(driver, 20).until(
        ec.any_of(ec.presence_of_element_located((By.ID, "status")),
                  ec.presence_of_element_located((By.ID, "not-found"))))


def screen(driver: Any, size: tuple[int, int]) -> None:
    """The page's viewport at ``size`` CSS pixels (a phone's is mobile: its viewport meta applies)."""
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def keep_screenshot(driver: Any, name: str) -> Path:
    """The whole page (not only the viewport) as ``test-artifacts/oss-browser/NAME.png``."""
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_a_shopper_sees_the_status_and_tracking_link(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By

    look_up(browser, served.url, "A-1001", "12345")
    assert browser.find_element(By.ID, "status").text == "Shipped"
    link = browser.find_element(By.CSS_SELECTOR, "a.tracking")
    assert link.text == "1Z999AA10123456784"
    assert link.get_attribute("href") == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert "Welcome to Acme" in browser.find_element(By.CLASS_NAME, "merchant-header").text
    assert "Acme Inc." in browser.find_element(By.CLASS_NAME, "merchant-footer").text


def test_a_wrong_zip_reads_the_same_as_an_unknown_order(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By

    look_up(browser, served.url, "A-1001", "99999")
    wrong_zip = browser.find_element(By.ID, "not-found").text
    assert not browser.find_elements(By.ID, "status")
    assert "Shipped" not in browser.page_source
    look_up(browser, served.url, "B-2002", "12345")
    assert browser.find_element(By.ID, "not-found").text == wrong_zip
    assert "could not find" in wrong_zip


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["360px", "1280px"])
def test_the_signed_link_opens_the_order_with_its_step_marked(browser: Any, served: Served,
                                                              size: tuple[int, int]) -> None:
    from selenium.webdriver.common.by import By

    screen(browser, size)
    browser.get(served.status_url)
    assert browser.find_element(By.ID, "status").text == "Shipped"
    current = browser.find_elements(By.CSS_SELECTOR, '#steps [aria-current="step"]')
    assert [c.get_attribute("data-step") for c in current] == ["shipped"]
    assert current[0].text == "Shipped"
    steps = browser.find_elements(By.CSS_SELECTOR, "#steps li")
    assert [s.get_attribute("class") for s in steps] == ["step done", "step done", "step current", "step todo"]
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert width == size[0]
    # Nothing wider than the screen: no sideways scrolling.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= size[0]
    # The accent reached the page (through its own stylesheet: the CSP allows no inline style).
    accent = browser.execute_script(
        "return getComputedStyle(document.querySelector('#steps .current .marker')).backgroundColor")
    assert accent == "rgb(0, 170, 119)"
    assert keep_screenshot(browser, f"order-{size[0]}px").stat().st_size > 1000


def test_a_tampered_link_gets_the_same_not_found_as_an_unknown_order(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By

    def body(url: str) -> str:
        browser.get(url)
        assert browser.find_element(By.ID, "not-found").is_displayed()
        assert not browser.find_elements(By.ID, "status")
        return str(browser.execute_script("return document.documentElement.outerHTML"))

    unknown = body(served.url + StatusLinks(SECRET).path("acme", "Z-9999"))
    key = served.status_url.partition("key=")[2]
    assert body(served.status_url.replace(key, key[::-1])) == unknown
    assert body(served.status_url.replace("A-1001", "A-1002")) == unknown
    assert "could not find" in browser.find_element(By.ID, "not-found").text


def test_the_pages_have_no_serious_accessibility_violations(browser: Any, served: Served) -> None:
    script = axe_script()
    found: dict[str, list[str]] = {}
    for name, size, open_page in (
            ("order-phone", PHONE, lambda: browser.get(served.status_url)),
            ("order-desktop", DESKTOP, lambda: browser.get(served.status_url)),
            ("cancelled-phone", PHONE, lambda: browser.get(served.url + StatusLinks(SECRET).path("acme", "C-3003"))),
            ("form-phone", PHONE, lambda: browser.get(f"{served.url}/status/acme")),
            ("not-found-phone", PHONE, lambda: look_up(browser, served.url, "B-2002", "12345"))):
        screen(browser, size)
        open_page()
        violations = axe_violations(browser, script)
        found[name] = serious(violations)
        if name in ("form-phone", "cancelled-phone"):
            keep_screenshot(browser, name.replace("phone", "360px"))
    assert found == {name: [] for name in found}
    # The checker does find what it should: an image without a text alternative is a critical violation.
    browser.execute_script("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"x.png\">')")
    assert any(line.startswith("image-alt (critical)") for line in serious(axe_violations(browser, script)))
