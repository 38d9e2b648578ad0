"""The store's write and read functions: phase clock, completion, deletion, get, organisation tables,
validation, retention purge, and the migrated schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError

from tests.factories import at, create_workload, update_workload, wid, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.record import WorkloadIn, render
from workplane.domain.scopes import ScopeSet
from workplane.domain.timefmt import to_ms
from workplane.query.filters import Sort, WorkloadQuery, parse_filter
from workplane.store import migrate
from workplane.store import workloads as store
from workplane.store.database import Database
from workplane.store.schema import clusters, departments, metadata, projects, workload_nodepools, workloads

EVERYTHING = ScopeSet.everything()

SPEC = Path(__file__).parents[2] / "src" / "workplane" / "api" / "spec" / "runai-openapi-workloads.json"

T0 = at("2024-05-01T12:00:00Z")
T0_MS = to_ms(T0)
MINUTE = 60_000


def ms(text: str) -> int:
    return to_ms(at(text))


def create(database: Database, catalog: CatalogSnapshot, record: WorkloadIn, now_ms: int = T0_MS) -> str:
    with database.write() as conn:
        return create_workload(conn, record, catalog=catalog, tenant_id=1, now_ms=now_ms)


def update(database: Database, catalog: CatalogSnapshot, record: WorkloadIn, now_ms: int) -> None:
    with database.write() as conn:
        update_workload(conn, record, catalog=catalog, tenant_id=1, now_ms=now_ms)


def served(database: Database, catalog: CatalogSnapshot, label: str, now_ms: int) -> dict[str, Any]:
    """The workload as GET /workloads/{id} serves it at ``now_ms``."""
    with database.read() as conn:
        row = store.get_workload(conn, str(wid(label)))
    assert row is not None
    parsed: dict[str, Any] = orjson.loads(render(row, catalog, now_ms, pending_messages=row.pending_messages))
    return parsed


def matching(
    database: Database, catalog: CatalogSnapshot, now_ms: int, *terms: str, deleted: bool = False
) -> int:
    with database.read() as conn:
        return store.count_workloads(
            conn,
            WorkloadQuery(scope=EVERYTHING, deleted=deleted, terms=parse_filter(list(terms))),
            catalog=catalog,
            now_ms=now_ms,
        )


# --- phase clock ------------------------------------------------------------------------------------


def test_pending_ten_minutes_then_running(database: Database, catalog: CatalogSnapshot) -> None:
    create(database, catalog, workload("w", phase="Pending", createdAt=T0))
    # While Pending, the pending time grows with the clock.
    assert served(database, catalog, "w", T0_MS + 5 * MINUTE)["totalPendingTimeSeconds"] == 300
    assert matching(database, catalog, T0_MS + 5 * MINUTE, "totalPendingTimeSeconds==300") == 1
    update(
        database,
        catalog,
        workload("w", phase="Running", createdAt=T0, phaseUpdatedAt=at("2024-05-01T12:10:00Z")),
        now_ms=T0_MS + 11 * MINUTE,
    )
    for minutes in (10, 15, 75):
        now = T0_MS + minutes * MINUTE
        one = served(database, catalog, "w", now)
        assert one["totalPendingTimeSeconds"] == 600
        assert one["totalRunningTimeSeconds"] == (minutes - 10) * 60
        assert one["phase"] == "Running"
        assert one["phaseUpdatedAt"] == "2024-05-01T12:10:00.000Z"
        # Filters read the same values as served, at the same instant.
        assert matching(database, catalog, now, "totalPendingTimeSeconds==600") == 1
        assert matching(database, catalog, now, f"totalRunningTimeSeconds=={(minutes - 10) * 60}") == 1
        assert matching(database, catalog, now, f"totalRunningTimeSeconds>={(minutes - 10) * 60 + 1}") == 0
    # Back to Pending for a minute, then Completed: both intervals closed, totals kept.
    update(
        database,
        catalog,
        workload("w", phase="Pending", createdAt=T0, phaseUpdatedAt=at("2024-05-01T13:00:00Z")),
        now_ms=ms("2024-05-01T13:00:00Z"),
    )
    update(
        database,
        catalog,
        workload("w", phase="Completed", createdAt=T0, phaseUpdatedAt=at("2024-05-01T13:01:00Z")),
        now_ms=ms("2024-05-01T13:01:00Z"),
    )
    one = served(database, catalog, "w", ms("2024-06-01T00:00:00Z"))
    assert one["totalPendingTimeSeconds"] == 660
    assert one["totalRunningTimeSeconds"] == 50 * 60
    assert one["completedAt"] == "2024-05-01T13:01:00.000Z"


def test_sub_second_intervals_accumulate_in_milliseconds(
    database: Database, catalog: CatalogSnapshot
) -> None:
    create(database, catalog, workload("w", phase="Pending", createdAt=T0))
    update(
        database,
        catalog,
        workload("w", phase="Running", createdAt=T0, phaseUpdatedAt=at("2024-05-01T12:00:00.600Z")),
        now_ms=T0_MS + 600,
    )
    update(
        database,
        catalog,
        workload("w", phase="Pending", createdAt=T0, phaseUpdatedAt=at("2024-05-01T12:00:01Z")),
        now_ms=T0_MS + 1000,
    )
    # 600 ms pending, then 400 ms running, then pending again: at 12:00:01.500, 1 100 ms pending.
    one = served(database, catalog, "w", T0_MS + 1500)
    assert (one["totalPendingTimeSeconds"], one["totalRunningTimeSeconds"]) == (1, 0)
    assert matching(database, catalog, T0_MS + 1500, "totalPendingTimeSeconds==1") == 1
    assert matching(database, catalog, T0_MS + 1399, "totalPendingTimeSeconds==0") == 1


def test_an_update_without_phase_updated_at(database: Database, catalog: CatalogSnapshot) -> None:
    """A phase change reported without phaseUpdatedAt happens at ``now``; an update that keeps the
    phase keeps its phaseUpdatedAt and its clock."""
    create(database, catalog, workload("w", phase="Pending", createdAt=T0))
    update(
        database, catalog, workload("w", phase="Pending", createdAt=T0, runningPods=0), now_ms=T0_MS + MINUTE
    )
    assert served(database, catalog, "w", T0_MS + 2 * MINUTE)["phaseUpdatedAt"] == "2024-05-01T12:00:00.000Z"
    update(database, catalog, workload("w", phase="Running", createdAt=T0), now_ms=T0_MS + 3 * MINUTE)
    one = served(database, catalog, "w", T0_MS + 4 * MINUTE)
    assert one["phaseUpdatedAt"] == "2024-05-01T12:03:00.000Z"
    assert (one["totalPendingTimeSeconds"], one["totalRunningTimeSeconds"]) == (180, 60)
    update(database, catalog, workload("w", phase="Running", createdAt=T0), now_ms=T0_MS + 5 * MINUTE)
    one = served(database, catalog, "w", T0_MS + 6 * MINUTE)
    assert one["phaseUpdatedAt"] == "2024-05-01T12:03:00.000Z"
    assert (one["totalPendingTimeSeconds"], one["totalRunningTimeSeconds"]) == (180, 180)


def test_a_clock_ahead_of_ours_never_serves_negative_time(
    database: Database, catalog: CatalogSnapshot
) -> None:
    create(database, catalog, workload("w", phase="Running", createdAt=T0, totalRunningTimeSeconds=5))
    now = T0_MS - 30_000  # the cluster said the phase changed 30 s in our future
    one = served(database, catalog, "w", now)
    assert one["totalRunningTimeSeconds"] == 5
    assert matching(database, catalog, now, "totalRunningTimeSeconds==5") == 1
    assert matching(database, catalog, now, "totalRunningTimeSeconds<=4") == 0


def test_initial_totals_count_before_the_current_phase(database: Database, catalog: CatalogSnapshot) -> None:
    create(
        database,
        catalog,
        workload("w", phase="Running", createdAt=T0, totalPendingTimeSeconds=42, totalRunningTimeSeconds=8),
    )
    one = served(database, catalog, "w", T0_MS + 10_000)
    assert (one["totalPendingTimeSeconds"], one["totalRunningTimeSeconds"]) == (42, 18)


# --- completedAt ------------------------------------------------------------------------------------


def test_completed_at(database: Database, catalog: CatalogSnapshot) -> None:
    create(
        database,
        catalog,
        workload("done", phase="Completed", createdAt=T0, phaseUpdatedAt=at("2024-05-01T13:00:00Z")),
    )
    create(database, catalog, workload("failed", phase="Failed", createdAt=T0))
    create(
        database,
        catalog,
        workload("given", phase="Failed", createdAt=T0, completedAt=at("2024-05-01T12:30:00.123456Z")),
    )
    create(database, catalog, workload("live", phase="Running", createdAt=T0))
    now = ms("2024-05-02T00:00:00Z")
    assert served(database, catalog, "done", now)["completedAt"] == "2024-05-01T13:00:00.000Z"
    assert served(database, catalog, "failed", now)["completedAt"] == "2024-05-01T12:00:00.000Z"
    assert served(database, catalog, "given", now)["completedAt"] == "2024-05-01T12:30:00.123Z"
    assert served(database, catalog, "live", now)["completedAt"] is None

    # Running → Completed: completedAt is the phase change; a later report of the same phase keeps it.
    update(
        database,
        catalog,
        workload("live", phase="Completed", createdAt=T0, phaseUpdatedAt=at("2024-05-01T14:00:00Z")),
        now_ms=now,
    )
    assert served(database, catalog, "live", now)["completedAt"] == "2024-05-01T14:00:00.000Z"
    update(
        database,
        catalog,
        workload("live", phase="Completed", createdAt=T0, phaseUpdatedAt=at("2024-05-01T15:00:00Z")),
        now_ms=now,
    )
    assert served(database, catalog, "live", now)["completedAt"] == "2024-05-01T14:00:00.000Z"
    # Completed → Failed is a new terminal phase; leaving the terminal phases clears it.
    update(
        database,
        catalog,
        workload("live", phase="Failed", createdAt=T0, phaseUpdatedAt=at("2024-05-01T16:00:00Z")),
        now_ms=now,
    )
    assert served(database, catalog, "live", now)["completedAt"] == "2024-05-01T16:00:00.000Z"
    update(
        database,
        catalog,
        workload("live", phase="Running", createdAt=T0, phaseUpdatedAt=at("2024-05-01T17:00:00Z")),
        now_ms=now,
    )
    assert served(database, catalog, "live", now)["completedAt"] is None
    assert matching(database, catalog, now, "completedAt>=2024-05-01") == 3


# --- deletion -----------------------------------------------------------------------------------------


def test_delete_stops_the_clocks_and_sets_deleted_at(database: Database, catalog: CatalogSnapshot) -> None:
    create(database, catalog, workload("run", phase="Running", createdAt=T0, currentNodePools=["p"]))
    create(database, catalog, workload("pend", phase="Pending", createdAt=T0))
    deleted_ms = T0_MS + 10 * MINUTE
    with database.write() as conn:
        store.delete_workload(conn, str(wid("run")), deleted_at_ms=deleted_ms)
        store.delete_workload(conn, str(wid("pend")), deleted_at_ms=deleted_ms)
        # Deleting again changes nothing (the first deletion time stays).
        store.delete_workload(conn, str(wid("run")), deleted_at_ms=deleted_ms + MINUTE)
    for now in (deleted_ms, deleted_ms + 60 * MINUTE):
        run = served(database, catalog, "run", now)
        pend = served(database, catalog, "pend", now)
        assert run["totalRunningTimeSeconds"] == 600
        assert pend["totalPendingTimeSeconds"] == 600
        assert run["deletedAt"] == pend["deletedAt"] == "2024-05-01T12:10:00.000Z"
        assert run["updatedAt"] == "2024-05-01T12:10:00.000Z"
        # It keeps its last phase and everything else it reported.
        assert run["phase"] == "Running"
        assert run["currentNodePools"] == ["p"]
        assert matching(database, catalog, now, "totalRunningTimeSeconds==600", deleted=True) == 1
    assert matching(database, catalog, deleted_ms) == 0
    assert matching(database, catalog, deleted_ms, "deletedAt==2024-05-01T12:10:00Z", deleted=True) == 2
    with database.read() as conn:
        page = store.list_workloads(
            conn,
            WorkloadQuery(scope=EVERYTHING),
            sort=Sort(),
            offset=0,
            limit=10,
            catalog=catalog,
            now_ms=deleted_ms,
        )
    assert page.rows == []


def test_delete_unknown_workload(database: Database, catalog: CatalogSnapshot) -> None:
    with database.write() as conn, pytest.raises(store.WorkloadNotFound):
        store.delete_workload(conn, str(wid("nobody")), deleted_at_ms=T0_MS)


def test_update_of_a_deleted_workload_keeps_it_deleted_and_stopped(
    database: Database, catalog: CatalogSnapshot
) -> None:
    create(database, catalog, workload("w", phase="Running", createdAt=T0))
    with database.write() as conn:
        store.delete_workload(conn, str(wid("w")), deleted_at_ms=T0_MS + MINUTE)
    update(
        database,
        catalog,
        workload("w", phase="Pending", createdAt=T0, phaseUpdatedAt=at("2024-05-01T12:05:00Z")),
        now_ms=T0_MS + 5 * MINUTE,
    )
    one = served(database, catalog, "w", T0_MS + 60 * MINUTE)
    assert one["deletedAt"] == "2024-05-01T12:01:00.000Z"
    assert (one["totalPendingTimeSeconds"], one["totalRunningTimeSeconds"]) == (0, 60)


# --- purge --------------------------------------------------------------------------------------------


def test_purge_deleted_respects_the_cutoff(database: Database, catalog: CatalogSnapshot) -> None:
    for label in ("old", "edge", "new", "live"):
        create(database, catalog, workload(label, createdAt=T0, currentNodePools=["p", "q"]))
    with database.write() as conn:
        store.delete_workload(conn, str(wid("old")), deleted_at_ms=1_000)
        store.delete_workload(conn, str(wid("edge")), deleted_at_ms=2_000)
        store.delete_workload(conn, str(wid("new")), deleted_at_ms=3_000)
    with database.write() as conn:
        assert store.purge_deleted(conn, older_than_ms=2_000) == 1
    with database.write() as conn:
        assert store.purge_deleted(conn, older_than_ms=2_000) == 0
    with database.read() as conn:
        left = set(conn.execute(sa.select(workloads.c.name)).scalars())
        pools = set(conn.execute(sa.select(workload_nodepools.c.workload_id)).scalars())
    assert left == {"edge", "new", "live"}
    assert pools == {str(wid(x)) for x in ("edge", "new", "live")}


# --- get ------------------------------------------------------------------------------------------------


def _workload_schema() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads(SPEC.read_text())["components"]["schemas"]
    workload_schema: dict[str, Any] = schemas["Workload"]
    return workload_schema


def test_get_returns_workload_detailed(database: Database, catalog: CatalogSnapshot) -> None:
    messages = [
        {"nodePool": "default", "phaseReason": "OverLimit", "reason": "over limit", "userMessage": None}
    ]
    create(
        database,
        catalog,
        workload("w", phase="Pending", createdAt=T0, pendingSchedulingMessages=messages, namespace="ns"),
    )
    children = [{"id": str(wid("child")), "type": "Pod"}]
    create(database, catalog, workload("bare", createdAt=T0, childrenIds=children))
    one = served(database, catalog, "w", T0_MS)
    schema = _workload_schema()
    # Every readable field of the schema (childrenIds is writeOnly), except optional strings the
    # schema does not allow to be null, which are left out while unknown; required ones are present.
    properties = schema["properties"]
    readable = {k for k, v in properties.items() if not v.get("writeOnly")}
    optional_strings = {
        k
        for k, v in properties.items()
        if k not in schema["required"]
        and v.get("type") == "string"
        and not v.get("nullable")
        and "format" not in v
    }
    assert set(one) == (readable - optional_strings) | {"pendingSchedulingMessages"}
    assert "childrenIds" not in one
    assert set(schema["required"]) <= set(one)
    assert one["pendingSchedulingMessages"] == [
        {k: v for k, v in m.items() if v is not None} for m in messages
    ]
    assert one["id"] == str(wid("w"))
    assert one["namespace"] == "ns"
    assert one["tenantId"] == 1
    assert one["deletedAt"] is None
    bare = served(database, catalog, "bare", T0_MS)
    assert bare["pendingSchedulingMessages"] is None
    assert "childrenIds" not in bare  # accepted from agents, never served (writeOnly)
    assert bare["namespace"] == "runai-proj-a"
    assert (bare["category"], bare["priorityClassName"], bare["priority"], bare["preemptible"]) == (
        "Train",
        "low",
        40,
        True,
    )
    # A listed row renders the same record, without pendingSchedulingMessages.
    with database.read() as conn:
        page = store.list_workloads(
            conn,
            WorkloadQuery(scope=EVERYTHING),
            sort=Sort(),
            offset=0,
            limit=10,
            catalog=catalog,
            now_ms=T0_MS,
        )
    listed = {r.id: orjson.loads(render(r, catalog, T0_MS)) for r in page.rows}
    assert set(listed[str(wid("w"))]) == readable - optional_strings
    assert listed[str(wid("w"))] == {k: v for k, v in one.items() if k != "pendingSchedulingMessages"}
    with database.read() as conn:
        assert store.get_workload(conn, str(wid("nobody"))) is None


def test_own_priority_and_preemptible(database: Database, catalog: CatalogSnapshot) -> None:
    create(database, catalog, workload("a", createdAt=T0, priorityClassName="very-high"))
    create(database, catalog, workload("b", createdAt=T0, priorityClassName="very-high", preemptible=True))
    create(database, catalog, workload("c", createdAt=T0, type="Workspace", category="Deploy"))
    a, b, c = (served(database, catalog, x, T0_MS) for x in "abc")
    assert (a["priorityClassName"], a["priority"], a["preemptible"]) == ("very-high", 150, False)
    assert b["preemptible"] is True
    assert (c["category"], c["priorityClassName"], c["priority"], c["preemptible"]) == (
        "Deploy",
        "high",
        125,
        False,
    )


# --- organisation tables and validation --------------------------------------------------------------


def test_organisation_tables_are_upserted(database: Database, catalog: CatalogSnapshot) -> None:
    create(database, catalog, workload("a", createdAt=T0))
    create(
        database,
        catalog,
        workload(
            "b", createdAt=T0, projectId="2", projectName="proj-b", departmentId="20", departmentName="dept-y"
        ),
    )
    update(
        database,
        catalog,
        workload("a", createdAt=T0, projectName="proj-a2", departmentName="dept-x2"),
        now_ms=T0_MS,
    )
    with database.read() as conn:
        cluster_rows = conn.execute(sa.select(clusters.c.id)).scalars().all()
        department_rows = dict(conn.execute(sa.select(departments.c.id, departments.c.name)).tuples().all())
        project_rows = {r.id: (r.name, r.department_id) for r in conn.execute(sa.select(projects)).all()}
    assert len(cluster_rows) == 1
    assert department_rows == {"10": "dept-x2", "20": "dept-y"}
    assert project_rows == {"1": ("proj-a2", "10"), "2": ("proj-b", "20")}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"type": "NoSuchType"}, "unknown workload type"),
        ({"category": "Research"}, "unknown category"),
        ({"priorityClassName": "urgent"}, "unknown priority"),
    ],
)
def test_unknown_type_category_priority_rejected(
    database: Database, catalog: CatalogSnapshot, fields: dict[str, str], complaint: str
) -> None:
    with pytest.raises(store.InvalidWorkload, match=complaint):
        create(database, catalog, workload("bad", createdAt=T0, **fields))
    create(database, catalog, workload("good", createdAt=T0))
    with pytest.raises(store.InvalidWorkload, match=complaint):
        update(database, catalog, workload("good", createdAt=T0, **fields), now_ms=T0_MS)
    with database.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(workloads)).scalar_one() == 1
        assert conn.execute(sa.select(workloads.c.type)).scalar_one() == "Training"


def test_update_needs_an_existing_id(database: Database, catalog: CatalogSnapshot) -> None:
    with pytest.raises(store.WorkloadNotFound):
        update(database, catalog, workload("ghost", createdAt=T0), now_ms=T0_MS)
    with pytest.raises(store.InvalidWorkload):
        update(database, catalog, workload("ghost", createdAt=T0, id=None), now_ms=T0_MS)


def test_batch_create_returns_ids_in_order(database: Database, catalog: CatalogSnapshot) -> None:
    records = [workload(f"w{i}", createdAt=T0, currentNodePools=[f"p{i}"]) for i in range(5)]
    records.append(workload("anonymous", createdAt=T0, id=None))
    with database.write() as conn:
        ids = store.create_workloads(conn, records, catalog=catalog, tenant_id=1, now_ms=T0_MS)
        assert store.create_workloads(conn, [], catalog=catalog, tenant_id=1, now_ms=T0_MS) == []
    assert ids[:5] == [str(wid(f"w{i}")) for i in range(5)]
    assert len(set(ids)) == 6
    assert matching(database, catalog, T0_MS, "nodepool==p3") == 1


# --- schema ------------------------------------------------------------------------------------------


def test_single_migration_head() -> None:
    assert len(migrate.heads()) == 1


def test_the_scripts_names_give_the_head() -> None:
    """``migrate.newest_revision`` (a start's check, without Alembic) reads the head from the names:
    each script is ``<revision>_<slug>.py`` and revises one numbered lower."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.newest_revision() == migrate.heads()[0]
    revisions = {script.revision: script for script in scripts.walk_revisions()}
    names = [path.name for path in migrate.VERSIONS_DIR.glob("*.py") if path.name != "__init__.py"]
    assert sorted(name.split("_", 1)[0] for name in names) == sorted(revisions)
    for number, script in revisions.items():
        assert script.down_revision is None or str(script.down_revision) < number, number


def test_a_start_on_a_store_at_the_head_imports_neither_alembic_nor_httpx(empty_url: str) -> None:
    """Every start but the first after an upgrade: the revision read from the store, no Alembic
    imported; and no httpx unless Prometheus is configured (a fresh interpreter, as a server
    process starts: its app, its command line and the store's check)."""
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.newest_revision()
    engine.dispose()
    program = (
        "import sys, sqlalchemy as sa\n"
        "import workplane.app, workplane.cli\n"
        "from workplane.store import migrate\n"
        f"migrate.upgrade(sa.create_engine({empty_url!r}))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako', 'httpx', 'rich'}))\n"
    )
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_a_store_behind_the_head_is_migrated_and_a_fresh_one_reads_none(empty_url: str) -> None:
    engine = sa.create_engine(empty_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine, "0020")
    assert migrate.current_revision(engine) == "0020"
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.newest_revision()
    engine.dispose()


# The clock indexes on expressions (migration 0020): SQLite's reflection skips them, ``include_object``
# leaves them out of the comparison, and ``test_migration_0020_*`` checks them by name.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrated_schema_equals_metadata(database: Database) -> None:
    with database.engine.connect() as conn:
        # The same comparison options as the migration environment (env.py), including its filter
        # for the text-search objects that migrations create outside ``schema.metadata``.
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": migrate.include_object}
        )
        differences = compare_metadata(context, metadata)
        current = MigrationContext.configure(conn).get_current_revision()
    assert differences == []
    assert current == migrate.heads()[0]


