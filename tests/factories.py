"""Building workloads for tests through the store's own write functions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from workplane.domain.batch import SyncBatch
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import FullResync, Observation
from workplane.domain.record import WorkloadIn, build_row, transition
from workplane.domain.timefmt import now_ms, to_ms
from workplane.query.filters import Sort, WorkloadQuery
from workplane.services import ingest as services_ingest
from workplane.store import ingest
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.schema import workload_nodepools, workloads

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
    # One batch (one statement a table) rather than a workload at a time: the organisation's upsert
    # and its owner checks ran once per record (``test_terms_lead``'s 248 workloads, three quarters of
    # its CPU).
    with db.write() as conn:
        catalog = CatalogCache().get(conn)
        return store.create_workloads(
            conn, list(records), catalog=catalog, tenant_id=tenant_id, now_ms=now_ms()
        )


def sync_in(
    conn: sa.Connection,
    observations: Sequence[Observation],
    *,
    resync: FullResync | None = None,
    now: int = 1_800_000_000_000,
) -> ingest.BatchResult:
    """Apply one sync batch of ``CLUSTER``'s agent inside the caller's write transaction."""
    return services_ingest.apply_batch(
        conn,
        SyncBatch(workloads=list(observations), full_resync=resync),
        catalog=CatalogCache().get(conn),
        cluster_id=str(CLUSTER),
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


# --- single-workload writers: the server writes workloads by sync batch only ---------------------


def create_workload(
    connection: sa.Connection, record: WorkloadIn, *, catalog: CatalogSnapshot, tenant_id: int, now_ms: int
) -> str:
    """Insert one new workload (see ``store.workloads.create_workloads``)."""
    return store.create_workloads(connection, [record], catalog=catalog, tenant_id=tenant_id, now_ms=now_ms)[
        0
    ]


def update_workload(
    connection: sa.Connection, record: WorkloadIn, *, catalog: CatalogSnapshot, tenant_id: int, now_ms: int
) -> None:
    """Replace a workload's observed state. A phase change at ``phaseUpdatedAt`` closes the open
    Pending/Running interval and opens the next; the accumulated totals are kept. Without
    ``phaseUpdatedAt`` a phase change happens at ``now_ms``, and an unchanged phase keeps its time."""
    if record.id is None:
        raise store.InvalidWorkload("an update needs the workload id")
    store.check_record(record, catalog)
    workload_id = str(record.id)
    previous, deleted_at = store.phase_facts(connection, workload_id)
    change = transition(record, previous, now_ms)
    record = change.record
    clock = change.clock if deleted_at is None else change.clock.stop(deleted_at)
    row = build_row(
        record,
        workload_id=workload_id,
        tenant_id=tenant_id,
        clock=clock,
        updated_at_ms=to_ms(record.updated_at) if record.updated_at else now_ms,
        deleted_at_ms=deleted_at,
        completed_at_ms=change.completed_at_ms,
    )
    store.upsert_organisation(connection, [record])
    connection.execute(workloads.update().where(workloads.c.id == workload_id).values(**row))
    connection.execute(workload_nodepools.delete().where(workload_nodepools.c.workload_id == workload_id))
    if record.current_node_pools:
        connection.execute(
            workload_nodepools.insert(), store.nodepool_rows(workload_id, record.current_node_pools)
        )


def ids_a_row_at_a_time(connection: sa.Connection, query: WorkloadQuery, sort: Sort, rows: int) -> list[str]:
    """The ids of ``query``'s workloads in ``sort``'s order, asked a page of one row at a time for
    offsets 0 to ``rows`` (one past the last expected): each page's plan is chosen for its own
    offset, so a list crosses from one plan to the next. Checks each page's ``has_more``."""
    catalog = CatalogCache().get(connection)
    got: list[str] = []
    for offset in range(rows + 1):
        page = store.list_workloads(
            connection, query, sort=sort, offset=offset, limit=1, catalog=catalog, now_ms=now_ms()
        )
        got.extend(row.id for row in page.rows)
        assert page.has_more == (offset + 1 < rows), (offset, rows)
    return got


def paged_and_counted(
    connection: sa.Connection, query: WorkloadQuery, sort: Sort, rows: int
) -> tuple[list[str], int]:
    """``ids_a_row_at_a_time`` and the query's count, in one read."""
    got = ids_a_row_at_a_time(connection, query, sort, rows)
    catalog = CatalogCache().get(connection)
    return got, store.count_workloads(connection, query, catalog=catalog, now_ms=now_ms())


def first_page_statements(
    database: Database, query: WorkloadQuery, sort: Sort
) -> tuple[list[str], list[tuple[str, Any]]]:
    """The ids of ``query``'s first page of three in ``sort``'s order, and each statement of it that
    selects workload ids in an order, with its parameters."""
    with statements_sent(database) as sent, database.read() as conn:
        catalog = CatalogCache().get(conn)
        page = store.list_workloads(
            conn, query, sort=sort, offset=0, limit=3, catalog=catalog, now_ms=now_ms()
        )
    selects = [(s, p) for s, p in sent if s.startswith("SELECT workloads.id") and "ORDER BY" in s]
    return [row.id for row in page.rows], selects


def first_page_plans(
    database: Database, query: WorkloadQuery, sort: Sort
) -> tuple[list[str], list[list[str]]]:
    """``first_page_statements``' ids, and SQLite's plan of each of its statements."""
    ids, selects = first_page_statements(database, query, sort)
    with database.read() as conn:
        plans = [
            [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            for statement, parameters in selects
        ]
    return ids, plans


@contextmanager
def statements_sent(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """Each statement sent to ``database`` within the block, with its parameters, in order."""
    sent: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
