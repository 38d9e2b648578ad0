"""Store tasks the tests hand to ``services.store_workers`` worker processes.

A spawned worker imports the module of each task it unpickles. Defined in a test module, a task makes
every worker import that module and everything it imports — the test fixtures, the official Run:ai
client, the test client: about 3 CPU-seconds per worker, measured, against 0.6 s for the worker's own
start. Here they import nothing beyond the standard library.
"""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: a worker imports none of it for these tasks
    from workplane.store.catalog import CatalogCache
    from workplane.store.database import Database


def worker_pid(_db: Database, _catalogs: CatalogCache) -> int:
    """A store task: the process that runs it."""
    return os.getpid()


def collector_state(_db: Database, _catalogs: CatalogCache) -> tuple[int, int]:
    """A store task: the young-generation threshold of the process that runs it, and how many objects
    it keeps out of collections."""
    return gc.get_threshold()[0], gc.get_freeze_count()


def page_cache_kib(db: Database, _catalogs: CatalogCache) -> int:
    """A store task: the page cache of the running process's write connection, in KiB."""
    with db.write() as conn:
        return -int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
