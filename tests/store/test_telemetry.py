"""The store's telemetry: rollups and rows agree for every grouping, and an access restriction applies
to every path (rollups, the exact fallback, the pending buckets)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from tests.factories import CLUSTER, sync, wid
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import Observation
from workplane.query.telemetry import GroupKey, TelemetryQuery, TelemetryType
from workplane.store import telemetry as store
from workplane.store.database import Database
from workplane.store.schema import workload_nodepools, workloads

NOW = 1_800_000_000_000
GROUPINGS = [(), *((k,) for k in GroupKey), *itertools.combinations(GroupKey, 2)]


def _observation(rng: random.Random, n: int) -> Observation:
    project = rng.randrange(4)
    phase = rng.choice(["Pending", "Running", "Completed", "Pending"])
    fields: dict[str, Any] = {
        "id": str(wid(f"t{n}")),
        "clusterId": str(CLUSTER),
        "revision": 1,
        "name": f"t{n}",
        "projectId": f"p{project}",
        "projectName": f"project-{project}",
        "departmentId": f"d{project % 2}",
        "departmentName": f"dept-{project % 2}",
        "type": rng.choice(["Training", "Workspace", "RayJob"]),
        "phase": phase,
        "createdAt": "2024-05-01T00:00:00Z",
        "phaseUpdatedAt": f"2027-01-1{rng.choice([3, 4, 5])}T0{rng.randrange(9)}:{rng.randrange(60):02d}:00Z",
        "currentNodePools": rng.choice([[], ["a"], ["a", "b"], ["b", "b"]]),
    }
    if rng.random() < 0.3:
        fields["category"] = "Deploy"
    if rng.random() < 0.6:
        fields["allocatedResources"] = {"gpu": rng.choice([0.5, 1, 3.25])}
    if rng.random() < 0.1:
        fields["deletedAt"] = "2024-06-01T00:00:00Z"
    return Observation.model_validate(fields)


@pytest.fixture
def inventory(database: Database, catalog: CatalogSnapshot) -> None:
    rng = random.Random(5)
    sync(database, [_observation(rng, n) for n in range(120)], now=NOW)


def _restrict(table: sa.Table) -> sa.ColumnElement[bool]:
    """What an access scope would AND in: one project, or a whole department."""
    return sa.or_(table.c.project_id == "p0", table.c.department_id == "d1")


@pytest.mark.no_cover
@pytest.mark.usefixtures("inventory")
@pytest.mark.parametrize("restricted", [False, True])
def test_rollups_and_rows_agree(database: Database, catalog: CatalogSnapshot, restricted: bool) -> None:
    restrict = _restrict if restricted else None
    with database.read() as conn:
        for kind, keys, phases, pool in itertools.product(
            (TelemetryType.WORKLOADS_COUNT, TelemetryType.GPU_ALLOCATION),
            GROUPINGS,
            (None, frozenset({"Running", "Pending"})),
            (None, "a"),
        ):
            query = TelemetryQuery(kind, tuple(keys), nodepool=pool, phases=phases)
            rolled = store._from_rollup(conn, query, catalog, NOW, restrict)
            counted = store._from_rows(conn, query, catalog, NOW, restrict)
            if pool is not None and GroupKey.CURRENT_NODEPOOLS in keys:
                continue  # the one case only the rows answer (tested against the list in tests/api)
            assert rolled == counted, query
        for keys, phases, pool in itertools.product(
            GROUPINGS, (None, frozenset({"Running", "Pending"}), frozenset({"Running"})), (None, "a")
        ):
            query = TelemetryQuery(
                TelemetryType.PENDING_TIME_DISTRIBUTION, tuple(keys), nodepool=pool, phases=phases
            )
            # Young ones read, the oldest bucket from the rollups — or every Pending workload read.
            assert store._pending(conn, query, catalog, NOW, restrict) == store._pending_rows(
                conn, query, catalog, NOW, restrict, None
            ), query


@pytest.mark.usefixtures("inventory")
def test_a_restriction_narrows_every_path(database: Database, catalog: CatalogSnapshot) -> None:
    with database.read() as conn:
        live = conn.execute(sa.select(workloads).where(workloads.c.deleted_at.is_(None))).mappings().all()
        allowed = [r for r in live if r["project_id"] == "p0" or r["department_id"] == "d1"]
        assert 0 < len(allowed) < len(live)

        def total(kind: TelemetryType, **options: Any) -> list[store.TelemetryValue]:
            query = TelemetryQuery(kind, **options)
            return store.workload_telemetry(conn, query, catalog=catalog, now_ms=NOW, restrict=_restrict)

        assert [v.value for v in total(TelemetryType.WORKLOADS_COUNT)] == [str(len(allowed))]
        by_project = total(TelemetryType.WORKLOADS_COUNT, group_by=(GroupKey.PROJECT_ID,))
        assert {v.groups[0].value: v.value for v in by_project} == {
            p: str(n) for p, n in Counter(r["project_id"] for r in allowed).items()
        }
        # The exact fallback: workloads in pool "a", grouped by every pool they are in.
        pooled = total(TelemetryType.WORKLOADS_COUNT, group_by=(GroupKey.CURRENT_NODEPOOLS,), nodepool="a")
        pools: dict[str, set[str]] = {}
        for workload_id, name in conn.execute(
            sa.select(workload_nodepools.c.workload_id, workload_nodepools.c.name)
        ):
            pools.setdefault(workload_id, set()).add(name)
        in_a = [pools[r["id"]] for r in allowed if "a" in pools.get(r["id"], set())]
        assert {v.groups[0].value: v.value for v in pooled} == {
            p: str(n) for p, n in Counter(p for names in in_a for p in names).items()
        }
        assert {"a", "b"} <= {v.groups[0].value for v in pooled}
        # The pending buckets: up to two and a half days before NOW (2027-01-15T08:00Z), some ahead of it.
        pending = total(TelemetryType.PENDING_TIME_DISTRIBUTION)
        ages = [NOW - r["phase_updated_at"] for r in allowed if r["phase"] == "Pending"]
        buckets = [
            sum(a < 300_000 for a in ages),
            sum(300_000 <= a < 3_600_000 for a in ages),
            sum(3_600_000 <= a < 86_400_000 for a in ages),
            sum(a >= 86_400_000 for a in ages),
        ]
        assert [v.value for v in pending] == [str(n) for n in buckets]
        assert buckets[1]
        assert buckets[2]
        assert buckets[3]
