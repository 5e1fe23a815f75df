"""The background worker: webhook fan-out and delivery, plus the queue timers.

One loop, run either alone (``claimdesk worker``) or inside the API process (started by the app's
lifespan unless ``claimdesk serve --no-worker`` or ``--workers`` > 1). Any number of workers may run
against one database: PostgreSQL hands work out with ``SKIP LOCKED``, SQLite lets one writer in at a
time, and every delivery in flight carries a lease, so no attempt is ever sent twice at once.

Each turn of the loop records finished attempts, fans out new outbox rows, claims due deliveries
into free sending slots and, every ``worker_poll_seconds``, runs the timers. When a turn finds nothing
to do, the loop sleeps until the poll interval passes, an attempt finishes, or (in the API process) a
write transaction commits, so new events leave without waiting for the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database
from app.queue.timers import run_timers
from app.webhooks.dispatcher import (
    Deliverer,
    DeliveryBacklogCollector,
    WebhookMetrics,
)
from app.webhooks.sender import create_client

log = logging.getLogger("claimdesk.worker")

# ``claimdesk serve`` sets this to 0 for --no-worker and for several server processes.
IN_PROCESS_ENV = "CLAIMDESK_IN_PROCESS_WORKER"
ERROR_BACKOFF_SECONDS = 2.0
# How long a commit's wake-up waits for others to join it before the outbox is fanned out.
DISPATCH_COALESCE_SECONDS = 0.05

_thread_state = threading.local()


def _mark_worker_thread() -> None:
    _thread_state.worker = True


def in_worker_thread() -> bool:
    return bool(getattr(_thread_state, "worker", False))


def in_process_worker_wanted() -> bool:
    return os.environ.get(IN_PROCESS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


class Worker:
    """The loop. ``run`` returns once ``stop`` is set and the attempts on the wire are settled."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        metrics: WebhookMetrics | None = None,
        concurrency: int | None = None,
        per_endpoint: int | None = None,
        timers: bool = True,
        wake_on_commit: bool = True,
    ) -> None:
        self.database = database
        self.settings = settings
        self.metrics = metrics
        self.concurrency = settings.webhook_concurrency if concurrency is None else concurrency
        self.per_endpoint = settings.webhook_concurrency_per_endpoint if per_endpoint is None else per_endpoint
        self.timers = timers
        self.wake_on_commit = wake_on_commit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._deliverer: Deliverer | None = None

    def wake(self, *, outbox: bool = False) -> None:
        """Make the loop look for work now (safe from any thread); ``outbox`` when new events may
        have been written."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return

        def poke() -> None:
            if outbox and self._deliverer is not None:
                self._deliverer.outbox_dirty = True
            wake.set()

        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(poke)

    def _after_commit(self, session: Session) -> None:
        if not in_worker_thread() and session.bind is self.database.write_engine:
            self.wake(outbox=True)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._wake = loop, asyncio.Event()
        poll = self.settings.worker_poll_seconds
        executor = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="claimdesk-worker-db", initializer=_mark_worker_thread
        )
        if self.wake_on_commit:
            event.listen(Session, "after_commit", self._after_commit)
        try:
            async with create_client() as client:
                deliverer = Deliverer(
                    self.database,
                    self.settings,
                    client,
                    concurrency=self.concurrency,
                    per_endpoint=self.per_endpoint,
                    metrics=self.metrics,
                    executor=executor,
                    on_finished=self._wake.set,
                )
                self._deliverer = deliverer
                next_timers = 0.0
                last_dispatch = -DISPATCH_COALESCE_SECONDS
                while not stop.is_set():
                    self._wake.clear()
                    try:
                        fan_out = deliverer.outbox_dirty
                        if fan_out:
                            # Under a burst of commits, gather them for a moment and fan them out in
                            # one transaction, instead of one write transaction per commit.
                            gap = DISPATCH_COALESCE_SECONDS - (loop.time() - last_dispatch)
                            if gap > 0:
                                await _wait(stop, None, gap)
                            last_dispatch = loop.time()
                        # Fan-out, recording and claiming in one write transaction.
                        worked = await deliverer.step(fan_out=fan_out)
                    except Exception:
                        log.exception("webhook delivery step failed; trying again shortly")
                        deliverer.outbox_dirty = True
                        await _wait(stop, None, ERROR_BACKOFF_SECONDS)
                        continue
                    if self.timers and loop.time() >= next_timers:
                        next_timers = loop.time() + poll
                        try:
                            await loop.run_in_executor(executor, run_timers, self.database, self.settings)
                        except Exception:
                            log.exception("timers failed; trying again next tick")
                        deliverer.outbox_dirty = True  # timers announce what they changed
                    if not worked and not await _wait(stop, self._wake, poll):
                        # A quiet poll interval: other processes may have written events meanwhile.
                        deliverer.outbox_dirty = True
                grace = min(self.settings.webhook_timeout, 10.0)
                await deliverer.drain(grace)
        finally:
            if self.wake_on_commit:
                event.remove(Session, "after_commit", self._after_commit)
            self._loop = None
            self._deliverer = None
            executor.shutdown(wait=True)


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> bool:
    """Sleep until ``stop`` or ``wake`` is set, or ``timeout`` seconds pass. False on a timeout."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


# --------------------------------------------------------------------------------------------------
# `claimdesk worker`
# --------------------------------------------------------------------------------------------------


def run_forever(database: Database, settings: Settings) -> int:
    """Run the loop in this process until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # not on every platform
                loop.add_signal_handler(sig, stop.set)
        log.info("worker started (poll every %.2fs)", settings.worker_poll_seconds)
        await Worker(database, settings, wake_on_commit=False).run(stop)
        log.info("worker stopped")

    asyncio.run(main())
    return 0


# --------------------------------------------------------------------------------------------------
# The in-process worker (inside `claimdesk serve`)
# --------------------------------------------------------------------------------------------------


class BackgroundWorker:
    """The loop on its own thread and event loop, so API requests and deliveries never wait on each
    other's event loop."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="claimdesk-worker", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self.worker.run(self._stop)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("the in-process worker stopped with an error")
        finally:
            self._ready.set()

    def start(self) -> BackgroundWorker:
        self._thread.start()
        self._ready.wait(5)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        wait = timeout if timeout is not None else min(self.worker.settings.webhook_timeout, 10.0) + 5.0
        self._thread.join(wait)
        if self._thread.is_alive():
            log.warning("the in-process worker did not stop within %.0fs", wait)


def install_metrics(app: FastAPI) -> None:
    """Webhook metrics on the app's registry: backlog gauges (read at scrape time) and the counter
    the in-process worker increments."""
    registry = app.state.metrics.registry
    app.state.webhook_metrics = WebhookMetrics(registry)
    registry.register(DeliveryBacklogCollector(app.state.database))


def start_in_process(app: FastAPI) -> BackgroundWorker | None:
    """Start the loop for this API process if ``app.state.start_worker`` says so."""
    if not getattr(app.state, "start_worker", False):
        return None
    state: Any = app.state
    worker = Worker(state.database, state.settings, metrics=getattr(state, "webhook_metrics", None))
    log.info("starting the in-process worker")
    return BackgroundWorker(worker).start()
