"""The magento tests' shared settings and the check of every request against Magento's Swagger 2.0 description."""

from __future__ import annotations

import functools

import httpx

from .spec_swagger import SwaggerCheck
from .specs import spec_file

SPEC_NAME = "magento-admin-2.4.9.swagger.yml"
SETTINGS = {"url": "http://magento.test", "token": "magento-integration-token-0001", "store_code": "default"}


@functools.lru_cache(maxsize=1)
def magento_check() -> SwaggerCheck:
    """Made on first use (a test, not collection), so that a missing description skips the test that needs it."""
    return SwaggerCheck(spec_file(SPEC_NAME), base_path="/rest/default")


def SPEC_CHECK(request: httpx.Request) -> None:
    magento_check()(request)