CLOCK_INDEXES = {
    f"ix_workloads_{clock}_{kind}"
    for clock in ("pending", "running")
    for kind in ("stopped", "open", "since")
}


def _workload_indexes(engine: sa.Engine, table: str = "workloads") -> set[str]:
    """The names of a table's indexes (the workloads'), read from the catalog (SQLite's reflection
    skips the expression indexes)."""
    statement = (
        f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'"
        if engine.dialect.name == "sqlite"
        else f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'"
    )
    with engine.connect() as conn:
        return set(conn.exec_driver_sql(statement).scalars())


def test_migration_0020_adds_the_clock_indexes_and_goes_back_down(empty_url: str) -> None:
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine)
    assert _workload_indexes(engine) >= CLOCK_INDEXES
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0019")
    assert not CLOCK_INDEXES & _workload_indexes(engine)
    migrate.upgrade(engine)
    assert _workload_indexes(engine) >= CLOCK_INDEXES
    engine.dispose()


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "a\x00b"},
        {"projectName": "p\x00"},
        {"submittedBy": "\x00"},
        {"distributedFramework": "x\x00"},
        {"currentNodePools": ["ok", "p\x00"]},
        {"images": ["i\x00"]},
    ],
)
def test_nul_characters_are_rejected_before_the_database(fields: dict[str, Any]) -> None:
    """PostgreSQL text cannot hold NUL: the record is invalid (a 400 for an agent), not a 500."""
    with pytest.raises(ValidationError, match="NUL"):
        workload("w", createdAt=T0, **fields)


