"""Writing the events of a sync batch, and reading a workload's events."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from workplane.domain.events import EventObservation, event_document
from workplane.domain.timefmt import to_ms
from workplane.store.database import chunked, upsert
from workplane.store.pods import PodError, cluster_workloads, newest_by_id
from workplane.store.schema import workload_events

e = workload_events.c


def apply_events(connection: sa.Connection, *, cluster_id: str, events: list[EventObservation]) -> int:
    """Upsert the batch's events that are newer than the stored ones; the number applied."""
    latest = newest_by_id(events)
    if not latest:
        return 0
    known = cluster_workloads(connection, cluster_id, {str(ev.workload_id) for _, ev in latest.values()})
    stored = {
        row.id: row
        for part in chunked(list(latest))
        for row in connection.execute(sa.select(e.id, e.cluster_id, e.revision).where(e.id.in_(part)))
    }
    rows = []
    for key, (index, event) in latest.items():
        if str(event.workload_id) not in known:
            raise PodError(
                f"events[{index}]: workload {event.workload_id} is not a workload of cluster {cluster_id}"
            )
        before = stored.get(key)
        if before is not None and before.cluster_id != cluster_id:
            raise PodError(f"events[{index}]: event {key} belongs to another cluster")
        if before is not None and before.revision >= event.revision:
            continue
        rows.append(
            {
                "id": key,
                "workload_id": str(event.workload_id),
                "cluster_id": cluster_id,
                "revision": event.revision,
                "created_at": to_ms(event.created_at),
                "document": orjson.dumps(event_document(event, cluster_id)).decode(),
            }
        )
    if rows:
        upsert(connection, workload_events, rows, ["revision", "created_at", "document"])
    return len(rows)


def workload_events_page(
    connection: sa.Connection, workload_id: str, *, descending: bool, offset: int, limit: int
) -> tuple[list[str], bool]:
    """A workload's events by time (newest first unless ``descending`` is False); the JSON texts and
    whether more follow."""
    order = (e.created_at.desc(), e.id.desc()) if descending else (e.created_at, e.id)
    rows = connection.execute(
        sa.select(e.document)
        .where(e.workload_id == workload_id)
        .order_by(*order)
        .offset(offset)
        .limit(limit + 1)
    ).all()
    return [row.document for row in rows[:limit]], len(rows) > limit
