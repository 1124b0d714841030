"""Group commit: updates from concurrent requests are written together, one transaction per batch.

A store is answered OK only after its update is committed (the stack deletes
the record on OK), so each write must reach the disk; sharing one commit
between the requests that arrive together keeps that cost per batch, not per
update. Batches are gathered on the event loop: while one is being written,
the next one fills. The event loop never waits for the database doing it
(``OssStore.ingest_from_loop``: SQLite's commits on a writer thread,
PostgreSQL's through an asyncio connection).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .service import IngestJob, IngestResult, OssStore

log = logging.getLogger("cartstatus.oss.writer")

_Queued = tuple[IngestJob, "asyncio.Future[IngestResult]"] | None  # None: stop


class BatchWriter:
    """One task per event loop that writes the queued jobs in batches of up to ``max_batch``."""

    def __init__(self, store: OssStore, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Queued] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.jobs = 0

    async def submit(self, job: IngestJob) -> IngestResult:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue), name="oss-group-commit")
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def _run(self, queue: asyncio.Queue[_Queued]) -> None:
        stop = False
        while not stop:
            batch: list[tuple[IngestJob, asyncio.Future[IngestResult]]] = []
            while not stop and len(batch) < self.max_batch and (not batch or not queue.empty()):
                item = await queue.get()
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if not batch:
                continue
            try:
                results = await self.write_batch([job for job, _ in batch])
            except BaseException as exc:  # not an update's fault (cancelled, out of memory): none is left waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("writer stopped"))
                raise
            self.batches += 1
            self.jobs += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def write_batch(self, jobs: Sequence[IngestJob]) -> list[IngestResult | Exception]:
        """Store ``jobs`` in one transaction; when it fails, each alone, so only the culprit gets the error.

        Validation refuses what the database would (wire.validate); this is the
        second line, for whatever it missed: one merchant's update never fails
        another's.
        """
        try:
            return list(await self.store.ingest_from_loop(jobs))
        except Exception as exc:
            if len(jobs) == 1:
                log.error("storing an update failed: %s: %s", type(exc).__name__, exc)
                return [exc]
            log.warning("a group commit of %d updates failed (%s): storing them one by one",
                        len(jobs), type(exc).__name__)
        results: list[IngestResult | Exception] = []
        for job in jobs:
            results.extend(await self.write_batch([job]))
        return results

    async def aclose(self) -> None:
        """Write what is queued, then stop the task."""
        task, queue = self._task, self._queue
        self._task = self._queue = self._loop = None
        if task is not None and queue is not None and not task.done():
            queue.put_nowait(None)
            await task