def test_nul_inside_json_documents_is_stored(database: Database, catalog: CatalogSnapshot) -> None:
    create(database, catalog, workload("w", createdAt=T0, environmentVariables={"K": "a\x00b"}, command="x"))
    assert served(database, catalog, "w", T0_MS)["environmentVariables"] == {"K": "a\x00b"}


def _statistics(engine: sa.Engine) -> set[str]:
    """The names of the extended statistics objects (PostgreSQL; none on SQLite)."""
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT stxname FROM pg_statistic_ext").scalars())


def test_migration_0025_adds_the_completion_day_index_and_goes_back_down(empty_url: str) -> None:
    """The live completed workloads by day of completion, then creation time (decision 0022, "A
    completedAt range in the creation order"), and on PostgreSQL the day's statistics."""
    engine = sa.create_engine(empty_url)

    postgresql = engine.dialect.name == "postgresql"
    migrate.upgrade(engine)
    assert "ix_workloads_completed_day" in _workload_indexes(engine)
    assert ("st_workloads_completed_day" in _statistics(engine)) == postgresql
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0024")
    assert "ix_workloads_completed_day" not in _workload_indexes(engine)
    assert "st_workloads_completed_day" not in _statistics(engine)
    migrate.upgrade(engine)
    assert "ix_workloads_completed_day" in _workload_indexes(engine)
    engine.dispose()


