"""Group commit: updates from concurrent requests are written together, one transaction per batch.

A store is answered OK only after its update is committed (the stack deletes
the record on OK), so each write must reach the disk; sharing one commit
between the requests that arrive together keeps that cost per batch, not per
update.
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

    def _write(self, batch: Sequence[Any]) -> None:
        try:
            results: list[Any] = list(self.store.ingest([job for job, _, _ in batch]))
        except Exception as exc:  # the database is down: every request of the batch gets the error
            log.error("storing %d updates failed: %s: %s", len(batch), type(exc).__name__, exc)
            results = [exc] * len(batch)
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


Batch = list[tuple[IngestJob, "asyncio.Future[IngestResult]"]]


class LoopWriter:
    """Group commit for SQLite: the statements on the event loop, the COMMIT in a thread.

    Requests that arrive together append their jobs; one callback writes the
    lot on the loop (a local SQLite write of a batch takes well under a
    millisecond, and a writer thread would wait for the interpreter lock behind
    the event loop at every statement), then hands only the COMMIT, which waits
    for the disk sync (synchronous=FULL), to its own thread. The interpreter
    lock is free while the disk syncs, so the loop goes on reading the next
    requests, which form the next batch. Nobody is answered before their COMMIT
    has returned.

    When updates are still waiting as a commit returns (the server is busy),
    the next batch starts ``gather`` seconds later, so that it carries more
    of them: fewer, fuller commits for the same disk syncs, as PostgreSQL's
    ``commit_delay``. A server that is not busy never waits.
    """

    def __init__(self, store: OssStore, max_batch: int = 256, gather: float = 0.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.gather = gather
        self._pending: Batch = []
        self._scheduled = False
        self._committing = False
        self._closed = False
        self._conn: Any = None  # the writer's own driver connection, opened on first use
        self._sqlite = store.engine.dialect.name == "sqlite"
        self._commits: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self.batches = 0
        self.jobs = 0

    async def submit(self, job: IngestJob) -> IngestResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append((job, future))
        if not (self._scheduled or self._committing):
            self._scheduled = True
            loop.call_soon(self._start)
        return await future

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.store.engine.raw_connection()
        return self._conn

    def _take(self) -> Batch:
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        self.batches += 1
        self.jobs += len(batch)
        return batch

    def _write(self, jobs: list[IngestJob]) -> list[IngestResult]:
        """Run the batch's statements, leaving the transaction open (rolled back when they fail)."""
        conn = self._connection()
        cur = conn.cursor()
        try:
            if self._sqlite:
                cur.execute("BEGIN IMMEDIATE")  # autocommit connection (storage.sqlite_pragmas)
            return self.store.ingest_statements(cur, jobs)
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.close()

    def _start(self) -> None:
        self._scheduled = False
        if self._committing or not self._pending or self._closed:
            return
        batch = self._take()
        jobs = [job for job, _ in batch]
        try:
            results: list[Any] = self._write(jobs)
        except self.store.integrity_errors:
            # Another process stored the same key or order at the same instant: job by job, committed.
            self._settle(batch, self._ingest_alone(jobs))
            self._start()
            return
        except Exception as exc:  # the database failed: every request of the batch gets the error
            log.error("storing %d updates failed: %s: %s", len(batch), type(exc).__name__, exc)
            self._settle(batch, [exc] * len(batch))
            self._start()
            return
        self._committing = True
        if self._committer is None:
            self._committer = threading.Thread(target=self._commit_batches, name="oss-commit", daemon=True)
            self._committer.start()
        self._commits.put((asyncio.get_running_loop(), batch, results))

    def _commit_batches(self) -> None:
        """The committer thread: COMMIT, then one call back to the loop (no executor future in between)."""
        while True:
            item = self._commits.get()
            if item is _STOP:
                return
            loop, batch, results = item
            error: BaseException | None = None
            try:
                self._conn.commit()
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(self._committed, batch, results, error)

    def _ingest_alone(self, jobs: list[IngestJob]) -> list[Any]:
        try:
            return list(self.store.ingest(jobs))
        except Exception as exc:
            return [exc] * len(jobs)

    def _committed(self, batch: Batch, results: list[Any], error: BaseException | None) -> None:
        self._committing = False
        if error is not None:
            log.error("committing %d updates failed: %s: %s", len(batch), type(error).__name__, error)
            with contextlib.suppress(Exception):
                self._conn.rollback()
            results = [error] * len(batch)
        self._settle(batch, results)
        # What arrived during the disk sync is the next batch: at once, or a moment later when busy.
        if self.gather > 0 and self._pending and len(self._pending) < self.max_batch and not self._closed:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.gather, self._start)
        else:
            self._start()

    @staticmethod
    def _settle(batch: Batch, results: list[Any]) -> None:
        _resolve([(future, result) for (_, future), result in zip(batch, results, strict=True)])

    def close(self) -> None:
        """Wait for the commit under way, write what is still queued, and give the connection back."""
        self._closed = True
        if self._committer is not None:
            self._commits.put(_STOP)
            self._committer.join()
            self._committer = None
        while self._pending:
            batch = self._take()
            jobs = [job for job, _ in batch]
            try:
                results: list[Any] = self._write(jobs)
                self._conn.commit()
            except self.store.integrity_errors:
                results = self._ingest_alone(jobs)
            except Exception as exc:
                log.error("storing %d updates failed: %s: %s", len(batch), type(exc).__name__, exc)
                results = [exc] * len(batch)
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                self._settle(batch, results)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.batches:
            log.info("wrote %d updates in %d group commits", self.jobs, self.batches)
