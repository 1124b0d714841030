"""A PostgreSQL database for a benchmark: on the server ``CARTSTATUS_TEST_POSTGRES_URL`` names (as
``scripts/test-services.sh`` exports it), else on a throwaway server of this run (``initdb``/``pg_ctl``
on 127.0.0.1, in a temporary folder, stopped and removed afterwards). Either way a fresh database, dropped
afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from cartstatus.storage import make_engine, postgres_url

ENV = "CARTSTATUS_TEST_POSTGRES_URL"


def _binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


@contextmanager
def _throwaway_server() -> Iterator[str]:
    bin_dir = _binaries()
    if bin_dir is None:
        raise SystemExit(f"bench: no PostgreSQL: set {ENV} or install initdb and pg_ctl")
    with tempfile.TemporaryDirectory(prefix="cartstatus-bench-pg-") as tmp:
        run_as: list[str] = []
        if os.getuid() == 0:  # initdb refuses root: run the server as an unprivileged user
            user = "postgres"
            try:
                shutil.chown(tmp, user)
            except LookupError:
                user = "nobody"
                shutil.chown(tmp, user)
            run_as = ["runuser", "-u", user, "--"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data = f"{tmp}/data"
        subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", data, "-U", "cartstatus", "--auth=trust", "-E",
                        "UTF8", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", data, "-l", f"{tmp}/server.log", "-w", "-t", "60",
                        "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c max_connections=100",
                        "start"], check=True, capture_output=True)
        try:
            yield f"postgresql://cartstatus@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
                           capture_output=True)


@contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a fresh, empty database (``postgresql://``), dropped when the block ends."""
    given = os.environ.get(ENV)
    with (_throwaway_server() if not given else _given(given)) as server:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = make_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            url = sa.engine.make_url(postgres_url(server)).set(database=name)
            yield url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://", 1)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url
