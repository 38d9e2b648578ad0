"""The trigger-maintained live counts (and the telemetry rollups: allocated GPUs, counts per current node
pool) agree with counting the workloads themselves, through every kind of write."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from tests.factories import CLUSTER, create_workload, sync, sync_in, wid, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import FullResync, Observation
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import WorkloadQuery, parse_filter
from workplane.store import catalog as catalog_store
from workplane.store import migrate
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.compile import Compiler
from workplane.store.database import Database
from workplane.store.schema import (
    COUNTED_COLUMNS,
    POOL_COUNTED_COLUMNS,
    triggers_deferred,
    workload_counts,
    workload_nodepools,
    workload_pool_counts,
    workloads,
)

EVERYTHING = ScopeSet.everything()

NOW = 1_800_000_000_000
PHASES = ["Pending", "Running", "Completed", "Failed"]
TYPES = ["Training", "Workspace", "Inference", "PyTorchJob"]


def _direct(database: Database, catalog: CatalogSnapshot, query: WorkloadQuery) -> int:
    compiler = Compiler(catalog, NOW, database.sql)
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
    if rng.random() < 0.7:
        fields["allocatedResources"] = {"gpu": rng.choice([0, 0.25, 0.5, 1, 2, 7.5])}
    # Pools: none, one, two, and the same pool named twice (counted once).
    fields["currentNodePools"] = rng.choice([[], ["a"], ["b"], ["a", "b"], ["b", "a", "b"]])
    return Observation.model_validate(fields)


def _micro(gpu: float | None) -> int:
    return round((gpu or 0) * 1_000_000)


def assert_rollups_exact(database: Database) -> None:
    """Both rollups equal what the live workloads and their pool rows say, recomputed here."""
    with database.read() as conn:
        live = conn.execute(sa.select(workloads).where(workloads.c.deleted_at.is_(None))).mappings().all()
        pools: dict[str, set[str]] = {}
        for workload_id, name in conn.execute(
            sa.select(workload_nodepools.c.workload_id, workload_nodepools.c.name)
        ):
            pools.setdefault(workload_id, set()).add(name)
        counts = {
            tuple(r[c] for c in COUNTED_COLUMNS): (r["n"], r["gpu_micro"])
            for r in conn.execute(sa.select(workload_counts)).mappings()
            if r["n"] or r["gpu_micro"]
        }
        pooled = {
            (*(r[c] for c in POOL_COUNTED_COLUMNS), r["nodepool"]): (r["n"], r["gpu_micro"])
            for r in conn.execute(sa.select(workload_pool_counts)).mappings()
            if r["n"] or r["gpu_micro"]
        }
    expected_n: Counter[tuple[object, ...]] = Counter()
    expected_gpu: Counter[tuple[object, ...]] = Counter()
    expected_pool_n: Counter[tuple[object, ...]] = Counter()
    expected_pool_gpu: Counter[tuple[object, ...]] = Counter()
    for row in live:
        key = tuple(row[c] for c in COUNTED_COLUMNS)
        expected_n[key] += 1
        expected_gpu[key] += _micro(row["allocated_gpu"])
        for pool in pools.get(row["id"], set()):
            pool_key = (*(row[c] for c in POOL_COUNTED_COLUMNS), pool)
            expected_pool_n[pool_key] += 1
            expected_pool_gpu[pool_key] += _micro(row["allocated_gpu"])
    assert counts == {k: (expected_n[k], expected_gpu[k]) for k in expected_n}
    assert pooled == {k: (expected_pool_n[k], expected_pool_gpu[k]) for k in expected_pool_n}


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
    for round_ in range(1, 7):
        batch = [_observation(rng, rng.randrange(60), round_) for _ in range(40)]
        resync = FullResync(id=f"r{round_}", final=True) if round_ == 4 else None
        sync(database, batch, resync=resync, now=NOW)
        for raw in QUERIES:
            query = WorkloadQuery(scope=EVERYTHING, terms=parse_filter(raw))
            assert _aggregate(database, catalog, query) == _direct(database, catalog, query), (round_, raw)
        assert_rollups_exact(database)
    # Store-level writes and the purge move the counts too.
    with database.write() as conn:
        create_workload(conn, workload("extra", id=uuid.uuid4()), catalog=catalog, tenant_id=1, now_ms=NOW)
        store.delete_workload(conn, str(wid("w1")), deleted_at_ms=NOW - 1)
        store.purge_deleted(conn, older_than_ms=NOW)
        conn.execute(workloads.update().where(workloads.c.name == "w2").values(phase="Degraded"))
    for raw in QUERIES:
        query = WorkloadQuery(scope=EVERYTHING, terms=parse_filter(raw))
        assert _aggregate(database, catalog, query) == _direct(database, catalog, query), raw
    assert_rollups_exact(database)


# Hand-written SQL, one statement at a time: the triggers, not the store functions, keep the rollups.
HAND_WRITTEN = [
    "UPDATE workloads SET allocated_gpu = 3.25 WHERE phase = 'Running'",
    "UPDATE workloads SET phase = 'Stopped', allocated_gpu = NULL WHERE name IN ('w1', 'w2', 'w3')",
    "UPDATE workloads SET own_category = 'Deploy' WHERE type = 'Training'",
    "UPDATE workloads SET deleted_at = 1 WHERE name IN ('w4', 'w5')",
    "UPDATE workloads SET deleted_at = NULL WHERE deleted_at IS NOT NULL",
    "UPDATE workloads SET project_id = 'moved', department_id = 'd9', cluster_id = 'c2' WHERE name = 'w6'",
    "UPDATE workload_nodepools SET name = 'c' WHERE name = 'a'",
    "UPDATE workload_nodepools SET name = 'b' WHERE name = 'c'",
    "DELETE FROM workload_nodepools WHERE position = 0",
    "INSERT INTO workload_nodepools (workload_id, position, name) "
    "SELECT id, 7, 'b' FROM workloads WHERE name IN ('w7', 'w8', 'w9')",
    "INSERT INTO workload_nodepools (workload_id, position, name) "
    "SELECT id, 8, 'b' FROM workloads WHERE name IN ('w7', 'w10')",
    "DELETE FROM workload_nodepools WHERE position = 7",
    "DELETE FROM workloads WHERE name IN ('w7', 'w11') OR phase = 'Failed'",
    "UPDATE workloads SET updated_at = updated_at + 1",
    "DELETE FROM workloads",
]


def test_rollups_follow_hand_written_sql(database: Database, catalog: CatalogSnapshot) -> None:
    rng = random.Random(11)
    batch = [_observation(rng, n, 1) for n in range(60)]
    sync(database, batch, now=NOW)
    assert_rollups_exact(database)
    for statement in HAND_WRITTEN:
        with database.write() as conn:
            conn.execute(sa.text(statement))
        assert_rollups_exact(database), statement


def test_counts_follow_a_change_of_type_defaults(database: Database, catalog: CatalogSnapshot) -> None:
    from tests.factories import load

    load(database, workload("a", type="RayJob"), workload("b", type="RayJob", category="Build"))
    query = WorkloadQuery(scope=EVERYTHING, terms=parse_filter(["category==Deploy"]))
    assert _aggregate(database, catalog, query) == 0
    with database.write() as conn:
        row = conn.execute(sa.text("SELECT id FROM workload_types WHERE name = 'RayJob'")).scalar_one()
        catalog_store.update_type(conn, row, catalog_store.TypeChange("Deploy", None), by="test", now_ms=NOW)
    with database.read() as conn:
        fresh = CatalogCache().get(conn)
    assert _aggregate(database, fresh, query) == 1 == _direct(database, fresh, query)


def test_batch_gpu_units_round_as_the_triggers_do(database: Database) -> None:
    """A sync batch counts its rows itself (store.rollups); another writer later takes them away through
    the triggers, so both must turn a GPU amount into the same millionths — ties included, which the
    two databases round differently."""
    amounts = [None, 0.0, 0.5, 2.5e-6, 3.5e-6, 1.0000005, 7.0000025, 0.1 + 0.2, 1e-7, 123.4567895]
    with database.read() as conn:
        for amount in amounts:
            expected = conn.execute(
                sa.text("SELECT CAST(round(coalesce(:v, 0) * 1000000) AS BIGINT)"),
                {"v": amount},
            ).scalar_one()
            assert database.sql.gpu_micro(amount) == expected, amount


def test_a_batch_leaves_the_rollup_triggers_on(database: Database, catalog: CatalogSnapshot) -> None:
    """The triggers stand aside only inside the batch's own writes: afterwards (same transaction and
    later ones) every other write is counted again."""
    rng = random.Random(3)
    batch = [_observation(rng, n, 1) for n in range(20)]
    with database.write() as conn:
        sync_in(conn, batch, now=NOW)
        conn.execute(workloads.update().values(phase="Unknown"))  # same transaction, after the batch
    assert_rollups_exact(database)
    with database.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(triggers_deferred)).scalar_one() == 0


def test_migration_0009_guards_the_triggers_and_goes_back_down(tmp_path: Path) -> None:
    """SQLite: 0009 puts the guard on every rollup trigger and on the text index's insert trigger (not
    on its update and delete triggers); its downgrade takes it off and drops the guard table."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'migrate.db'}")

    def guarded() -> dict[str, bool]:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
            # The pods' counts (0016) are kept by their triggers in every transaction, sync batches
            # included; their text index's insert trigger is guarded from 0018 on (its own test).
            return {name: "triggers_deferred" in sql for name, sql in rows if not name.startswith("pod_")}

    try:
        migrate.upgrade(engine)
        on = guarded()
        assert {name for name, yes in on.items() if not yes} == {
            "workload_text_update",
            "workload_text_delete",
        }
        assert len(on) == 12
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), "0008")
        assert set(guarded().values()) == {False}
        assert "triggers_deferred" not in sa.inspect(engine).get_table_names()
        migrate.upgrade(engine)
        assert guarded() == on
    finally:
        engine.dispose()
