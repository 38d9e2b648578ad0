"""Building workloads for tests through the store's own write functions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from workplane.domain.observation import FullResync, Observation
from workplane.domain.record import WorkloadIn
from workplane.domain.timefmt import now_ms
from workplane.store import ingest
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database

CLUSTER = uuid.UUID("11111111-1111-4111-8111-111111111111")
_NS = uuid.UUID("22222222-2222-4222-8222-222222222222")


def wid(label: str) -> uuid.UUID:
    """A deterministic workload id for a test label."""
    return uuid.uuid5(_NS, label)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def workload(label: str, **fields: Any) -> WorkloadIn:
    values: dict[str, Any] = {
        "id": wid(label),
        "clusterId": CLUSTER,
        "name": label,
        "projectId": "1",
        "projectName": "proj-a",
        "departmentId": "10",
        "departmentName": "dept-x",
        "type": "Training",
        "phase": "Running",
        "createdAt": at("2024-05-01T12:00:00Z"),
    }
    values.update(fields)
    return WorkloadIn.model_validate(values)


def load(db: Database, *records: WorkloadIn, tenant_id: int = 1) -> list[str]:
    cache = CatalogCache()
    with db.write() as conn:
        catalog = cache.get(conn)
        return [
            store.create_workload(conn, r, catalog=catalog, tenant_id=tenant_id, now_ms=now_ms())
            for r in records
        ]


def sync_in(
    conn: sa.Connection,
    observations: Sequence[Observation],
    *,
    resync: FullResync | None = None,
    now: int = 1_800_000_000_000,
) -> ingest.BatchResult:
    """Apply one sync batch of ``CLUSTER``'s agent inside the caller's write transaction."""
    return ingest.apply_batch(
        conn,
        cluster_id=str(CLUSTER),
        cluster_name=None,
        observations=list(observations),
        samples=[],
        resync=resync,
        catalog=CatalogCache().get(conn),
        tenant_id=1,
        now_ms=now,
    )


def sync(
    db: Database,
    observations: Sequence[Observation],
    *,
    resync: FullResync | None = None,
    now: int = 1_800_000_000_000,
) -> ingest.BatchResult:
    """Apply one sync batch of ``CLUSTER``'s agent in a write transaction of its own."""
    with db.write() as conn:
        return sync_in(conn, observations, resync=resync, now=now)
