"""SQLite's write-ahead log copied into the database file from a thread of its own (see
``Database.checkpoint``), so that the writer that commits never waits for it."""

from __future__ import annotations

import asyncio
import logging

from workplane.store.database import Database

log = logging.getLogger("workplane.checkpoint")


async def run_checkpoints(db: Database, interval_s: float) -> None:
    """Checkpoint every ``interval_s`` seconds until cancelled; a failed round is logged and the next
    one tries again (an unchecked log only grows, it loses nothing)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(db.checkpoint)
        except Exception:
            log.exception("SQLite checkpoint failed")
