"""The server's log output: lines written in batches, so an access-log line costs no system call of its own."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TextIO

#: ``cartstatus-oss serve`` passes its log level to worker processes through this variable.
LOG_LEVEL_ENV = "CARTSTATUS_OSS_LOG_LEVEL"


class BufferedLineHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes its lines in batches.

    Lines are written when ``capacity`` of them are waiting, at once for a
    warning or worse, at the latest ``interval`` seconds after they were logged
    (a small thread sees to that), and when the application shuts down
    (:func:`flush_logs`) or logging does. A server that is killed outright
    (SIGKILL) loses at most that interval of access-log lines; nothing else is
    held back. A record marked ``deferred`` (an access line) is formatted when
    its batch is written, in a row with the others.
    """

    def __init__(self, stream: TextIO | None = None, *, capacity: int = 256, interval: float = 0.25) -> None:
        super().__init__(stream)
        self.capacity = capacity
        self.interval = interval
        self._lines: list[str | logging.LogRecord] = []
        self._closing = threading.Event()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with self.lock held. A deferred record (an access line: its fields do not
        # change) is formatted with the batch; any other at once, as its arguments could change meanwhile.
        if getattr(record, "deferred", False):
            self._lines.append(record)
        else:
            try:
                self._lines.append(self.format(record))
            except Exception:
                self.handleError(record)
                return
        # Closed (logging shut down, or reconfigured by dictConfig): every line goes out at once.
        if len(self._lines) >= self.capacity or record.levelno >= logging.WARNING or self._closing.is_set():
            self._write()
        elif self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_now_and_then, name="oss-log-flush", daemon=True)
            self._flusher.start()

    def _write(self) -> None:
        if not self._lines:
            return
        lines = [line if isinstance(line, str) else self._format_later(line) for line in self._lines]
        self._lines.clear()
        text = "".join(f"{line}\n" for line in lines if line is not None)
        if not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            # As logging does for a failing handler: say so on stderr and go on.
            if logging.raiseExceptions and sys.stderr is not None:
                sys.stderr.write("--- Logging error: a batch of log lines could not be written ---\n")

    def _format_later(self, record: logging.LogRecord) -> str | None:
        try:
            return self.format(record)
        except Exception:
            self.handleError(record)
            return None

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _flush_now_and_then(self) -> None:
        while not self._closing.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._closing.set()
        self.flush()
        super().close()


class MessageFormatter(logging.Formatter):
    """Each record as its message alone (``%(message)s``), and its traceback when it has one, without the
    template work: the access log's lines are JSON already."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info or record.exc_text or record.stack_info:
            record.message = text
            return super().format(record)
        return text


def flush_logs() -> None:
    """Write out what the handlers hold: uvicorn ends on SIGTERM by raising it again, past atexit's flush."""
    seen: set[int] = set()
    for name in ("cartstatus.oss.access", "cartstatus.oss", ""):
        for handler in logging.getLogger(name).handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                handler.flush()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Log lines as they are (the access log is JSON already) to ``stream`` (stderr), in batches.

    Call it after uvicorn has set up its own loggers (from the application
    factory): its ``dictConfig`` closes the handlers it finds. Does nothing when
    the root logger has handlers already (a host application's own logging).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    # The lines are the message alone: no record needs the thread's or the process's name looked up
    # (the optimisation the logging HOWTO describes; a third of an access-log line's cost).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BufferedLineHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(MessageFormatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def configure_logging_from_env() -> None:
    """In the process uvicorn serves from (each of ``serve --workers N``), the logging ``serve`` asked for."""
    level = os.environ.get(LOG_LEVEL_ENV)
    if level:
        configure_logging(level)
