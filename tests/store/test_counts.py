"""The trigger-maintained live counts agree with counting the workloads themselves."""

from __future__ import annotations

import random
import uuid

import sqlalchemy as sa

from tests.factories import CLUSTER, wid, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import FullResync, Observation
from workplane.query.compile import Compiler
from workplane.query.filters import WorkloadQuery, parse_filter
from workplane.store import catalog as catalog_store
from workplane.store import ingest
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.schema import workloads

NOW = 1_800_000_000_000
PHASES = ["Pending", "Running", "Completed", "Failed"]
TYPES = ["Training", "Workspace", "Inference", "PyTorchJob"]


def _direct(database: Database, catalog: CatalogSnapshot, query: WorkloadQuery) -> int:
    compiler = Compiler(catalog, NOW)
    with database.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(*compiler.where(query))).scalar_one())


def _aggregate(database: Database, catalog: CatalogSnapshot, query: WorkloadQuery) -> int:
    with database.read() as conn:
        return store.count_from_aggregate(conn, query, catalog=catalog, now_ms=NOW)


def _observation(rng: random.Random, n: int, revision: int) -> Observation:
    project = rng.randrange(3)
    fields = {
        "id": str(wid(f"w{n}")),
        "clusterId": str(CLUSTER),
        "revision": revision,
        "name": f"w{n}",
        "projectId": f"p{project}",
        "projectName": f"project|{project}",  # separators in names must not merge combinations
        "departmentId": f"d{project % 2}",
        "departmentName": f"dept-{project % 2}",
        "type": rng.choice(TYPES),
        "phase": rng.choice(PHASES),
        "createdAt": "2024-05-01T00:00:00Z",
    }
    if rng.random() < 0.3:
        fields["category"] = rng.choice(["Build", "Train", "Deploy"])
    if rng.random() < 0.3:
        fields["priorityClassName"] = rng.choice(["low", "high", "very-high"])
    if rng.random() < 0.15:
        fields["deletedAt"] = "2024-05-02T00:00:00Z"
    return Observation.model_validate(fields)


QUERIES = [
    [],
    ["phase==Running"],
    ["phase!=Running"],
    ["type==Training,phase==Completed"],
    ["projectName=@|1"],
    ["projectId==p2", "departmentName==dept-0"],
    ["category==Train"],
    ["category!=Deploy"],
    ["priority>=100"],
    ["priorityClassName=^very", "clusterId==" + str(CLUSTER)],
    ["departmentId==d1,type=$Job"],
]


def test_counts_follow_every_kind_of_write(database: Database, catalog: CatalogSnapshot) -> None:
    rng = random.Random(7)
    cache = CatalogCache()
    for round_ in range(1, 7):
        batch = [_observation(rng, rng.randrange(60), round_) for _ in range(40)]
        resync = FullResync(id=f"r{round_}", final=True) if round_ == 4 else None
        with database.write() as conn:
            ingest.apply_batch(
                conn,
                cluster_id=str(CLUSTER),
                cluster_name=None,
                observations=batch,
                samples=[],
                resync=resync,
                catalog=cache.get(conn),
                tenant_id=1,
                now_ms=NOW,
            )
        for raw in QUERIES:
            query = WorkloadQuery(terms=parse_filter(raw))
            assert _aggregate(database, catalog, query) == _direct(database, catalog, query), (round_, raw)
    # Store-level writes and the purge move the counts too.
    with database.write() as conn:
        store.create_workload(
            conn, workload("extra", id=uuid.uuid4()), catalog=catalog, tenant_id=1, now_ms=NOW
        )
        store.delete_workload(conn, str(wid("w1")), deleted_at_ms=NOW - 1)
        store.purge_deleted(conn, older_than_ms=NOW)
        conn.execute(workloads.update().where(workloads.c.name == "w2").values(phase="Degraded"))
    for raw in QUERIES:
        query = WorkloadQuery(terms=parse_filter(raw))
        assert _aggregate(database, catalog, query) == _direct(database, catalog, query), raw


def test_counts_follow_a_change_of_type_defaults(database: Database, catalog: CatalogSnapshot) -> None:
    from tests.factories import load

    load(database, workload("a", type="RayJob"), workload("b", type="RayJob", category="Build"))
    query = WorkloadQuery(terms=parse_filter(["category==Deploy"]))
    assert _aggregate(database, catalog, query) == 0
    with database.write() as conn:
        row = conn.execute(sa.text("SELECT id FROM workload_types WHERE name = 'RayJob'")).scalar_one()
        catalog_store.update_type(conn, row, catalog_store.TypeChange("Deploy", None), by="test", now_ms=NOW)
    with database.read() as conn:
        fresh = CatalogCache().get(conn)
    assert _aggregate(database, fresh, query) == 1 == _direct(database, fresh, query)
