"""Serve an ASGI app with uvicorn on 127.0.0.1, on a socket bound before the server starts.

The demo, the tests and the benchmarks serve their simulators and the OSS this
way. The port is the one the operating system gives a socket bound to port 0,
kept bound from then on: choosing a free port and binding it later is a race
that another process can win.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uvicorn

#: How long a server may take to start (a loaded machine runs the whole suite beside it).
START_TIMEOUT = 30.0


def local_socket() -> socket.socket:
    """A TCP socket listening on a free port of 127.0.0.1, chosen by the system."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening already: a client that comes before the server is up waits instead of being refused.
    sock.listen(128)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def _server(app: Any, **config: Any) -> uvicorn.Server:
    settings: dict[str, Any] = {"log_level": "warning", "access_log": False, **config}
    return uvicorn.Server(uvicorn.Config(app, **settings))


@contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` in a background thread until the block ends; yields its base URL.

    ``config`` goes to :class:`uvicorn.Config` (``lifespan="off"``, say); the
    access log is off and the log level ``warning`` unless given.
    """
    sock = local_socket()
    server = _server(app, **config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{base_url(sock)}",
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server for {base_url(sock)} did not start")
            time.sleep(0.01)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve_on_fd(app: Any, fd: int, **config: Any) -> None:
    """Serve ``app`` in this thread on the inherited listening socket ``fd`` (a server subprocess)."""
    _server(app, **config).run(sockets=[socket.socket(fileno=fd)])


def start_server_process(argv: Sequence[str], probe: str = "/", **popen: Any) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``argv + [FD]``, a process that serves on the socket FD bound here; returns it and its base URL.

    The command ends in :func:`serve_on_fd` with that number. Returns once ``probe`` answers.
    """
    sock = local_socket()
    url = base_url(sock)
    with sock:
        proc = subprocess.Popen([*argv, str(sock.fileno())], pass_fds=(sock.fileno(),), **popen)
    deadline = time.monotonic() + START_TIMEOUT * 2
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server {' '.join(argv)} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}{probe}", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the server {' '.join(argv)} did not answer {url}{probe} within {START_TIMEOUT * 2:g} s")


def stop_server_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """End a process :func:`start_server_process` started: asked to stop, killed if it has not within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
