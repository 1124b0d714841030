"""Services some tests need (PostgreSQL, headless Chromium), and what to do when one is missing.

``scripts/test-services.sh`` (run by ``make test``) starts a throwaway
PostgreSQL, installs Chromium when absent and sets ``CARTSTATUS_SERVICES=1``.
Then, or under CI, a missing service FAILS the test that needs it; run by
hand without them, such a test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

POSTGRES_ENV = "CARTSTATUS_TEST_POSTGRES_URL"
SERVICES_ENV = "CARTSTATUS_SERVICES"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver",)


def services_expected() -> bool:
    return bool(os.environ.get(SERVICES_ENV) or os.environ.get("CI"))


def missing(what: str) -> NoReturn:
    """Fail when the services were promised (make test, CI), else skip with the reason."""
    if services_expected():
        pytest.fail(f"{what} is missing although make test / CI should provide it "
                    f"(see scripts/test-services.sh)", pytrace=False)
    pytest.skip(f"{what} is not available; run `make test` to start it")


def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        missing(f"PostgreSQL ({POSTGRES_ENV} is not set)")
    return url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    import sqlalchemy as sa
    from cartstatus.storage import make_engine

    server = postgres_server_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        missing(f"PostgreSQL at {POSTGRES_ENV} ({exc.orig})")
    url = sa.engine.make_url(server.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver) from Debian's packages."""
    browser = next((p for p in CHROMIUM_CANDIDATES if os.path.exists(p)), shutil.which("chromium"))
    driver = next((p for p in CHROMEDRIVER_CANDIDATES if os.path.exists(p)), shutil.which("chromedriver"))
    if not browser or not driver:
        missing("Chromium and chromedriver (Debian packages chromium, chromium-driver)")
    return browser, driver
