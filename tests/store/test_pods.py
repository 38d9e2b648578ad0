"""The cluster-wide pod list in the store: scopes inside the statement, and migration 0013 filling the
listing columns of pods stored before it (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command

from tests.factories import CLUSTER, wid
from workplane.domain.batch import SyncBatch
from workplane.domain.observation import Observation
from workplane.domain.pods import PodObservation
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Sort, parse_filter, parse_search
from workplane.query.pods import POD_FIELDS, PodQuery
from workplane.services import ingest
from workplane.store import catalog, migrate
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.pods import count_pods, list_pods, revision_pods_page, workload_pods_page
from workplane.store.schema import workload_pods


def _workload(label: str, project: str) -> Observation:
    return Observation.model_validate(
        {
            "id": str(wid(label)),
            "revision": 1,
            "name": label,
            "projectId": project,
            "projectName": f"team-{project}",
            "departmentId": "d1",
            "departmentName": "research",
            "type": "Training",
            "phase": "Running",
            "createdAt": "2024-05-01T00:00:00Z",
            "phaseUpdatedAt": "2024-05-01T00:00:00Z",
        }
    )


def _pod(n: int, label: str, phase: str = "Running", **extra: Any) -> PodObservation:
    return PodObservation.model_validate(
        {
            "id": str(wid(f"pod{n}")),
            "workloadId": str(wid(label)),
            "revision": 1,
            "name": f"{label}-{n}",
            "createdAt": f"2024-05-01T00:00:0{n}Z",
            "k8sPhase": phase,
            "nodeName": f"node-{n % 2}",
            "currentNodePool": "default",
            **extra,
        }
    )


def _load(connection: sa.Connection) -> None:
    catalog.seed(connection, 1_800_000_000_000)
    ingest.apply_batch(
        connection,
        SyncBatch(
            workloads=[_workload("train", "p1"), _workload("serve", "p2")],
            pods=[_pod(1, "train"), _pod(2, "train", "Succeeded"), _pod(3, "serve")],
        ),
        catalog=CatalogCache().get(connection),
        cluster_id=str(CLUSTER),
        tenant_id=1,
        now_ms=1_800_000_000_000,
    )


def _ids(connection: sa.Connection, query: PodQuery) -> list[str]:
    page = list_pods(connection, query, sort=Sort("createdAt"), offset=0, limit=50, full=False)
    return [orjson.loads(p)["name"] for p in page.pods]


def test_a_scoped_query_sees_only_its_workloads_pods(database: Database) -> None:
    with database.write() as conn:
        _load(conn)
    with database.read() as conn:
        everything = PodQuery(scope=ScopeSet.everything())
        assert _ids(conn, everything) == ["train-1", "train-2", "serve-3"]
        on_node = parse_filter(["nodeName==node-1"], fields=POD_FIELDS)
        p1 = PodQuery(scope=ScopeSet(projects=frozenset({"p1"})), terms=on_node)
        assert _ids(conn, p1) == ["train-1"]
        assert count_pods(conn, p1) == 1
        in_d1 = ScopeSet(departments=frozenset({"d1"}))
        departments = PodQuery(scope=in_d1, words=parse_search("SERVE"))
        assert _ids(conn, departments) == ["serve-3"]
        nothing = PodQuery(scope=ScopeSet())
        assert (_ids(conn, nothing), count_pods(conn, nothing)) == ([], 0)


def test_a_changed_pod_is_written_with_only_the_columns_that_changed(database: Database) -> None:
    """SQLite: a pod already stored is updated with the columns that changed alone (SQLite rewrites the
    entries of every index, and runs every trigger, that names a column in SET, changed or not), and
    only new pods are upserted; PostgreSQL upserts them all whole. Both store what a full write
    stores."""
    with database.write() as conn:
        _load(conn)
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.write() as conn:
            ingest.apply_batch(
                conn,
                SyncBatch(
                    pods=[
                        _pod(1, "train", "Succeeded", revision=2),  # the phase changes
                        _pod(3, "serve", revision=2, nodeName="node-9"),  # the node changes
                        _pod(4, "serve"),  # new
                    ]
                ),
                catalog=CatalogCache().get(conn),
                cluster_id=str(CLUSTER),
                tenant_id=1,
                now_ms=1_800_000_060_000,
            )
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    updates = [s for s in sent if s.startswith("UPDATE workload_pods SET")]
    upserts = [s for s in sent if s.startswith("INSERT INTO workload_pods")]
    if database.engine.dialect.name == "sqlite":
        assert len(updates) == 2
        untouched = ("project_id", "department_id", "deleted_at", "workload_id =", "current_nodepool")
        assert [c for u in updates for c in untouched if c in u] == []
        (phase_update,) = [u for u in updates if "node_name" not in u]
        assert [c for c in ("k8s_phase", "completed_at", "search_text") if c not in phase_update] == []
    else:
        assert updates == []
    assert len(upserts) == 1
    with database.read() as conn:
        pod = workload_pods.c
        rows = {
            r.id: r
            for r in conn.execute(
                sa.select(pod.id, pod.document, pod.k8s_phase, pod.node_name, pod.completed_at, pod.revision)
            )
        }
        assert {pid: (r.k8s_phase, r.node_name, r.revision) for pid, r in rows.items()} == {
            str(wid("pod1")): ("Succeeded", "node-1", 2),
            str(wid("pod2")): ("Succeeded", "node-0", 1),
            str(wid("pod3")): ("Running", "node-9", 2),
            str(wid("pod4")): ("Running", "node-0", 1),
        }
        assert rows[str(wid("pod1"))].completed_at == 1_800_000_060_000
        assert orjson.loads(rows[str(wid("pod3"))].document)["nodeName"] == "node-9"
        everything = PodQuery(scope=ScopeSet.everything())
        assert count_pods(conn, everything) == 4
        on_node = PodQuery(
            scope=ScopeSet.everything(), terms=parse_filter(["nodeName==node-9"], fields=POD_FIELDS)
        )
        assert _ids(conn, on_node) == ["serve-3"]
        succeeded = PodQuery(scope=ScopeSet.everything(), words=parse_search("succeeded"))
        assert _ids(conn, succeeded) == ["train-1", "train-2"]


def test_a_revisions_pods_are_read_from_their_own_indexes(database: Database) -> None:
    """SQLite: a revision's live pods, its deleted ones and the question whether it has any are each a
    look-up on a partial index over the pods that have a revision (0017, 0019), scoped or not; without
    0019, the deleted ones walked every deleted pod."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    revision = str(wid("serve-00001"))
    with database.write() as conn:
        _load(conn)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        if "FROM workload_pods" in statement:
            statements.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.read() as conn:
            for scope in (ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))):
                for deleted in (False, True):
                    # No such pods: the page and both existence look-ups run.
                    page = revision_pods_page(conn, revision, scope=scope, deleted=deleted, offset=0, limit=9)
                    assert page is None
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    assert len(statements) == 12
    with database.read() as conn:
        for statement, parameters in statements:
            plan = " | ".join(
                str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "_revision_id (revision_id=?)" in plan, (statement, plan)


class _Undo(Exception):
    pass


def test_a_workloads_pods_are_read_by_no_index_over_every_live_or_deleted_pod(database: Database) -> None:
    """A workload's pods page is read along the workload's own index (workload, createdAt, id) whatever
    the statistics say: PostgreSQL without them (before its first ANALYZE) walked the whole index of
    live pods for every page. Checked by taking that index away, inside a transaction that is rolled
    back, and pricing sequential scans out: still no partial index over every live (or deleted) pod
    may answer, as the liveness term does not name ``deleted_at`` as those indexes do."""
    with database.write() as conn:
        _load(conn)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.read() as conn:
            for deleted, words in ((False, None), (True, None), (False, ["running"])):
                workload_pods_page(conn, str(wid("train")), deleted=deleted, offset=0, limit=9, words=words)
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    pages = [(s, params) for s, params in statements if "FROM workload_pods" in s]
    assert len(pages) == 3
    sqlite = database.engine.dialect.name == "sqlite"
    plans: list[str] = []

    def explain_without_the_workload_index() -> None:
        with database.write() as conn:
            conn.exec_driver_sql("DROP INDEX ix_workload_pods_workload")
            if not sqlite:
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            for statement, parameters in pages:
                rows = conn.exec_driver_sql(explain + statement, parameters)
                plans.append(" | ".join(str(r[-1]) for r in rows))
            raise _Undo

    with pytest.raises(_Undo):
        explain_without_the_workload_index()
    assert len(plans) == 3
    for plan in plans:
        assert "ix_workload_pods_live" not in plan, plan
        assert "ix_workload_pods_deleted" not in plan, plan
    with database.read() as conn:  # the transaction's DROP INDEX was undone
        assert "ix_workload_pods_workload" in {
            i["name"] for i in sa.inspect(conn).get_indexes("workload_pods")
        }


def test_migration_0013_fills_the_listing_columns_of_stored_pods(empty_url: str) -> None:
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        _load(conn)
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0012")
    migrate.upgrade(engine)
    c = workload_pods.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                c.node_name,
                c.current_nodepool,
                c.completed_at,
                c.search_text,
                c.k8s_phase_updated_at,
                c.project_id,
                c.department_id,
            ).order_by(c.created_at)
        ).all()
    assert [r.node_name for r in rows] == ["node-1", "node-0", "node-1"]
    assert {r.current_nodepool for r in rows} == {"default"}
    assert [(r.project_id, r.department_id) for r in rows] == [("p1", "d1"), ("p1", "d1"), ("p2", "d1")]
    # A Succeeded pod without a reported completion completed when its phase was first seen.
    assert [r.completed_at for r in rows] == [None, rows[1].k8s_phase_updated_at, None]
    assert rows[0].search_text == "train-1 train node-1 default running"
    engine.dispose()


