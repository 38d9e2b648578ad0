"""The audit log: who changed what, and which requests were refused, when and from where.

Changes are recorded in the transaction that makes them (a change and its record commit together).
Refused requests (401, 403, 429) are buffered in memory and written in one transaction per second: a
flood of bad tokens must not turn every refusal into a database write, which would let it starve the
writers. If the buffer overflows, what is dropped is counted and the count itself is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any

import sqlalchemy as sa

from workplane.domain.timefmt import now_ms
from workplane.store.database import Database
from workplane.store.schema import audit_log

log = logging.getLogger("workplane.audit")

ANONYMOUS = "-"
_MAX_TEXT = 500


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def entry(
    *, actor: str, action: str, target: str, status: int, address: str | None, detail: str, at_ms: int
) -> dict[str, Any]:
    return {
        "at_ms": at_ms,
        "actor": _clip(actor),
        "action": action,
        "target": _clip(target),
        "status": status,
        "address": address,
        "detail": _clip(detail),
    }


def record(
    connection: sa.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    status: int = 200,
    address: str | None = None,
    detail: str = "",
) -> None:
    """Record a change, in the caller's transaction."""
    connection.execute(
        audit_log.insert().values(
            entry(
                actor=actor,
                action=action,
                target=target,
                status=status,
                address=address,
                detail=detail,
                at_ms=now_ms(),
            )
        )
    )


def list_entries(
    connection: sa.Connection,
    *,
    after: int = 0,
    limit: int = 100,
    actor: str | None = None,
    action: str | None = None,
) -> list[Any]:
    """Entries with an id above ``after``, oldest first (page on with the last id seen)."""
    statement = sa.select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
    if actor is not None:
        statement = statement.where(audit_log.c.actor == actor)
    if action is not None:
        statement = statement.where(audit_log.c.action == action)
    return list(connection.execute(statement).all())


class RefusalLog:
    """Refused requests, buffered and written in batches."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._pending: deque[dict[str, Any]] = deque()
        self._capacity = capacity
        self._dropped = 0
        self._lock = threading.Lock()
        # Held from taking the rows until they are committed: a flush that finds the buffer empty
        # because another flush took it must wait for that one's rows to be readable (the audit
        # route flushes before it reads, and promises an answer that includes every refusal so far).
        self._flushing = threading.Lock()

    def add(self, *, actor: str, target: str, status: int, address: str | None, detail: str) -> None:
        row = entry(
            actor=actor,
            action="request.refused",
            target=target,
            status=status,
            address=address,
            detail=detail,
            at_ms=now_ms(),
        )
        with self._lock:
            if len(self._pending) >= self._capacity:
                self._dropped += 1
                return
            self._pending.append(row)

    def flush(self, db: Database) -> int:
        with self._flushing:
            return self._flush(db)

    def _flush(self, db: Database) -> int:
        with self._lock:
            rows, self._pending = list(self._pending), deque()
            dropped, self._dropped = self._dropped, 0
        if dropped:
            rows.append(
                entry(
                    actor=ANONYMOUS,
                    action="audit.dropped",
                    target="request.refused",
                    status=429,
                    address=None,
                    detail=f"{dropped} refused requests were not recorded (buffer full)",
                    at_ms=now_ms(),
                )
            )
        if rows:
            with db.write() as connection:
                connection.execute(audit_log.insert(), rows)
        return len(rows)


async def run_flusher(refusals: RefusalLog, db: Database, interval_s: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(refusals.flush, db)
        except Exception:  # a busy database: the entries are lost, the server goes on
            log.exception("could not write the audit log")
