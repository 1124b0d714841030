"""``cartstatus-oss serve`` as operators run it: a real process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cartstatus.oss.cli import main
from cartstatus.oss.links import StatusLinks, new_secret
from click.testing import CliRunner

from .conftest import bearer, update_body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_migrates_and_answers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    port = free_port()
    secret = new_secret()
    proc = subprocess.Popen([sys.executable, "-m", "cartstatus.oss.cli", "serve", "--db", db, "--port", str(port),
                             "--log-level", "info", "--public-url", "https://status.example.com/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "CARTSTATUS_OSS_LINK_SECRET": secret})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):  # waiting for start-up, not timing anything
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.1)
        created = CliRunner().invoke(main, ["accounts", "create", "acme", "--expires", "2099-12-31", "--json",
                                            "--db", db])
        token = json.loads(created.output)["token"]
        reply = httpx.post(f"{url}/api/v1/updates", json=update_body(), headers=bearer(token))
        assert reply.status_code == 200
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert "server" not in reply.headers
        page = httpx.post(f"{url}/status/acme", data={"order": "1001", "zip": "12345"})
        assert 'id="status">Shipped<' in page.text
        # The link is made with the secret from the environment, at the public address.
        status_url = reply.json()["status_url"]
        assert status_url == StatusLinks(secret).url("https://status.example.com", "acme", "1001")
        opened = httpx.get(url + status_url.removeprefix("https://status.example.com"))
        assert opened.status_code == 200 and 'id="status">Shipped<' in opened.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    log = err.decode()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {(line["path"], line["status"]) for line in lines} >= {("/api/v1/updates", 200), ("/status/acme", 200)}
    assert token not in log and "12345" not in log
    assert secret not in log and status_url.partition("key=")[2] not in log  # the link's key is never logged
    assert "no --link-secret" not in log
