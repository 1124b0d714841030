"""``cartstatus fire`` loads the connectors and the OSS wire format, never a server or a simulator."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from cartstatus import StatusEngine, load_config

from ..conftest import add_orders, base_setup

#: Packages only the OSS server, the simulators and the HTML pages need.
SERVER_PACKAGES = ("starlette", "uvicorn", "nh3", "prometheus_client", "jinja2")

#: Runs the CLI in a fresh interpreter, then writes its exit status and every module it loaded to argv[1].
RUN_CLI = textwrap.dedent("""
    import json, sys
    from cartstatus.cli import main
    out, sys.argv[1:] = sys.argv[1], sys.argv[2:]
    try:
        main(sys.argv[1:], prog_name="cartstatus")
    except SystemExit as exc:
        status = exc.code
    with open(out, "w") as f:
        json.dump({"status": status, "modules": sorted(sys.modules)}, f)
""")


def test_fire_loads_no_server_and_no_simulator(tmp_path: Path, write_setup: Callable[..., Path]) -> None:
    setup = base_setup()
    setup["stores"].append({"id": "outlet", "cart": "americart", "oss": {
        "url": "http://oss.test", "merchant": "outlet", "token": "oss-token", "subscription_expires": "2099-12-31"}})
    path = write_setup(setup)
    engine = StatusEngine(load_config(path))
    numbers = add_orders(engine, 1) + add_orders(engine, 1, store="outlet", prefix="O")
    engine.db.dispose()
    out = tmp_path / "modules.json"

    result = subprocess.run([sys.executable, "-c", RUN_CLI, str(out), "--config", str(path), "fire", "Order Shipped",
                             *numbers], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert "2 updates queued" in result.stdout  # one to the script cart, one to the OSS
    report = json.loads(out.read_text())
    assert report["status"] == 0
    modules = set(report["modules"])
    # Both connectors were loaded, so the check below looked at a fire that needed them.
    assert {"cartstatus.connectors.seti.connector", "cartstatus.connectors.oss.connector",
            "cartstatus.oss.wire"} <= modules
    assert sorted(m for m in modules if m.split(".")[0] in SERVER_PACKAGES) == []
    # The wire format and the digest it takes of a body are all the connector needs of the OSS package.
    assert sorted(m for m in modules if m.startswith(("cartstatus.oss.", "cartstatus.connectors.seti.simulator"))
                  and m not in ("cartstatus.oss.wire", "cartstatus.oss.digests")) == []
