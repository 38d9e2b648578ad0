"""A batch planned before the write lock and written after it comes out exactly as if planned under
the lock, even when another writer changed its workloads in between."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.factories import CLUSTER, sync, wid
from tests.store.test_counts import assert_rollups_exact
from workplane.domain.batch import SyncBatch
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import Observation
from workplane.store import ingest
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.schema import workload_history, workloads

NOW = 1_800_000_000_000


def _observations(names: range, revision: int, phase: str, pools: list[str]) -> list[Observation]:
    return [
        Observation.model_validate(
            {
                "id": str(wid(f"w{n}")),
                "revision": revision,
                "name": f"w{n}",
                "projectId": "p1",
                "projectName": "project-1",
                "departmentId": "d1",
                "departmentName": "department-1",
                "type": "Training",
                "phase": phase,
                "createdAt": "2024-05-01T00:00:00Z",
                "phaseUpdatedAt": f"2024-05-01T0{revision}:00:00Z",
                "allocatedResources": {"gpu": 0.5 * revision} if phase == "Running" else None,
                "currentNodePools": pools,
            }
        )
        for n in names
    ]


def _prepare(database: Database, observations: list[Observation]) -> tuple[ingest.Batch, ingest.Plan | None]:
    with database.read() as conn:
        checked = ingest.check_batch(
            SyncBatch(workloads=observations),
            cluster_id=str(CLUSTER),
            tenant_id=1,
            now_ms=NOW,
            catalog=CatalogCache().get(conn),
        )
        return checked, ingest.prepare_batch(conn, checked)


def _state(database: Database) -> dict[str, tuple[str, int, float | None]]:
    with database.read() as conn:
        rows = conn.execute(
            sa.select(workloads.c.name, workloads.c.phase, workloads.c.revision, workloads.c.allocated_gpu)
        )
        return {r.name: (r.phase, r.revision, r.allocated_gpu) for r in rows}


def test_a_plan_overtaken_by_another_writer_is_made_again(
    database: Database, catalog: CatalogSnapshot
) -> None:
    sync(database, _observations(range(10), 1, "Pending", ["a"]))
    prepared = _prepare(database, _observations(range(10), 2, "Running", ["a", "b"]))
    # Another agent's batch lands first: w0-w4 reach revision 3 (newer than the prepared batch's).
    sync(database, _observations(range(5), 3, "Completed", ["b"]))
    with database.write() as conn:
        result = ingest.write_prepared(conn, *prepared)
    assert (result.applied, result.ignored) == (5, 5)
    state = _state(database)
    assert all(state[f"w{n}"] == ("Completed", 3, None) for n in range(5))
    assert all(state[f"w{n}"] == ("Running", 2, 1.0) for n in range(5, 10))
    assert_rollups_exact(database)
    with database.read() as conn:
        history = conn.execute(sa.select(sa.func.count()).select_from(workload_history)).scalar_one()
    assert history == 10 + 5 + 5  # created, then Completed (w0-w4) or Running (w5-w9): no stale entry


def test_a_plan_still_valid_is_written_as_planned(database: Database, catalog: CatalogSnapshot) -> None:
    sync(database, _observations(range(6), 1, "Pending", []))
    prepared = _prepare(database, _observations(range(6), 2, "Running", ["a"]))
    with database.write() as conn:
        result = ingest.write_prepared(conn, *prepared)
    assert (result.applied, result.ignored) == (6, 0)
    assert set(_state(database).values()) == {("Running", 2, 1.0)}
    assert_rollups_exact(database)


def test_postgresql_writers_wait_for_the_rows_a_batch_checks(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """PostgreSQL writers do not exclude one another: another transaction's uncommitted change to a
    workload must not slip in between the batch's check of its rows and its own writes. The batch
    waits for that transaction, then sees its change and plans again (without the row locks it would
    write as planned and leave w1's hand-written project name in place)."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    sync(database, _observations(range(3), 1, "Pending", ["a"]))
    prepared = _prepare(database, _observations(range(3), 2, "Running", ["a"]))
    outcome: list[ingest.BatchResult] = []

    def write() -> None:
        with database.write() as conn:
            outcome.append(ingest.write_prepared(conn, *prepared))

    blocked_while(database, sa.text("UPDATE workloads SET project_name = 'renamed' WHERE name = 'w1'"), write)
    assert outcome[0].applied == 3
    with database.read() as conn:
        names = dict(conn.execute(sa.select(workloads.c.name, workloads.c.project_name)).all())
    assert names == {f"w{n}": "project-1" for n in range(3)}
    assert_rollups_exact(database)


def blocked_while(database: Database, change: sa.Executable, write: Callable[[], object]) -> None:
    """PostgreSQL: ``write`` runs in a thread while another transaction holds ``change`` uncommitted,
    until it waits for a lock (asserted, at most 20 s); then that transaction commits and ``write``
    finishes."""
    other = database.engine.connect()
    transaction = other.begin()
    other.execute(change)
    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _waiting_for_a_lock(database):
            time.sleep(0.05)
        assert _waiting_for_a_lock(database)
    finally:
        transaction.commit()
        other.close()
        writer.join(timeout=30)


def _waiting_for_a_lock(database: Database) -> bool:
    with database.read() as conn:
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)
