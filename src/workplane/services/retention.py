"""Purges workloads deleted longer ago than the retention period (with their history and samples)."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from workplane.domain.timefmt import now_ms
from workplane.store.database import Database
from workplane.store.workloads import purge_deleted

log = logging.getLogger("workplane.retention")


def purge_once(db: Database, retention_days: float) -> int:
    cutoff = now_ms() - int(retention_days * 86_400_000)
    with db.write() as connection:
        return purge_deleted(connection, older_than_ms=cutoff)


async def run_retention(db: Database, retention_days: float, interval_s: float) -> None:
    """Purge now, then every ``interval_s`` seconds, until cancelled."""
    while True:
        try:
            purged = await run_in_threadpool(purge_once, db, retention_days)
            if purged:
                log.info("purged %d workloads deleted more than %s days ago", purged, retention_days)
        except Exception:  # a failed run (database briefly down) must not stop the next ones
            log.exception("retention run failed")
        await asyncio.sleep(interval_s)