def test_migration_0027_adds_the_project_completed_index_and_goes_back_down(empty_url: str) -> None:
    """Each project's live completed workloads by completion time (``tests/store/test_project_completed``)."""
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine)
    assert "ix_workloads_live_project_completed" in _workload_indexes(engine)
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0026")
    assert "ix_workloads_live_project_completed" not in _workload_indexes(engine)
    migrate.upgrade(engine)
    assert "ix_workloads_live_project_completed" in _workload_indexes(engine)
    engine.dispose()


def _index_sql(engine: sa.Engine, name: str) -> str:
    """An index's definition as the database states it."""
    statement = (
        "SELECT sql FROM sqlite_master WHERE name = :name"
        if engine.dialect.name == "sqlite"
        else "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    )
    with engine.connect() as conn:
        return str(conn.execute(sa.text(statement), {"name": name}).scalar_one())


def test_migration_0028_puts_the_scopes_in_the_name_index_and_goes_back_down(empty_url: str) -> None:
    """The live name index holds the scopes' columns (``tests/store/test_scoped_sorts``)."""
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine)
    held = "cluster_id, department_id, project_id, deleted_at"
    assert held in _index_sql(engine, "ix_workloads_live_name")
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0027")
    assert "cluster_id" not in _index_sql(engine, "ix_workloads_live_name")
    assert "created_at, id" in _index_sql(engine, "ix_workloads_live_name")
    migrate.upgrade(engine)
    assert held in _index_sql(engine, "ix_workloads_live_name")
    engine.dispose()


