"""A real browser (headless Debian Chromium) looks an order up on the page served on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.service import IngestJob, OssStore, hash_token
from cartstatus.oss.wire import body_digest
from cartstatus.serve import serve_in_thread

from ..services import chromium_paths
from .conftest import update_body

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")


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
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def served(oss_store: OssStore, settings: ServerSettings) -> Iterator[str]:
    _, token = oss_store.create_account("acme", dt.date(2027, 1, 31), "Acme Outfitters")
    oss_store.set_page("acme", header_html="<p>Welcome to <b>Acme</b></p>", footer_html="<small>Acme Inc.</small>")
    body = update_body(order_number="A-1001", status="Shipped", zip="12345",
                       tracking=[{"carrier": "UPS", "number": "1Z999AA10123456784"}])
    assert oss_store.ingest([IngestJob(hash_token(token), body, body_digest(body))])[0].kind == "stored"
    app = create_app(oss_store, settings)
    with serve_in_thread(app) as url:
        yield url
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


def test_a_shopper_sees_the_status_and_tracking_link(browser: Any, served: str) -> None:
    from selenium.webdriver.common.by import By

    look_up(browser, served, "A-1001", "12345")
    assert browser.find_element(By.ID, "status").text == "Shipped"
    link = browser.find_element(By.CSS_SELECTOR, "a.tracking")
    assert link.text == "1Z999AA10123456784"
    assert link.get_attribute("href") == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert "Welcome to Acme" in browser.find_element(By.CLASS_NAME, "merchant-header").text
    assert "Acme Inc." in browser.find_element(By.CLASS_NAME, "merchant-footer").text


def test_a_wrong_zip_reads_the_same_as_an_unknown_order(browser: Any, served: str) -> None:
    from selenium.webdriver.common.by import By

    look_up(browser, served, "A-1001", "99999")
    wrong_zip = browser.find_element(By.ID, "not-found").text
    assert not browser.find_elements(By.ID, "status")
    assert "Shipped" not in browser.page_source
    look_up(browser, served, "B-2002", "12345")
    assert browser.find_element(By.ID, "not-found").text == wrong_zip
    assert "could not find" in wrong_zip
