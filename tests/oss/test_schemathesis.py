"""The live server against its own ``/openapi.json``, fuzzed by schemathesis: no server error, no schema error.

The server runs in uvicorn on 127.0.0.1 (a thread of this test process), on
SQLite, with one store account whose token every case carries. Each
operation gets a bounded number of examples so the run takes well under a
minute.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from cartstatus.oss.app import VERSION, ServerSettings, create_app
from cartstatus.oss.openapi import openapi_document
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database
from hypothesis import HealthCheck, settings


@pytest.fixture(scope="module")
def live_oss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    engine = open_oss_database(f"sqlite:///{tmp_path_factory.mktemp('oss') / 'oss.db'}")
    store = OssStore(engine, today=lambda: dt.date(2026, 6, 1))
    _, token = store.create_account("acme", dt.date(2027, 5, 31))
    # Limits out of the way: the fuzzer asks many times from one address (429 is described, but says little).
    app = create_app(store, ServerSettings(ingest_rate=1e6, ingest_burst=1e6, lookup_rate_per_minute=1e9,
                                           lookup_burst=1e6, lookup_failures=10**9,
                                           unauthenticated_rate_per_minute=1e9, unauthenticated_burst=1e6))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # waiting for start-up, not timing anything
        if server.started:
            break
        time.sleep(0.01)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "token": token}
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engine.dispose()


# The description the server serves (checked below); loaded here, not from the live server, because
# schemathesis's fixture loader (schemathesis.pytest.from_fixture) fails under pytest 9.
schema = schemathesis.openapi.from_dict(openapi_document(VERSION))


def test_the_server_serves_the_description_fuzzed(live_oss: dict[str, str]) -> None:
    assert httpx.get(f"{live_oss['url']}/openapi.json").json() == schema.raw_schema


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_live_server_keeps_to_its_api_description(case: Any, live_oss: dict[str, str]) -> None:
    case.call_and_validate(base_url=live_oss["url"], headers={"Authorization": f"Bearer {live_oss['token']}"})
