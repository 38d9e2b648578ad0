"""Store work that is mostly Python, done in worker processes so that it uses every core.

A server process runs Python on about one core (the GIL), and is kept on one CPU for its reads
(``serving.pin_to_cpu``). A sync batch is nearly all Python work — validating the body, building
rows and documents, binding parameters — so the server hands each batch to a pool of worker
processes, each with its own connections to the store: two agents' batches are then worked on by two
cores at once, whichever server process their connections landed on. SQLite still takes one writer at
a time; a batch holds the lock only for its writing (``services.ingest.sync_batch``).

A task is a module-level function called as ``function(db, catalogs, *args)`` with the worker's own
``Database`` and ``CatalogCache``; its arguments and result travel pickled (a sync batch travels as
the request body's bytes). Without workers (``sync_processes = 0``) the same function runs in the
server's thread pool, on the server's own store. The workers start with the first task and stop after
a while without one (``StoreWorkers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Concatenate, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from workplane.settings import Settings
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database, create_database

log = logging.getLogger("workplane.store_workers")

P = ParamSpec("P")
R = TypeVar("R")
StoreTask = Callable[Concatenate[Database, CatalogCache, P], R]

_PARENT_CHECK_S = 0.5
IDLE_S = 60.0  # worker processes stop after this long without a task
_RETIRE_CHECK_S = 5.0

# The worker process's store, set up once by ``_start``.
_store: tuple[Database, CatalogCache] | None = None


class WorkersUnavailable(RuntimeError):
    """A worker process died while it held the task (the pool is restarted; the task can be retried)."""


def _start(settings: Settings) -> None:
    global _store
    # Ctrl-C in a terminal reaches the whole process group: the server stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A spawned process inherits the server's single-CPU affinity; a worker may use any CPU.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    _store = (
        create_database(settings, background_checkpoints=settings.checkpoints_in_background, writer=True),
        CatalogCache(),
    )


def _exit_with_parent(parent: int) -> None:
    """Leave when the server process is gone. A server killed outright (SIGKILL, out of memory) cannot
    stop its workers, and they would wait for tasks forever: each holds its own end of the task queue
    open, so the queue never reports that the other end has gone."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_S)
    os._exit(0)


# Young collections every this many new container objects (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000
_collector_tuned = False


def tune_collector() -> None:
    """Set this worker's cyclic garbage collector, once, after the task's modules are imported.

    A sync batch makes a few hundred thousand objects that all live until it ends. With Python's
    default thresholds the collector runs every 700 new objects, and every tenth run also walks
    everything the process holds (the modules, the schema, the validators): measured on sync batches
    (``bench.ingest_stages``), a fifth of their CPU time, 164 -> 132 µs per observation. What exists
    once the modules are imported lives as long as the process, so it is left out of collections
    (``gc.freeze``), and young collections run every ``GC_YOUNG_THRESHOLD`` objects; cycles a batch
    leaves behind are still collected. (The server process keeps the defaults: on a list page over
    HTTP the same setting made no difference, 485-533 requests/s with either.)"""
    global _collector_tuned
    if not _collector_tuned:
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        _collector_tuned = True


def _run(function: StoreTask[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    if _store is None:
        raise RuntimeError("store worker not started")
    tune_collector()  # here, once the task's modules are imported (unpickling the task did it)
    db, catalogs = _store
    return function(db, catalogs, *args, **kwargs)


def _ready() -> int:
    return os.getpid()


class StoreWorkers:
    """A pool of ``processes`` worker processes (0: run tasks in the server's own thread pool).

    The processes exist while there is work for them: they start with the first task (each imports
    the application and opens its store, ~0.3 s) and stop after ``idle_s`` without one (``retire``),
    so a server that only answers reads keeps the memory of one process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        catalogs: CatalogCache,
        processes: int,
        *,
        idle_s: float = IDLE_S,
    ) -> None:
        self._settings = settings
        self._db = db
        self._catalogs = catalogs
        self.processes = processes
        self.idle_s = idle_s
        self._pool: ProcessPoolExecutor | None = None
        self._running = 0
        self._last_used = time.monotonic()
        self._closed = False

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self._settings,),
            )
            # All of them at once: the executor starts a process only when a task finds none idle.
            for _ in range(self.processes):
                self._pool.submit(_ready)
        return self._pool

    async def run(self, function: StoreTask[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``function(db, catalogs, *args)`` in a worker process, or in the thread pool without one."""
        if self.processes <= 0 or self._closed:
            return await run_in_threadpool(function, self._db, self._catalogs, *args, **kwargs)
        pool = self._ensure_pool()
        self._running += 1
        try:
            task: functools.partial[R] = functools.partial(_run, function, *args, **kwargs)
            return await asyncio.wrap_future(pool.submit(task))
        except BrokenProcessPool:
            # A worker was killed (out of memory, by hand): its task's transaction was rolled back
            # by the database. Later tasks get new workers; this one is answered as unavailable.
            if self._pool is pool:
                log.error("a store worker process died; starting new ones")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise WorkersUnavailable("a store worker process stopped; try again") from None
        finally:
            self._running -= 1
            self._last_used = time.monotonic()

    @property
    def started(self) -> bool:
        """Whether worker processes are running (or starting) now."""
        return self._pool is not None

    def retire(self) -> bool:
        """Stop the worker processes if none has had a task for ``idle_s``; whether it did."""
        pool = self._pool
        if pool is None or self._running or time.monotonic() - self._last_used < self.idle_s:
            return False
        self._pool = None
        pool.shutdown(wait=False)
        return True

    async def retire_when_idle(self) -> None:
        """``retire`` every few seconds until cancelled (the server runs it as a task)."""
        while True:
            await asyncio.sleep(min(self.idle_s, _RETIRE_CHECK_S))
            self.retire()

    def stop(self) -> None:
        """Let running tasks finish, then stop the worker processes (tasks after this run in the
        server's thread pool)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
