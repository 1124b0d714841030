"""OSS throughput on one uvicorn worker, each figure beside a bare Starlette "OK" endpoint in the same run.

    python bench/oss.py [--seconds 5] [--warmup 1] [--rounds 5] [--connections 32] [--db URL]

``--db postgresql://user@host:port/db`` measures the OSS on that PostgreSQL
server (how it is hosted): a throwaway database is created there for the run
and dropped after it. Without it the OSS runs on a SQLite file.

The servers run in subprocesses (one uvicorn worker each, the same uvicorn
settings: HTTP and loop implementation as uvicorn picks them, access_log=False,
log level warning); the load comes from another process: ``wrk`` when installed
(apt-get install wrk), else a raw asyncio HTTP/1.1 client. Measured:

- peak updates accepted per second (POST /api/v1/updates, each a new update,
  committed to SQLite with synchronous=FULL) and peak lookups per second
  (GET /api/v1/lookup), each beside the bare endpoint's peak, and the ratios.
  Rounds of bare / ingest / lookup are interleaved, their order turned each
  round; every run has the same client settings, warm-up and duration. The
  ratios are the median of the rounds' ratios, with their range; the server's
  CPU time per request is given too (less sensitive to the machine's load);
- p50/p99 latency of each at half its peak rate, from an open-loop client
  (requests leave on a fixed schedule; latency counts from the scheduled time).

Ends with ``name = value`` lines. The figures are only as quiet as the machine:
see loadavg_*.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOOKUP_ORDERS = 2000
MERCHANT = "bench"


# -- the servers (run as subprocesses of this same file) ---------------------

def serve_bare(fd: int) -> None:
    from cartstatus.serve import serve_on_fd
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")

    app = Starlette(routes=[Route("/", ok)])
    serve_on_fd(app, fd)


def serve_oss(db: str, log_path: str, fd: int) -> None:
    from cartstatus.oss.app import ServerSettings, create_app, set_aside_what_loading_made
    from cartstatus.oss.logs import configure_logging
    from cartstatus.oss.service import OssStore
    from cartstatus.oss.storage import open_oss_database
    from cartstatus.serve import serve_on_fd

    settings = ServerSettings(db_url=db, ingest_rate=1e9, ingest_burst=1e9, lookup_rate_per_minute=1e12,
                              lookup_burst=1e9)

    def factory() -> Any:
        # Set up as `cartstatus-oss serve` sets it up (app_from_env): the access log on, after uvicorn's own
        # logging, in the factory, written to a file instead of stderr; what loading made set aside from gc.
        configure_logging("info", open(log_path, "a", encoding="utf-8"))  # noqa: SIM115 (open while serving)
        app = create_app(OssStore(open_oss_database(db)), settings)
        set_aside_what_loading_made()  # as app_from_env does
        return app

    serve_on_fd(factory, fd, factory=True)


def server_stack() -> str:
    """The HTTP and loop implementations uvicorn picks by default ("auto"), the same for both servers."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop} loop"


