"""Group commit: updates from concurrent requests are written together, one transaction per batch.

A store is answered OK only after its update is committed (the stack deletes
the record on OK), so each write must reach the disk; sharing one commit
between the requests that arrive together keeps that cost per batch, not per
update. The writing is done in a thread of its own, on every database: the
event loop never waits for a lock (SQLite's BEGIN IMMEDIATE) or a disk sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from .service import IngestJob, IngestResult, OssStore

log = logging.getLogger("cartstatus.oss.writer")

_STOP = object()


class BatchWriter:
    """One writer thread that drains a queue of jobs in batches of up to ``max_batch``."""

    def __init__(self, store: OssStore, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.jobs = 0

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="oss-writer", daemon=True)
                    self._thread.start()

    async def submit(self, job: IngestJob) -> IngestResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._ensure_started()
        self._queue.put((job, loop, future))
        return await future

    def close(self) -> None:
        """Finish what is queued and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._write(batch)
            if stop:
                return

    def write_batch(self, jobs: Sequence[IngestJob]) -> list[IngestResult | Exception]:
        """Store ``jobs`` in one transaction; when it fails, each alone, so only the culprit gets the error.

        Validation refuses what the database would (wire.validate); this is the
        second line, for whatever it missed: one merchant's update never fails
        another's.
        """
        try:
            return list(self.store.ingest(jobs))
        except Exception as exc:
            if len(jobs) == 1:
                log.error("storing an update failed: %s: %s", type(exc).__name__, exc)
                return [exc]
            log.warning("a group commit of %d updates failed (%s): storing them one by one",
                        len(jobs), type(exc).__name__)
        results: list[IngestResult | Exception] = []
        for job in jobs:
            results.extend(self.write_batch([job]))
        return results

    def _write(self, batch: Sequence[Any]) -> None:
        results = self.write_batch([job for job, _, _ in batch])
        self.batches += 1
        self.jobs += len(batch)
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[IngestResult], Any]]] = {}
        for (_, loop, future), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result))
        for loop, pairs in by_loop.items():
            # RuntimeError: the loop has closed, nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[asyncio.Future[IngestResult], Any]]) -> None:
    for future, result in pairs:
        if future.done():  # the client went away
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