def test_migration_0029_puts_the_parts_columns_in_the_scope_indexes_and_goes_back_down(
    empty_url: str,
) -> None:
    """The live project and department indexes hold the columns a sort's parts are read by
    (``tests/store/test_scoped_sorts``)."""
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine, "0029")
    for scope in ("project_id", "department_id"):
        assert "type, phase, own_category, own_priority, deleted_at" in _index_sql(
            engine, f"ix_workloads_live_{scope}"
        )
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0028")
    for scope in ("project_id", "department_id"):
        assert "type" not in _index_sql(engine, f"ix_workloads_live_{scope}")
    migrate.upgrade(engine, "0029")
    assert "project_name, type" in _index_sql(engine, "ix_workloads_live_department_id")
    engine.dispose()


def test_migration_0030_puts_the_phase_time_in_the_scope_indexes_and_goes_back_down(empty_url: str) -> None:
    """The live project and department indexes hold phaseUpdatedAt (``tests/store/test_scoped_sorts``)."""
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine)
    for scope in ("project_id", "department_id"):
        assert "own_priority, phase_updated_at, deleted_at" in _index_sql(
            engine, f"ix_workloads_live_{scope}"
        )
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0029")
    for scope in ("project_id", "department_id"):
        index = _index_sql(engine, f"ix_workloads_live_{scope}")
        assert "phase_updated_at" not in index
        assert "own_priority, deleted_at" in index
    migrate.upgrade(engine)
    assert "phase_updated_at" in _index_sql(engine, "ix_workloads_live_project_id")
    engine.dispose()


CLOCK_STATISTICS = {"st_workloads_pending_open", "st_workloads_running_open"}


def test_migration_0021_adds_the_open_clock_statistics_and_goes_back_down(empty_url: str) -> None:
    """PostgreSQL keeps no statistics of a partial index's expression: 0021 asks for those of the open
    clocks' keys (``closed - since``), without which a range on one was taken to select a third of
    the open clocks (decision 0022). Nothing on SQLite, which migrates through it all the same."""
    engine = sa.create_engine(empty_url)

    postgres = engine.dialect.name == "postgresql"
    migrate.upgrade(engine)
    assert (_statistics(engine) >= CLOCK_STATISTICS) is postgres
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0020")
    assert not CLOCK_STATISTICS & _statistics(engine)
    migrate.upgrade(engine)
    assert (_statistics(engine) >= CLOCK_STATISTICS) is postgres
    engine.dispose()
