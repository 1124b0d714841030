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


def start_serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``cartstatus-oss serve ARGS --port P`` answering /healthz; a port taken meanwhile is tried again with another."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "cartstatus.oss.cli", "serve", *args, "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):  # waiting for start-up, not timing anything
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        _, err = proc.communicate(timeout=20) if proc.poll() is not None else (b"", b"")
        if b"address already in use" not in err.lower():  # another process took the port after free_port
            proc.kill()
            raise AssertionError(f"serve did not start: {err.decode()}")
    raise AssertionError("serve found no free port in 5 tries")


def test_serve_migrates_and_answers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    secret = new_secret()
    proc, url = start_serve(["--db", db, "--log-level", "info", "--public-url", "https://status.example.com/"],
                            env={**os.environ, "CARTSTATUS_OSS_LINK_SECRET": secret})
    try:
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


def test_a_server_process_sets_aside_what_loading_made_from_garbage_collection(tmp_path: Path) -> None:
    """app_from_env (each of `serve`'s processes) freezes what loading made: a full collection under load then
    scans only what serving made. In a process of its own, so this one's collector is left as it is."""
    db = f"sqlite:///{tmp_path / 'gc.db'}"
    script = (
        "import gc, json\n"
        "from cartstatus.oss.settings import ServerSettings\n"
        "from cartstatus.oss.storage import open_oss_database\n"
        f"open_oss_database({db!r}).dispose()\n"
        f"ServerSettings(db_url={db!r}).to_env()\n"
        "before = gc.get_freeze_count()\n"
        "from cartstatus.oss.app import app_from_env\n"
        "app_from_env()\n"
        "print(json.dumps([before, gc.get_freeze_count(), len(gc.get_objects())]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, frozen, still_watched = json.loads(done.stdout)
    assert before == 0 and frozen > 50_000  # the libraries' objects
    assert still_watched < frozen / 100