def start(args: list[str], probe: str) -> tuple[subprocess.Popen[bytes], int]:
    """A server subprocess of this file on a socket bound here first; returns it and its port."""
    from cartstatus.serve import start_server_process

    proc, url = start_server_process([sys.executable, __file__, *args], probe, stdout=subprocess.DEVNULL)
    return proc, int(url.rsplit(":", 1)[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- requests ----------------------------------------------------------------

def update_body(n: int, prefix: str) -> bytes:
    return json.dumps({
        "idempotency_key": f"{prefix}-{n:012d}", "order_number": f"U{n % 20000}", "status": "Shipped",
        "previous_status": "Printed", "occurred_at": "2026-06-01T10:00:00Z",
        "tracking": [{"carrier": "UPS", "number": "1Z999AA10123456784", "ship_date": "2026-06-01"}],
        "email": f"shopper{n % 20000}@example.com", "zip": "12345",
    }, separators=(",", ":")).encode()


def request_bytes(kind: str, n: int, token: str, prefix: str) -> bytes:
    if kind == "bare":
        return b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    if kind == "lookup":
        i = n % LOOKUP_ORDERS
        return (f"GET /api/v1/lookup?merchant={MERCHANT}&order=L{i}&email=shopper{i}%40example.com HTTP/1.1\r\n"
                f"Host: bench\r\n\r\n").encode()
    body = update_body(n, prefix)
    return (f"POST /api/v1/updates HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, data: bytes) -> int:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        match = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if match:
            await self.reader.readexactly(int(match.group(1)))
        return status


async def _open(port: int, count: int) -> list[Conn]:
    return [Conn(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(count)]


async def closed_loop(port: int, kind: str, seconds: float, conns: int, token: str) -> tuple[float, int]:
    """Peak rate with ``conns`` clients each sending as fast as answered (fallback when wrk is absent)."""
    pool = await _open(port, conns)
    done = errors = 0
    counter = 0
    prefix = f"cl{os.getpid()}{int(time.time())}"
    end = time.perf_counter() + seconds

    async def client(c: Conn) -> None:
        nonlocal done, errors, counter
        while time.perf_counter() < end:
            counter += 1
            status = await c.roundtrip(request_bytes(kind, counter, token, prefix))
            done += 1
            errors += status != 200

    start_t = time.perf_counter()
    await asyncio.gather(*(client(c) for c in pool))
    elapsed = time.perf_counter() - start_t
    for c in pool:
        c.writer.close()
    return done / elapsed, errors


async def open_loop(port: int, kind: str, rate: float, seconds: float, token: str) -> dict[str, float]:
    """Requests on a fixed schedule at ``rate``/s; latency from the scheduled instant (no coordinated omission)."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for c in await _open(port, 64):
        pool.put_nowait(c)
    latencies: list[float] = []
    errors = 0
    prefix = f"ol{os.getpid()}{int(time.time())}"
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.2
    tasks = []

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.roundtrip(request_bytes(kind, i, token, prefix))
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)
        errors += status != 200

    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - t0)
    while not pool.empty():
        pool.get_nowait().writer.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"p50_ms": pct(0.50), "p99_ms": pct(0.99), "achieved": achieved, "errors": errors}


WRK_SCRIPT = textwrap.dedent("""
    local counter = 0
    local prefix = "wrk" .. tostring(os.time()) .. tostring(math.random(100000, 999999))
    local kind = os.getenv("BENCH_KIND")
    local token = os.getenv("BENCH_TOKEN")
    request = function()
      counter = counter + 1
      if kind == "lookup" then
        local i = counter % %(orders)d
        return wrk.format("GET", "/api/v1/lookup?merchant=%(merchant)s&order=L" .. i ..
                          "&email=shopper" .. i .. "%%40example.com")
      elseif kind == "ingest" then
        local n = counter %% 20000
        local body = '{"idempotency_key":"' .. prefix .. '-' .. counter .. '","order_number":"U' .. n ..
          '","status":"Shipped","previous_status":"Printed","occurred_at":"2026-06-01T10:00:00Z",' ..
          '"tracking":[{"carrier":"UPS","number":"1Z999AA10123456784","ship_date":"2026-06-01"}],' ..
          '"email":"shopper' .. n .. '@example.com","zip":"12345"}'
        return wrk.format("POST", "/api/v1/updates",
                          {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
      end
      return wrk.format("GET", "/")
    end
""").replace("%(orders)d", str(LOOKUP_ORDERS)).replace("%(merchant)s", MERCHANT).replace("%%", "%")


def run_wrk(wrk: str, port: int, kind: str, seconds: float, conns: int, token: str,
            script: Path) -> tuple[float, int, int]:
    """(requests/s, failed requests, requests answered): one wrk run, the same client settings for every kind."""
    env = dict(os.environ, BENCH_KIND=kind, BENCH_TOKEN=token)
    command = [wrk, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script),
               f"http://127.0.0.1:{port}/"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errs = re.search(r"Socket errors:.*?read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    return rps, errors, total


def find_wrk() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q", "wrk"],
                       capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        wrk = shutil.which("wrk")
    return wrk


def seed(db: str) -> str:
    """An account and the orders the lookups find; returns the store's token."""
    import datetime as dt

    import sqlalchemy as sa
    from cartstatus.oss.service import IngestJob, OssStore, hash_token
    from cartstatus.oss.storage import open_oss_database
    from cartstatus.oss.wire import body_digest

    engine = open_oss_database(db)
    store = OssStore(engine)
    _, token = store.create_account(MERCHANT, dt.date.today() + dt.timedelta(days=365))
    jobs = []
    for i in range(LOOKUP_ORDERS):
        body = {"idempotency_key": f"seed-{i:08d}", "order_number": f"L{i}", "status": "Shipped",
                "previous_status": "Printed", "occurred_at": "2026-06-01T10:00:00Z",
                "tracking": [{"carrier": "UPS", "number": f"1Z999AA1{i:010d}"}],
                "email": f"shopper{i}@example.com", "zip": "12345"}
        jobs.append(IngestJob(hash_token(token), body, body_digest(body)))
    for i in range(0, len(jobs), 500):
        store.ingest(jobs[i:i + 500])
    with engine.begin() as conn:
        # Statistics, as a running OSS has them (PostgreSQL's autovacuum): without them PostgreSQL plans the
        # ingest's reads as if the tables were empty, and keeps those plans for its prepared statements.
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return token


@contextlib.contextmanager
def bench_database(url: str | None, work: Path) -> Iterator[str]:
    """The OSS database of the run: a SQLite file under ``work``, or a throwaway database on ``url``'s server."""
    if not url:
        yield f"sqlite:///{work / 'oss.db'}"
        return
    import sqlalchemy as sa
    from cartstatus.storage import make_engine

    name = f"cartstatus_bench_{os.getpid()}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_updates(db: str) -> int:
    import sqlalchemy as sa
    from cartstatus.oss.storage import open_oss_database, updates

    engine = open_oss_database(db, run_migrations=False)
    with engine.connect() as conn:
        n = int(conn.execute(sa.select(sa.func.count()).select_from(updates)).scalar_one())
    engine.dispose()
    return n


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="load before each measurement, not counted")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of bare / ingest / lookup, interleaved")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients for the peak")
    parser.add_argument("--db", help="a PostgreSQL server's URL (a throwaway database is made there); "
                                     "default: a SQLite file")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cartstatus-bench-oss-"))
    try:
        with bench_database(opts.db, work) as db:
            measure(opts, work, db)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(opts: argparse.Namespace, work: Path, db: str) -> None:
    token = seed(db)
    wrk = find_wrk()
    script = work / "bench.lua"
    script.write_text(WRK_SCRIPT)
    load_before = os.getloadavg()[0]

    def peak(proc: subprocess.Popen[bytes], port: int, kind: str) -> tuple[float, int, float]:
        """(requests/s, failed requests, server CPU ms per request) after a warm-up of the same load.

        Every kind gets the same client (same wrk settings, the same Lua script
        building each request), the same warm-up and the same duration.
        """
        if wrk:
            run_wrk(wrk, port, kind, opts.warmup, opts.connections, token, script)
            cpu = cpu_seconds(proc.pid)
            rps, errors, requests = run_wrk(wrk, port, kind, opts.seconds, opts.connections, token, script)
        else:
            asyncio.run(closed_loop(port, kind, opts.warmup, opts.connections, token))
            cpu = cpu_seconds(proc.pid)
            t = time.perf_counter()
            rps, errors = asyncio.run(closed_loop(port, kind, opts.seconds, opts.connections, token))
            requests = round(rps * (time.perf_counter() - t))
        return rps, errors, (cpu_seconds(proc.pid) - cpu) * 1000 / max(1, requests)

    bare, bare_port = start(["serve-bare"], "/")
    oss, oss_port = start(["serve-oss", db, str(work / "access.log")], "/healthz")
    servers = {"bare": (bare, bare_port), "ingest": (oss, oss_port), "lookup": (oss, oss_port)}
    kinds = list(servers)
    rounds: list[dict[str, float]] = []
    errors = dict.fromkeys(kinds, 0)
    loads: list[float] = []
    try:
        before = count_updates(db)
        for i in range(opts.rounds):
            # Interleaved, each ratio from runs seconds apart (the machine's load drifts), and the
            # order turned each round, so no kind always runs first or right after another.
            r: dict[str, float] = {}
            for kind in kinds[i % 3:] + kinds[:i % 3]:
                proc, port = servers[kind]
                r[kind], failed, r[f"{kind}_cpu"] = peak(proc, port, kind)
                errors[kind] += failed
            rounds.append(r)
            loads.append(os.getloadavg()[0])
        stored = count_updates(db) - before
        ingest_peak, lookup_peak = median([r["ingest"] for r in rounds]), median([r["lookup"] for r in rounds])
        ing = asyncio.run(open_loop(oss_port, "ingest", ingest_peak / 2, opts.seconds, token))
        look = asyncio.run(open_loop(oss_port, "lookup", lookup_peak / 2, opts.seconds, token))
    finally:
        stop(oss)
        stop(bare)
    load_after = os.getloadavg()[0]

    def med(key: str) -> float:
        return median([r[key] for r in rounds])

    ratios = {kind: [r[kind] / r["bare"] for r in rounds] for kind in ("ingest", "lookup")}
    ingest_ratio, lookup_ratio = median(ratios["ingest"]), median(ratios["lookup"])
    lines: dict[str, Any] = {
        "load_generator": "wrk -t1" if wrk else "python asyncio (closed loop)",
        "server": f"uvicorn {server_stack()}, 1 worker, access_log=False for both; "
                  "its own access log on",
        "database": "PostgreSQL (a throwaway database)" if opts.db else "SQLite (WAL, synchronous=FULL)",
        "connections": opts.connections,
        "seconds_per_run": opts.seconds,
        "warmup_seconds": opts.warmup,
        "rounds": opts.rounds,
        "cpus": os.cpu_count(),
        "loadavg_before": round(load_before, 2),
        "loadavg_per_round": " ".join(f"{x:.2f}" for x in loads),
        "loadavg_after": round(load_after, 2),
        "bare_rps_per_round": " ".join(f"{r['bare']:.0f}" for r in rounds),
        "ingest_rps_per_round": " ".join(f"{r['ingest']:.0f}" for r in rounds),
        "lookup_rps_per_round": " ".join(f"{r['lookup']:.0f}" for r in rounds),
        "ingest_ratio_per_round": " ".join(f"{x:.3f}" for x in ratios["ingest"]),
        "lookup_ratio_per_round": " ".join(f"{x:.3f}" for x in ratios["lookup"]),
        "bare_rps": round(med("bare"), 1),
        "ingest_rps": round(ingest_peak, 1),
        "lookup_rps": round(lookup_peak, 1),
        "ingest_ratio": round(ingest_ratio, 3),
        "ingest_ratio_range": f"{min(ratios['ingest']):.3f}-{max(ratios['ingest']):.3f}",
        "lookup_ratio": round(lookup_ratio, 3),
        "lookup_ratio_range": f"{min(ratios['lookup']):.3f}-{max(ratios['lookup']):.3f}",
        "ingest_updates_stored": stored,
        "bare_non_200": errors["bare"],
        "ingest_non_200": errors["ingest"],
        "lookup_non_200": errors["lookup"],
        # Server CPU per request: less sensitive to the other processes on the machine.
        "bare_cpu_ms_per_request": round(med("bare_cpu"), 3),
        "ingest_cpu_ms_per_request": round(med("ingest_cpu"), 3),
        "lookup_cpu_ms_per_request": round(med("lookup_cpu"), 3),
        "ingest_cpu_ratio": round(med("bare_cpu") / med("ingest_cpu"), 3),
        "lookup_cpu_ratio": round(med("bare_cpu") / med("lookup_cpu"), 3),
        "ingest_half_rate_rps": round(ing["achieved"], 1),
        "ingest_p50_ms_at_half_peak": round(ing["p50_ms"], 2),
        "ingest_p99_ms_at_half_peak": round(ing["p99_ms"], 2),
        "ingest_non_200_at_half_peak": int(ing["errors"]),
        "lookup_half_rate_rps": round(look["achieved"], 1),
        "lookup_p50_ms_at_half_peak": round(look["p50_ms"], 2),
        "lookup_p99_ms_at_half_peak": round(look["p99_ms"], 2),
        "lookup_non_200_at_half_peak": int(look["errors"]),
        "ingest_ratio_target_met": ingest_ratio >= 0.5,
        "lookup_ratio_target_met": lookup_ratio >= 0.6,
    }
    for name, value in lines.items():
        print(f"{name} = {value}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        serve_bare(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-oss":
        serve_oss(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