def test_a_batch_of_many_pods_is_read_and_written_in_one_statement_each(database: Database) -> None:
    """More pods than one ``IN`` list holds (500): on PostgreSQL the batch reads its stored pods and
    its workloads with one statement each and upserts its pods with one (its new and its changed pods
    together: both statement triggers count them); SQLite keeps its lists and its prepared upsert.
    Either way the pods, their counts and their search text are those of the reports."""
    with database.write() as conn:
        _load(conn)
    later = "2024-05-02T00:00:00Z"
    batch = [_pod(n, "train", revision=2, createdAt=later) for n in range(10, 610)]

    def apply(pods: list[PodObservation], now_ms: int) -> list[tuple[str, bool]]:
        sent: list[tuple[str, bool]] = []

        def capture(_c: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool) -> None:
            sent.append((" ".join(statement.split()), many))

        sa.event.listen(database.engine, "before_cursor_execute", capture)
        try:
            with database.write() as conn:
                ingest.apply_batch(
                    conn,
                    SyncBatch(pods=pods),
                    catalog=CatalogCache().get(conn),
                    cluster_id=str(CLUSTER),
                    tenant_id=1,
                    now_ms=now_ms,
                )
        finally:
            sa.event.remove(database.engine, "before_cursor_execute", capture)
        return sent

    apply(batch, 1_800_000_060_000)
    # The same pods succeeded, and one more: 600 updates and an insert in one upsert.
    sent = apply(
        [_pod(n, "train", "Succeeded", revision=3, createdAt=later) for n in range(10, 610)]
        + [_pod(700, "serve", createdAt=later)],
        1_800_000_120_000,
    )
    pod_reads = [s for s, _ in sent if s.startswith("SELECT") and "FROM workload_pods WHERE id" in s]
    owner_reads = [s for s, _ in sent if s.startswith("SELECT id, project_id, department_id, name FROM")]
    upserts = [(s, many) for s, many in sent if s.startswith("INSERT INTO workload_pods")]
    if database.dialect == "postgresql":
        assert (len(pod_reads), len(owner_reads), [many for _, many in upserts]) == (1, 1, [False])
    else:
        assert (len(pod_reads), len(owner_reads), len(upserts)) == (2, 1, 1)
    with database.read() as conn:
        everything = PodQuery(scope=ScopeSet.everything())
        assert count_pods(conn, everything) == 604
        counted = conn.execute(sa.text("SELECT sum(live) FROM pod_counts")).scalar_one()
        assert counted == 604
        succeeded = PodQuery(scope=ScopeSet.everything(), words=parse_search("succeeded"))
        assert count_pods(conn, succeeded) == 601  # the 600 and train-2
        pod = workload_pods.c
        assert conn.execute(sa.select(sa.func.max(pod.revision))).scalar_one() == 3
