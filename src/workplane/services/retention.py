"""Purges workloads deleted longer ago than the retention period (with their history and samples), and
keeps the metrics store in shape: samples older than their own retention period go (history stays),
small chunks are merged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from workplane.domain.timefmt import now_ms
from workplane.metrics.store import compact, purge_samples
from workplane.store.database import Database
from workplane.store.workloads import purge_deleted

log = logging.getLogger("workplane.retention")
_COMPACT_ROUND = 100  # blocks merged per transaction


# Other state that expires, purged in the same round (e.g. the token throttle's old counts).
Purge = Callable[[sa.Connection], int]


def purge_once(db: Database, retention_days: float, also: Sequence[Purge] = ()) -> int:
    cutoff = now_ms() - int(retention_days * 86_400_000)
    with db.write() as connection:
        for purge in also:
            purge(connection)
        return purge_deleted(connection, older_than_ms=cutoff)


async def run_retention(
    db: Database, retention_days: float, interval_s: float, also: Sequence[Purge] = ()
) -> None:
    """Purge now, then every ``interval_s`` seconds, until cancelled."""
    while True:
        try:
            purged = await run_in_threadpool(purge_once, db, retention_days, also)
            if purged:
                log.info("purged %d workloads deleted more than %s days ago", purged, retention_days)
        except Exception:  # a failed run (database briefly down) must not stop the next ones
            log.exception("retention run failed")
        await asyncio.sleep(interval_s)


def maintain_metrics_once(db: Database, retention_days: float, *, now: int | None = None) -> tuple[int, int]:
    """Drop samples past retention, then merge small chunks (a transaction per round, so ingestion
    waits at most one round for the write lock). Returns (chunks dropped, blocks merged)."""
    now = now if now is not None else now_ms()
    with db.write() as connection:
        dropped = purge_samples(connection, older_than_ms=now - int(retention_days * 86_400_000))
    merged = 0
    while True:
        with db.write() as connection:
            done = compact(connection, now_ms=now, limit=_COMPACT_ROUND)
        merged += done
        if done < _COMPACT_ROUND:
            return dropped, merged


async def run_metrics_maintenance(db: Database, retention_days: float, interval_s: float) -> None:
    """Metric samples: retention and compaction every ``interval_s`` seconds, until cancelled. The
    first run waits one interval: nothing is urgent at start, and several workers starting together
    would otherwise all queue for the write lock (on SQLite) in their first seconds."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            dropped, merged = await run_in_threadpool(maintain_metrics_once, db, retention_days)
            if dropped or merged:
                log.info("metrics: %d chunks past retention dropped, %d blocks compacted", dropped, merged)
        except Exception:  # a failed run (database briefly down) must not stop the next ones
            log.exception("metrics maintenance failed")
