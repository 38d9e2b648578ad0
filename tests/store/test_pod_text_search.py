"""The pod list's look-ups before the query (a text index for search words, the distinct values of a
node, node pool or cluster for a substring term) narrow what it reads without changing any answer:
every page and count equals the plain predicates' (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command

from tests.factories import CLUSTER, wid
from tests.store.test_ingest import blocked_while
from workplane.domain.batch import SyncBatch
from workplane.domain.observation import Observation
from workplane.domain.pods import PodObservation
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Sort, SortOrder, parse_filter, parse_search
from workplane.query.pods import POD_FIELDS, Completed, PodQuery
from workplane.services import ingest
from workplane.settings import Settings
from workplane.store import catalog, migrate
from workplane.store import pod_compile as pod_query
from workplane.store import pods as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database, create_database
from workplane.store.dialects import sqlite as sqlite_dialect
from workplane.store.schema import pod_counts, workload_pods

NOW = 1_800_000_000_000
PROJECTS = ("p1", "p2", "p3")
LETTERS = ["a", "b", "A", "B", "%", "_", "\\", "é", "É", "-", "1", "x"]
REVISIONS = [wid("rev0"), wid("rev1"), wid("rev2")]


def _workload(n: int) -> Observation:
    project = PROJECTS[n % len(PROJECTS)]
    return Observation.model_validate(
        {
            "id": str(wid(f"w{n}")),
            "revision": 1,
            "name": f"job-{n}",
            "projectId": project,
            "projectName": project,
            "departmentId": f"d{n % 2}",
            "departmentName": f"d{n % 2}",
            "type": "Training",
            "phase": "Running",
            "createdAt": "2024-05-01T00:00:00Z",
        }
    )


def _pod(rng: random.Random, n: int, revision: int) -> PodObservation:
    node = None if n % 9 == 4 else "".join(rng.choice(LETTERS) for _ in range(rng.randrange(1, 5))) + "-n"
    item: dict[str, Any] = {
        "id": str(wid(f"pod{n}")),
        "workloadId": str(wid(f"w{n % 12}")),
        "revision": revision,
        "name": "".join(rng.choice(LETTERS) for _ in range(rng.randrange(1, 7))) + f"-{n}",
        "createdAt": f"2024-05-01T00:{n // 60:02d}:{n % 60:02d}Z",
        "k8sPhase": rng.choice(["Running", "Pending", "Succeeded"]),
        "nodeName": node,
        "currentNodePool": rng.choice([None, "default", "A100-x", "a100", "h%_1"]),
    }
    if n % 12 < 4:  # the pods of four workloads run under revisions, which a rewrite may change
        item["revisionId"] = str(REVISIONS[(n + revision) % len(REVISIONS)])
    if revision > 1 and n % 5 == 0:
        item["deletedAt"] = "2024-05-02T00:00:00Z"
    return PodObservation.model_validate(item)


def _sync(database: Database, pods: list[PodObservation]) -> None:
    with database.write() as conn:
        ingest.apply_batch(
            conn,
            SyncBatch(workloads=[_workload(n) for n in range(12)], pods=pods),
            catalog=CatalogCache().get(conn),
            cluster_id=str(CLUSTER),
            tenant_id=1,
            now_ms=NOW,
        )


@pytest.fixture
def pods(database: Database) -> None:
    """150 pods with random names, nodes and pools; then a third of them again, in other phases on other
    nodes (the text is rewritten), a fifth of those deleted."""
    rng = random.Random(7)
    with database.write() as conn:
        catalog.seed(conn, NOW)
    _sync(database, [_pod(rng, n, 1) for n in range(150)])
    _sync(database, [_pod(rng, n, 2) for n in range(0, 150, 3)])


TERMS = [
    f"{field}{op}{needle}"
    for field in ("nodeName", "currentNodepool", "clusterId", "workloadId", "revisionId")
    for op in ("=@", "=^", "=$", "!@", "!=", "==")
    for needle in (
        "a",
        "A1",
        "%",
        "_",
        "\\",
        "é",
        "-n",
        "a100",
        str(CLUSTER)[:8],
        str(wid("w3"))[:7],
        str(REVISIONS[1]),
        str(REVISIONS[2])[-6:].upper(),
        "nothing-like-it",
    )
]
WORDS = ["a", "ab", "a-1", "%_", "\\", "É", "-n", "running", "job-1", "succeeded a", "nothing-like-it", "1"]


def _plain(conn: sa.Connection, query: PodQuery, sort: Sort) -> tuple[list[str], int]:
    """The compiled predicates alone, without any look-up before the query."""
    ids = conn.execute(
        sa.select(workload_pods.c.id)
        .where(*pod_query.where(query))
        .order_by(*pod_query.order_by(query, sort))
    ).scalars()
    counted = sa.select(sa.func.count()).select_from(workload_pods).where(*pod_query.where(query, count=True))
    return list(ids), int(conn.execute(counted).scalar_one())


def _answer(conn: sa.Connection, query: PodQuery, sort: Sort) -> tuple[list[str], int]:
    page = store.list_pods(conn, query, sort=sort, offset=0, limit=500, full=False)
    return [orjson.loads(p)["id"] for p in page.pods], store.count_pods(conn, query)


def _queries() -> list[PodQuery]:
    scopes = [ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))]
    queries = []
    for n, term in enumerate(TERMS):
        scope = scopes[n % 2]
        for deleted in (False, True):
            queries.append(
                PodQuery(scope=scope, deleted=deleted, terms=parse_filter([term], fields=POD_FIELDS))
            )
    for n, words in enumerate(WORDS):
        for deleted in (False, True):
            queries.append(PodQuery(scope=scopes[n % 2], deleted=deleted, words=parse_search(words)))
    both = parse_filter(["nodeName=@a", "currentNodepool=^a"], fields=POD_FIELDS)
    queries.append(PodQuery(scope=scopes[0], terms=both, words=parse_search("job")))
    return queries


@pytest.mark.no_cover
@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("narrow", ["index", "scan"])
def test_look_ups_change_no_answer(database: Database, monkeypatch: pytest.MonkeyPatch, narrow: str) -> None:
    # "scan": a cap of 2 candidates and of 1 distinct value, so most look-ups give up (the plain path).
    if narrow == "scan":
        monkeypatch.setattr(sqlite_dialect, "CAP", 2)
        monkeypatch.setattr(store, "_MOST_VALUES", 1)
    sort = Sort("createdAt", SortOrder.DESC)
    matched = 0
    for query in _queries():
        # A read transaction each, as a request has: one transaction runs for query_timeout_ms at most.
        with database.read() as conn:
            expected = _plain(conn, query, sort)
            assert _answer(conn, query, sort) == expected, query
        matched += bool(expected[1])
    assert matched > 40  # the cases select something, not only nothing


@pytest.mark.usefixtures("pods")
def test_look_ups_narrow(database: Database) -> None:
    """The look-ups happen: a node substring becomes a list of the matching nodes; on SQLite a selective
    word becomes candidate rows of ``pod_text``."""
    with database.read() as conn:
        nodes = {
            v
            for v in conn.execute(
                sa.select(workload_pods.c.node_name).where(workload_pods.c.deleted_at.is_(None))
            ).scalars()
            if v
        }
        assert store._live_values(conn, workload_pods.c.node_name) == sorted(nodes)
        none = PodQuery(
            scope=ScopeSet.everything(), terms=parse_filter(["nodeName=@nothing"], fields=POD_FIELDS)
        )
        assert [str(c) for c in store.narrowing(conn, none)] == ["false"]
        word = PodQuery(scope=ScopeSet.everything(), words=parse_search("job-11"))
        found = database.sql.pod_narrowing(conn, word.words)
    if database.dialect == "sqlite":
        assert found is not None
        assert "workload_pods.rowid IN" in str(found)
    else:
        assert found is None  # PostgreSQL's planner uses the trigram index itself


def test_the_text_index_follows_every_write(database: Database) -> None:
    """SQLite: inserts, upserts that change the text (and ones that do not), and deletions keep
    ``pod_text`` equal to the pods' text (FTS5's own integrity check compares them)."""
    if database.dialect != "sqlite":
        pytest.skip("pod_text is SQLite's")
    rng = random.Random(3)
    with database.write() as conn:
        catalog.seed(conn, NOW)
    _sync(database, [_pod(rng, n, 1) for n in range(40)])
    _sync(database, [_pod(rng, n, 2) for n in range(0, 40, 2)])
    _sync(database, [_pod(rng, n, 3) for n in range(0, 40, 4)])
    with database.write() as conn:
        conn.execute(
            workload_pods.delete().where(workload_pods.c.id.in_([str(wid(f"pod{n}")) for n in range(5)]))
        )
        # A writer other than a sync batch: its new pod is indexed by the insert trigger.
        row = conn.execute(sa.select(workload_pods).limit(1)).mappings().one()
        conn.execute(workload_pods.insert().values({**row, "id": str(wid("pod-inserted"))}))
        conn.execute(sa.text("INSERT INTO pod_text (pod_text, rank) VALUES ('integrity-check', 1)"))
        stored = conn.execute(sa.select(workload_pods.c.search_text)).scalars().all()
        for word in ("running", "pending", "a-n"):
            found = database.sql.pod_narrowing(conn, [word])
            expected = sum(word in text for text in stored)
            rows = conn.execute(
                sa.select(sa.func.count()).select_from(workload_pods).where(found)
            ).scalar_one()
            assert rows == expected


def _stored_pods(url: str, data_dir: Path, pods: int) -> Database:
    """A store migrated to the head with ``pods`` pods (the caller disposes of it)."""
    database = create_database(Settings(data_dir=data_dir, database_url=url, migrate_on_start=False))
    migrate.upgrade(database.engine)
    with database.write() as conn:
        catalog.seed(conn, NOW)
    rng = random.Random(pods)
    _sync(database, [_pod(rng, n, 1) for n in range(pods)])
    return database


def _downgrade(database: Database, to: str) -> None:
    with database.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), to)


def test_migrations_0015_to_0017_index_and_count_the_stored_pods(empty_url: str, tmp_path: Path) -> None:
    """Pods stored at 0013 (written at the head, then the store taken back down to 0013) are indexed
    and counted by the migrations after it."""
    database = _stored_pods(empty_url, tmp_path, 20)
    try:
        _downgrade(database, "0013")
        assert "pod_counts" not in sa.inspect(database.engine).get_table_names()
        migrate.upgrade(database.engine)
        with database.read() as conn:
            query = PodQuery(scope=ScopeSet.everything(), words=parse_search("running"))
            expected = _plain(conn, query, Sort("createdAt"))
            assert expected[1] > 0
            assert _rolled_up(conn) == _grouped(conn)  # 0016 and 0017 counted the stored pods
            assert _answer(conn, query, Sort("createdAt")) == expected
            if database.dialect == "sqlite":
                assert database.sql.pod_narrowing(conn, query.words) is not None
            else:
                indexes = conn.execute(
                    sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'workload_pods'")
                )
                assert "ix_workload_pods_names_trgm" in indexes.scalars().all()  # 0024's, in place of 0015's
    finally:
        database.dispose()


def test_migration_0017_adds_the_pods_revisions_to_their_counts_and_goes_back_down(
    empty_url: str, tmp_path: Path
) -> None:
    """Down to 0016: the revision column goes and the counts are keyed, and kept, without it. Up again:
    the counts are keyed by revision (every stored pod without one until reported again), and the
    triggers keep them exact as pods come back with their revisions."""
    database = _stored_pods(empty_url, tmp_path, 30)
    try:
        with database.read() as conn:
            assert {key[3] for key in _rolled_up(conn)} == {"", *(str(r) for r in REVISIONS)}
        _downgrade(database, "0016")
        engine = database.engine
        assert "revision_id" not in {c["name"] for c in sa.inspect(engine).get_columns("workload_pods")}
        key = "cluster_id, coalesce(department_id, ''), coalesce(project_id, '')"
        grouped = (
            f"SELECT {key}, count(*) FROM workload_pods WHERE deleted_at IS NULL "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        rolled = (
            "SELECT cluster_id, department_id, project_id, live FROM pod_counts "
            "WHERE live <> 0 ORDER BY 1, 2, 3"
        )
        with engine.begin() as conn:
            assert conn.execute(sa.text(rolled)).all() == conn.execute(sa.text(grouped)).all()
            # 0016's triggers are back: a pod removed outright leaves its counter.
            conn.execute(sa.text("DELETE FROM workload_pods WHERE id = :id"), {"id": str(wid("pod1"))})
        with engine.begin() as conn:
            assert conn.execute(sa.text(rolled)).all() == conn.execute(sa.text(grouped)).all()
        migrate.upgrade(engine)
        with database.read() as conn:
            assert _rolled_up(conn) == _grouped(conn)
            assert {key[3] for key in _rolled_up(conn)} == {""}
        _sync(database, [_pod(random.Random(n), n, 2) for n in range(30)])
        with database.read() as conn:
            assert _rolled_up(conn) == _grouped(conn)
            assert {key[3] for key in _rolled_up(conn)} == {"", *(str(r) for r in REVISIONS)}
            query = PodQuery(
                scope=ScopeSet.everything(),
                terms=parse_filter([f"revisionId=={REVISIONS[0]}"], fields=POD_FIELDS),
            )
            assert store.count_pods(conn, query) == _plain(conn, query, Sort("createdAt"))[1] > 0
    finally:
        database.dispose()


# --- counts from pod_counts (migration 0016) --------------------------------------------------------


def _grouped(conn: sa.Connection) -> dict[tuple[str, ...], int]:
    p = workload_pods.c
    key = [p.cluster_id, p.department_id, p.project_id, p.revision_id]
    rows = conn.execute(sa.select(*key, sa.func.count()).where(p.deleted_at.is_(None)).group_by(*key))
    return {(c, d or "", pr or "", r or ""): n for c, d, pr, r, n in rows}


def _rolled_up(conn: sa.Connection) -> dict[tuple[str, ...], int]:
    c = pod_counts.c
    key = [c.cluster_id, c.department_id, c.project_id, c.revision_id]
    rows = conn.execute(sa.select(*key, c.live).where(c.live != 0))
    return {(cl, d, pr, r): n for cl, d, pr, r, n in rows}


_COUNTS_KEY = ("cluster_id", "department_id", "project_id", "revision_id")


def _emptied_revisions(conn: sa.Connection) -> set[tuple[str, ...]]:
    """Counter rows of a revision left at zero (the triggers delete them)."""
    c = pod_counts.c
    return {
        tuple(r) for r in conn.execute(sa.select(c[*_COUNTS_KEY]).where(c.live == 0, c.revision_id != ""))
    }


@pytest.mark.usefixtures("pods")
def test_pod_counts_follow_every_write(database: Database) -> None:
    """Inserts, upserts, deletions (deletedAt), a workload moving to another project with its pods, and
    rows removed outright: the counter rows equal the live pods grouped, and every count they answer
    equals the pods' own count."""
    with database.read() as conn:
        assert _rolled_up(conn) == _grouped(conn)
        # The rewrites moved every pod of workloads 0 and 3 (project p1) from rev1 to rev2: rev1's rows
        # there went with their last pod.
        stored = {key[1:] for key in conn.execute(sa.select(pod_counts.c[*_COUNTS_KEY]))}
        assert ("d0", "p1", str(REVISIONS[2])) in stored
        assert not {("d0", "p1", str(REVISIONS[1])), ("d1", "p1", str(REVISIONS[1]))} & stored
        assert _emptied_revisions(conn) == set()
    moved = _workload(4).model_copy(update={"revision": 2, "project_id": "p9", "department_id": "d9"})
    with database.write() as conn:
        ingest.apply_batch(
            conn,
            SyncBatch(workloads=[moved], pods=[]),
            catalog=CatalogCache().get(conn),
            cluster_id=str(CLUSTER),
            tenant_id=1,
            now_ms=NOW,
        )
        conn.execute(
            workload_pods.delete().where(workload_pods.c.id.in_([str(wid(f"pod{n}")) for n in range(9)]))
        )
    _sync(database, [_pod(random.Random(n), n, 4) for n in range(140, 160)])
    with database.read() as conn:
        assert _rolled_up(conn) == _grouped(conn)
        assert ("11111111-1111-4111-8111-111111111111", "d9", "p9", "") in _rolled_up(conn)
        # Four workloads' pods run under revisions (moved from one to another by their rewrites).
        assert {key[3] for key in _rolled_up(conn)} == {"", *(str(r) for r in REVISIONS)}
        assert _emptied_revisions(conn) == set()
        scopes = [
            ScopeSet.everything(),
            ScopeSet(projects=frozenset({"p2", "p9"})),
            ScopeSet(departments=frozenset({"d1"})),
            ScopeSet(clusters=frozenset({str(CLUSTER)})),
            ScopeSet(),
        ]
        terms = [
            [],
            [f"clusterId=={CLUSTER}"],
            ["clusterId!=x"],
            ["clusterId=@zz"],
            ["revisionId!=r"],
            [f"revisionId=={REVISIONS[0]}"],
            [f"revisionId!={REVISIONS[1]}"],
            [f"revisionId=@{str(REVISIONS[2])[-5:].upper()}"],
            [f"revisionId!@{str(REVISIONS[2])[:5]}", f"clusterId=={CLUSTER}"],
            [f"revisionId<={REVISIONS[1]}"],
        ]
        for scope in scopes:
            for term in terms:
                query = PodQuery(scope=scope, terms=parse_filter(term, fields=POD_FIELDS))
                assert store.count_pods(conn, query) == _plain(conn, query, Sort("createdAt"))[1], (
                    scope,
                    term,
                )


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_pods_sort_by_revision_with_the_pods_without_one_last(database: Database, order: SortOrder) -> None:
    """By revisionId (the canonical UUID text, compared by code point), ties by id in the same
    direction; pods without a revision last in both directions. Expected order worked out here."""
    with database.read() as conn:
        p = workload_pods.c
        rows = conn.execute(sa.select(p.revision_id, p.id).where(p.deleted_at.is_(None))).all()
        query = PodQuery(scope=ScopeSet.everything())
        ids, _count = _answer(conn, query, Sort("revisionId", order))
    descending = order is SortOrder.DESC
    with_one = sorted(((r, i) for r, i in rows if r is not None), reverse=descending)
    without = sorted((i for r, i in rows if r is None), reverse=descending)
    assert with_one
    assert without
    assert ids == [i for _r, i in with_one] + without


def test_a_pod_joining_a_revision_whose_row_another_writer_empties(database: Database) -> None:
    """PostgreSQL: one transaction removes a revision's last live pod (its counter row deleted, not yet
    committed) while a sync batch adds a pod to that revision: the batch waits for the row, and once
    the first commits, inserts it again; the counts stay exact."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with database.write() as conn:
        catalog.seed(conn, NOW)
    solo = wid("rev-solo")
    first, second = (_pod(random.Random(n), n, 1).model_copy(update={"revision_id": solo}) for n in (0, 12))
    _sync(database, [first])
    gone = workload_pods.update().where(workload_pods.c.id == str(first.id)).values(deleted_at=NOW)
    blocked_while(database, gone, lambda: _sync(database, [second]))
    with database.read() as conn:
        assert _rolled_up(conn) == _grouped(conn)
        assert [n for key, n in _rolled_up(conn).items() if key[3] == str(solo)] == [1]
        assert _emptied_revisions(conn) == set()


@pytest.mark.no_cover
@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("walk", ["planned", "dense", "sparse"])
def test_sorts_answered_in_parts_page_as_the_plain_order(
    database: Database, monkeypatch: pytest.MonkeyPatch, walk: str
) -> None:
    # "dense"/"sparse": a part per node too (the fixture has over 64 node names), every part walked
    # along the id index or every part looked up and sorted, whatever the sizes say; "planned": nodes
    # along their index, then as the sizes say.
    if walk != "planned":
        monkeypatch.setattr(store, "_FEW_PARTS", 1_000)
        monkeypatch.setattr(store, "dense", lambda *_: walk == "dense")
    scopes = [ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))]
    in_parts = 0
    for field in POD_FIELDS:
        for order in SortOrder:
            sort = Sort(field, order)
            for scope in scopes:
                for completed in Completed:
                    for deleted in (False, True):
                        query = PodQuery(scope=scope, deleted=deleted, completed=completed)
                        with database.read() as conn:
                            expected, _ = _plain(conn, query, sort)
                            in_parts += store.sort_parts(conn, query, sort, need=1) is not None
                            for offset, limit in ((0, 5), (3, 7), (40, 50), (max(len(expected) - 2, 0), 5)):
                                page = store.list_pods(
                                    conn, query, sort=sort, offset=offset, limit=limit, full=False
                                )
                                got = [orjson.loads(p)["id"] for p in page.pods]
                                assert got == expected[offset : offset + limit], (query, sort, offset)
                                assert page.has_more == (offset + limit < len(expected)), (query, sort)
    # Live pods: completedAt (unless only completed pods), clusterId, nodeName, currentNodepool and
    # revisionId.
    assert in_parts == 2 * 2 * (2 + 4 * 3)


def test_migration_0018_guards_the_insert_trigger_and_goes_back_down(tmp_path: Path) -> None:
    """SQLite: 0018 lets a writer that indexes its new pods itself defer the text index's insert
    trigger (as 0009 does for the workloads'); its downgrade restores 0015's trigger."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'migrate.db'}")

    def trigger(name: str) -> str:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": name})
            return str(found.scalar_one())

    try:
        migrate.upgrade(engine)
        assert "triggers_deferred" in trigger("pod_text_insert")
        assert "triggers_deferred" not in trigger("pod_text_update")
        assert "triggers_deferred" not in trigger("pod_counts_insert")
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), "0017")
        assert "triggers_deferred" not in trigger("pod_text_insert")
        migrate.upgrade(engine)
        assert "triggers_deferred" in trigger("pod_text_insert")
    finally:
        engine.dispose()


@pytest.mark.usefixtures("pods")
def test_pages_walked_a_value_at_a_time_page_as_the_plain_order(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A substring term on a node, node pool or cluster that a few live values satisfy pages in
    creation order through one walk per value, merged (``store._merged_parts``): every page, either
    way, at every offset, equals the plain ``ORDER BY``'s, ties on createdAt (pods created in the same
    second, on different nodes) broken by id in the same direction."""
    # On both databases, whichever plan the dialect prefers at a million pods.
    monkeypatch.setattr(type(database.sql), "merges_value_walks", True)
    rng = random.Random(11)
    twins = [
        _pod(rng, n, 1).model_copy(update={"created_at": _pod(rng, n - 150, 1).created_at})
        for n in range(150, 190)
    ]
    _sync(database, twins)  # forty more pods, each created in the same second as an earlier one
    scopes = [ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))]
    merged = 0
    for term in ("nodeName=@a", "nodeName=^b", "nodeName=$1-n", "currentNodepool=@a", "currentNodepool=$_1"):
        for order in SortOrder:
            sort = Sort("createdAt", order)
            for scope in scopes:
                query = PodQuery(scope=scope, terms=parse_filter([term], fields=POD_FIELDS))
                with database.read() as conn:
                    expected, _ = _plain(conn, query, sort)
                    merged += store._merged_parts(store.narrowed(conn, query), sort) is not None
                    for offset, limit in ((0, 1), (0, 5), (3, 7), (10, 20), (max(len(expected) - 2, 0), 5)):
                        page = store.list_pods(conn, query, sort=sort, offset=offset, limit=limit, full=False)
                        got = [orjson.loads(p)["id"] for p in page.pods]
                        assert got == expected[offset : offset + limit], (term, sort, scope, offset)
                        assert page.has_more == (offset + limit < len(expected)), (term, sort, offset)
    # All but "currentNodepool=$_1" (one pool, "h%_1": its own index walk) are walked a value at a time.
    assert merged == 4 * 2 * 2


@pytest.mark.usefixtures("pods")
def test_a_negated_terms_count_is_the_rest_less_its_positive(database: Database) -> None:
    """``count_pods`` answers a negated term beside the rolled-up ones (cluster, revision) as the
    rolled-up count less its positive's: equal to the plain count, a pod without a value included."""
    scopes = [
        ScopeSet.everything(),
        ScopeSet(projects=frozenset({"p2"})),
        ScopeSet(departments=frozenset({"d1"})),
    ]
    negated = [
        "nodeName!@a",
        "nodeName!=a-n",
        "currentNodepool!=default",
        "currentNodepool!@A1",
        f"workloadId!={wid('w3')}",
        "completedAt!=2024-05-01T00:00:00Z",
    ]
    rolled = ["", f"clusterId=={CLUSTER}", f"revisionId!={REVISIONS[1]}", f"revisionId=={REVISIONS[0]}"]
    nonzero = 0
    statements: list[str] = []
    with database.read() as conn:
        sa.event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        for scope in scopes:
            for term in negated:
                for other in rolled:
                    terms = parse_filter([term, other] if other else [term], fields=POD_FIELDS)
                    query = PodQuery(scope=scope, terms=terms)
                    expected = _plain(conn, query, Sort("createdAt"))[1]
                    assert store.count_pods(conn, query) == expected, (scope, term, other)
                    nonzero += expected > 0
    assert nonzero > 50
    # The difference is what answered them (one statement each, the rollup's sum in it).
    differences = sum("pod_counts" in s and "count(*)" in s for s in statements)
    assert differences == len(negated) * len(scopes) * len(rolled)


@pytest.mark.no_cover
@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("plan", ["planned", "walk", "look-up"])
def test_ranges_in_creation_order_page_as_the_plain_order(
    database: Database, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    """A range on completedAt or deletedAt in creation order (``store._ranged_page``): looked up by the
    range's index and sorted, or walked along the creation-time index as far as its bound (and looked
    up where the page is not inside): every page, either way, equals the plain ``ORDER BY``'s.
    "walk": the bound as near as the page allows; "look-up": every range taken as a small one."""
    if plan != "planned":
        monkeypatch.setattr(store, "_table_size", lambda _conn: 0 if plan == "walk" else 10**9)
    rng = random.Random(13)
    finished = []
    for n in range(190, 250):
        item = _pod(rng, n, 1).model_dump(by_alias=True, mode="json")
        # Completed minutes after one another, in an order unlike their creation's; each created in
        # the same second as an earlier pod (ties on createdAt, broken by id).
        item["createdAt"] = _pod(rng, n - 190, 1).model_dump(by_alias=True, mode="json")["createdAt"]
        item["completedAt"] = f"2024-05-01T0{1 + (n * 7) % 5}:{(n * 13) % 60:02d}:00Z"
        item["k8sPhase"] = "Succeeded"
        finished.append(PodObservation.model_validate(item))
    _sync(database, finished)
    scopes = [ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))]
    cases = [
        (["completedAt>=2024-05-01T04:00:00Z"], False),
        (["completedAt<=2024-05-01T02:30:00Z"], False),
        (["completedAt>=2024-05-01T02:00:00Z", "completedAt<=2024-05-01T03:00:00Z"], False),
        (["completedAt>=2024-05-01T03:00:00Z", "nodeName=@a"], False),
        (["completedAt>=2030-01-01T00:00:00Z"], False),
        (["deletedAt>=2024-05-01T00:00:00Z"], True),
    ]
    for terms, deleted in cases:
        for order in SortOrder:
            sort = Sort("createdAt", order)
            for scope in scopes:
                query = PodQuery(scope=scope, deleted=deleted, terms=parse_filter(terms, fields=POD_FIELDS))
                with database.read() as conn:
                    expected, _ = _plain(conn, query, sort)
                    for offset, limit in ((0, 1), (0, 5), (3, 7), (10, 20), (max(len(expected) - 2, 0), 5)):
                        page = store.list_pods(conn, query, sort=sort, offset=offset, limit=limit, full=False)
                        got = [orjson.loads(p)["id"] for p in page.pods]
                        assert got == expected[offset : offset + limit], (terms, sort, scope, offset)
                        assert page.has_more == (offset + limit < len(expected)), (terms, sort, offset)


def _with_early_pods(database: Database) -> None:
    """Twelve pods named ``early-…``, created before every other pod (each in the same second as
    another of them: ties on createdAt, broken by id): the last of the newest-first order, as the
    pods of a few old workloads are."""
    rng = random.Random(17)
    early = [
        _pod(rng, 300 + n, 1).model_copy(
            update={"name": f"early-{n}", "created_at": datetime(2024, 4, 30, 0, 0, n // 2, tzinfo=UTC)}
        )
        for n in range(12)
    ]
    _sync(database, early)


@pytest.mark.no_cover
@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("plan", ["planned", "walk", "look-up", "reach"])
def test_search_pages_in_creation_order_page_as_the_plain_order(
    database: Database, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    """A search page in creation order that the planner would walk (``store._searched_page``): walked
    as far as the reach, and looked up by the text index and sorted where the page is not inside.
    Every page, either way, at every offset, equals the plain ``ORDER BY``'s. "planned": the
    database's own plan decides; the others take every plan as a walk (on both databases), with the
    edge as near as the page allows ("walk"), beyond every pod ("look-up": no edge), or at
    √(need · N) ("reach")."""
    if plan != "planned":
        monkeypatch.setattr(type(database.sql), "reads_in_order", lambda *_: True)
        # No word's candidates looked up before the query (SQLite): every word as broad as ``succeeded``.
        monkeypatch.setattr(sqlite_dialect, "CAP", -1)
        if plan != "reach":
            monkeypatch.setattr(store, "_table_size", lambda _conn: 0 if plan == "walk" else 10**9)
    _with_early_pods(database)
    scopes = [ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))]
    searched = 0
    for words in ("early", "a", "-1", "running", "job-1", "succeeded a", "nothing-like-it"):
        for order in SortOrder:
            sort = Sort("createdAt", order)
            for scope in scopes:
                query = PodQuery(scope=scope, words=parse_search(words))
                with database.read() as conn:
                    expected, _ = _plain(conn, query, sort)
                    for offset, limit in ((0, 1), (0, 5), (3, 7), (10, 20), (max(len(expected) - 2, 0), 5)):
                        narrow = store.narrowed(conn, query)
                        plain = (
                            sa.select(workload_pods.c.id)
                            .where(*narrow.where(query))
                            .order_by(*pod_query.order_by(query, sort))
                        )
                        found = store._searched_page(
                            conn, query, narrow, plain, sort, offset=offset, limit=limit
                        )
                        searched += found is not None
                        page = store.list_pods(conn, query, sort=sort, offset=offset, limit=limit, full=False)
                        got = [orjson.loads(p)["id"] for p in page.pods]
                        assert got == expected[offset : offset + limit], (words, sort, scope, offset)
                        assert page.has_more == (offset + limit < len(expected)), (words, sort, offset)
    if plan != "planned":
        assert searched == 7 * 2 * 2 * 5


def _walked_rows(plan: dict[str, Any], index: str) -> int:
    """The entries of ``index`` that a plan (``EXPLAIN (ANALYZE, FORMAT JSON)``) walked in order on
    the statement's own path, kept or filtered out: not those below a sort (a set looked up and
    sorted, however it was read), nor an InitPlan's (the walk that finds the edge)."""
    if plan["Node Type"] == "Sort":
        return 0
    own = plan.get("Index Name") == index
    visited = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0) if own else 0
    below = [n for n in plan.get("Plans", ()) if n.get("Parent Relationship") != "InitPlan"]
    return visited + sum(_walked_rows(n, index) for n in below)


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("order", [SortOrder.DESC, SortOrder.ASC])
def test_a_search_page_walks_the_creation_order_no_further_than_its_reach(
    database: Database, monkeypatch: pytest.MonkeyPatch, order: SortOrder
) -> None:
    """PostgreSQL: where the planner walks the creation-time index for a search page (made to here:
    no bitmap scans, sorts priced out, as its estimate of a clustered word's pods makes it at a
    million pods), no statement of the page visits more than the reach of that index's entries, and
    the pods that lie beyond it (the oldest, newest first) are looked up: the plain walk visited
    every pod before them."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite looks a word's candidates up by row id (pod_narrowing)")
    monkeypatch.setattr(store, "_table_size", lambda _conn: 6)  # a reach of 6 pods for a page of 5
    _with_early_pods(database)
    query = PodQuery(scope=ScopeSet.everything(), words=parse_search("early"))
    sort = Sort("createdAt", order)
    statements: list[tuple[str, Any]] = []
    with database.read() as conn:
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off")
        expected, _ = _plain(conn, query, sort)

        def ran(*args: Any) -> None:
            statements.append((args[2], args[3]))

        sa.event.listen(conn, "before_cursor_execute", ran)
        page = store.list_pods(conn, query, sort=sort, offset=0, limit=5, full=False)
        sa.event.remove(conn, "before_cursor_execute", ran)
        assert [orjson.loads(p)["id"] for p in page.pods] == expected[:5]
        run = [(s, params) for s, params in statements if not s.startswith("EXPLAIN")]
        walked = []
        for statement, params in run:
            if "FROM workload_pods" not in statement or "pg_class" in statement:
                continue
            explained = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
            walked.append(_walked_rows(explained.scalar_one()[0]["Plan"], "ix_workload_pods_live_created"))
    assert len(expected) == 12
    assert max(walked) <= 6, walked


# Names of pods older than every other, with ``LIKE``'s and FTS5's special characters, letters outside
# ASCII in either case and upper-case ASCII ones (``_with_old_pods``).
OLD_NAMES = ["old-%_x", "old-a\\b", 'old-é"É', 'OLD-q"q', "old-Ab"]
OLD_WORDS = [
    "old",
    "old-%_",
    "a\\b",
    'é"É',
    'q"q',
    "old-ab",
    "old ab",
    "old running",
    "ab",
    "old-% d-a",
    "nothing-like-it",
]


def _with_old_pods(database: Database) -> None:
    """Forty pods named after ``OLD_NAMES``, created before every other pod, three to a second (ties
    on createdAt, broken by id); then every fourth of them deleted."""
    rng = random.Random(23)
    old = [
        _pod(rng, 400 + n, 1).model_copy(
            update={
                "name": f"{OLD_NAMES[n % len(OLD_NAMES)]}-{n}",
                "created_at": datetime(2024, 4, 30, 0, 0, n // 3, tzinfo=UTC),
                "revision_id": None,
                "deleted_at": None,
            }
        )
        for n in range(40)
    ]
    _sync(database, old)
    gone = datetime(2024, 5, 2, tzinfo=UTC)
    _sync(database, [pod.model_copy(update={"revision": 2, "deleted_at": gone}) for pod in old[::4]])


def _looked_up(statement: str) -> bool:
    """Whether ``statement`` is a page of pods read from SQLite's text index (``pod_words_look_up``)."""
    return "pod_text JOIN workload_pods" in statement


@pytest.mark.no_cover
@pytest.mark.usefixtures("pods")
def test_a_broad_words_page_beyond_the_reach_is_what_python_says(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Words too broad for the candidate look-up (SQLite: made so, ``CAP``), whose pods are the
    oldest: newest first, the bounded walk (a reach of the page alone) finds none, and the pods are
    read from the text index by a trigram and sorted (``pod_words_look_up``); oldest first, the walk
    finds some. Every page, at every offset, in both orders, is what Python finds in the stored
    texts of the live pods: several words, one under three characters, special characters, letters
    outside ASCII, ties on createdAt, deleted pods among the matches."""
    monkeypatch.setattr(sqlite_dialect, "CAP", -1)
    monkeypatch.setattr(store, "_table_size", lambda _conn: 0)  # a reach of the page itself
    _with_old_pods(database)
    c = workload_pods.c
    with database.read() as conn:
        rows = conn.execute(sa.select(c.id, c.search_text, c.deleted_at, c.created_at)).all()
    statements: list[str] = []

    def ran(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(database.engine, "before_cursor_execute", ran)
    for words in OLD_WORDS:
        query = PodQuery(scope=ScopeSet.everything(), words=parse_search(words))
        for order in SortOrder:
            descending = order is SortOrder.DESC
            expected = [
                r.id
                for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=descending)
                if r.deleted_at is None and all(w in r.search_text for w in query.words)
            ]
            for offset, limit in ((0, 1), (0, 5), (3, 7), (10, 20), (max(len(expected) - 2, 0), 5)):
                with database.read() as conn:
                    sort = Sort("createdAt", order)
                    page = store.list_pods(conn, query, sort=sort, offset=offset, limit=limit, full=False)
                got = [orjson.loads(p)["id"] for p in page.pods]
                assert got == expected[offset : offset + limit], (words, order, offset)
                assert page.has_more == (offset + limit < len(expected)), (words, order, offset)
    sa.event.remove(database.engine, "before_cursor_execute", ran)
    assert len([r for r in rows if r.deleted_at is None and "old" in r.search_text]) == 30
    looked_up = sum(_looked_up(statement) for statement in statements)
    if database.dialect == "sqlite":
        # Every word but "ab" (no trigram) newest first, at each of the five offsets, and some oldest first.
        assert looked_up >= (len(OLD_WORDS) - 1) * 5, looked_up
    else:
        assert looked_up == 0


def _rarest(texts: list[str], word: str) -> str:
    """The trigram of ``word`` in the fewest of ``texts``, the first of those in the word."""
    trigrams = list(dict.fromkeys(word[i : i + 3] for i in range(len(word) - 2)))
    return min(trigrams, key=lambda t: sum(t in text for text in texts))


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("words", ["old-%_", 'old-é"É', "old-ab running"])
def test_a_broad_words_pods_are_read_by_their_rarest_trigram(
    database: Database, monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    """SQLite: past the reach, a broad word's page is one statement that reads the row ids of its
    rarest trigram (and at most one more) from ``pod_text`` (the sample is the whole table at this
    size, so exactly the trigram in the fewest texts) and looks each pod up by its row id, then sorts: not the
    creation-time index, which the plain statement walks past every younger pod."""
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL's planner looks the words up by its trigram index itself")
    monkeypatch.setattr(sqlite_dialect, "CAP", -1)
    monkeypatch.setattr(store, "_table_size", lambda _conn: 0)
    _with_old_pods(database)
    query = PodQuery(scope=ScopeSet.everything(), words=parse_search(words))
    sort = Sort("createdAt", SortOrder.DESC)
    statements = _statements(
        database, lambda conn: store.list_pods(conn, query, sort=sort, offset=0, limit=5, full=False)
    )
    [(page, params)] = [(s, p) for s, p in statements if _looked_up(s)]
    with database.read() as conn:
        texts = list(conn.execute(sa.select(workload_pods.c.search_text)).scalars())
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {page}", params)]
    rarest = min((_rarest(texts, w) for w in query.words), key=lambda t: sum(t in text for text in texts))
    [phrases] = [p for p in params if isinstance(p, str) and p.startswith("search_text : ")]
    # The rarest first, then at most one more of the words' trigrams.
    first, *more = phrases.split(" AND ")
    assert first == f'search_text : "{rarest.replace(chr(34), chr(34) * 2)}"', (phrases, rarest)
    assert len(more) <= 1, phrases
    assert plan[:2] == [
        "SCAN pod_text VIRTUAL TABLE INDEX 0:M1",
        "SEARCH workload_pods USING INTEGER PRIMARY KEY (rowid=?)",
    ], plan
    assert not any("ix_workload_pods_live_created" in step for step in plan), plan
    # The walk before it: along the creation-time index, bounded by the edge.
    [walk] = [s for s, _ in statements if "created_at >= (SELECT" in s]
    assert "ORDER BY workload_pods.created_at DESC" in walk, walk


@pytest.mark.usefixtures("pods")
def test_a_broad_words_page_of_a_terms_own_pods_is_walked_as_planned(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: with a term whose own index gives the creation order (a node, ``SEARCH`` in the plan),
    the walk is bounded by the term's pods already, and no look-up by the text index follows."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plan")
    monkeypatch.setattr(sqlite_dialect, "CAP", -1)
    monkeypatch.setattr(store, "_table_size", lambda _conn: 0)
    _with_old_pods(database)
    with database.read() as conn:
        node = conn.execute(
            sa.select(workload_pods.c.node_name)
            .where(workload_pods.c.search_text.like("old%"), workload_pods.c.node_name.is_not(None))
            .limit(1)
        ).scalar_one()
    terms = parse_filter([f"nodeName=={node}"], fields=POD_FIELDS)
    query = PodQuery(scope=ScopeSet.everything(), terms=terms, words=parse_search("old"))
    sort = Sort("createdAt", SortOrder.DESC)
    with database.read() as conn:
        expected, _ = _plain(conn, query, sort)
    statements = _statements(
        database, lambda conn: store.list_pods(conn, query, sort=sort, offset=0, limit=5, full=False)
    )
    assert expected
    assert not any(_looked_up(s) for s, _ in statements), statements
    with database.read() as conn:
        page = store.list_pods(conn, query, sort=sort, offset=0, limit=5, full=False)
    assert [orjson.loads(p)["id"] for p in page.pods] == expected[:5]


# --- workloadId substrings (migration 0022) ---------------------------------------------------------


def _workload_id_queries(conn: sa.Connection) -> list[tuple[str, str]]:
    """(op, needle) for a substring of workloadId: pieces of stored ids (of three characters and more,
    which a trigram index answers, and fewer, which it does not), in either case, and none at all."""
    ids = sorted(set(conn.execute(sa.select(workload_pods.c.workload_id)).scalars()))
    assert len(ids) == 12
    needles = ["a", "1f", "nothing-like-it", "%", "_"]
    for n, found in enumerate(ids[:6]):
        piece = found[n : n + 6]
        needles += [piece, piece.upper(), found[:8], found[-5:], found]
    return [(op, needle) for op in ("=@", "=^", "=$") for needle in needles]


def _matches(op: str, needle: str, value: str) -> bool:
    folded, value = needle.lower(), value.lower()
    return {"=@": folded in value, "=^": value.startswith(folded), "=$": value.endswith(folded)}[op]


@pytest.mark.usefixtures("pods")
def test_a_workload_id_substring_selects_what_python_says(database: Database) -> None:
    """Every page and count of ``workloadId`` substrings, live and deleted pods, equals the pods whose
    workload's id holds the needle, decided in Python."""
    with database.read() as conn:
        rows = conn.execute(
            sa.select(workload_pods.c.id, workload_pods.c.workload_id, workload_pods.c.deleted_at)
        ).all()
        cases = _workload_id_queries(conn)
    matched = 0
    for op, needle in cases:
        for deleted in (False, True):
            terms = parse_filter([f"workloadId{op}{needle}"], fields=POD_FIELDS)
            query = PodQuery(scope=ScopeSet.everything(), deleted=deleted, terms=terms)
            expected = {
                r.id
                for r in rows
                if (r.deleted_at is not None) == deleted and _matches(op, needle, r.workload_id)
            }
            with database.read() as conn:
                page = store.list_pods(conn, query, sort=Sort("createdAt"), offset=0, limit=500, full=False)
                assert {orjson.loads(p)["id"] for p in page.pods} == expected, (op, needle, deleted)
                assert store.count_pods(conn, query) == len(expected), (op, needle, deleted)
            matched += bool(expected)
    assert matched > 40


def _workload_id_look_up(database: Database, needle: str) -> tuple[str, Any]:
    """The statement (and its parameters) that looks up the workloads of ``workloadId=@needle``."""
    statements: list[tuple[str, Any]] = []

    def ran(*args: Any) -> None:
        statements.append((args[2], args[3]))

    query = PodQuery(
        scope=ScopeSet.everything(), terms=parse_filter([f"workloadId=@{needle}"], fields=POD_FIELDS)
    )
    with database.read() as conn:
        sa.event.listen(conn, "before_cursor_execute", ran)
        store.count_pods(conn, query)
        sa.event.remove(conn, "before_cursor_execute", ran)
    [look_up] = [(s, params) for s, params in statements if "workload_pods" not in s]
    return look_up


@pytest.mark.usefixtures("pods")
def test_a_workload_id_substring_is_looked_up_by_an_index(database: Database) -> None:
    """The workloads of ``workloadId=@`` are looked up before their pods. PostgreSQL: by the trigram
    index on their ids (migration 0022), not by reading every id (made to here: the other scans
    priced out, as they are at 200,000 workloads against an index that finds one). SQLite: every id
    read from the primary key's index alone, with no ``lower()`` call a row."""
    with database.read() as conn:
        needle = str(conn.execute(sa.select(workload_pods.c.workload_id).limit(1)).scalar_one())[4:10]
    statement, params = _workload_id_look_up(database, needle)
    with database.read() as conn:
        if database.dialect == "sqlite":
            plan = "\n".join(
                str(r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            )
            assert plan == "SCAN workloads USING COVERING INDEX sqlite_autoindex_workloads_1", plan
            assert "lower(" not in statement
            return
        # Only bitmap scans left, as a table of a dozen rows is otherwise read whole.
        conn.exec_driver_sql(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; "
            "SET LOCAL enable_indexonlyscan = off"
        )
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", params).scalars())
    assert "Bitmap Index Scan on ix_workload_search_id_trgm" in plan, plan


def test_migration_0022_indexes_the_workload_ids_and_goes_back_down(empty_url: str, tmp_path: Path) -> None:
    """Down to 0021: the index goes (PostgreSQL; nothing changes on SQLite) and a workloadId substring
    is answered as before; up again: it is back, over the stored workloads, with the same answers."""
    database = _stored_pods(empty_url, tmp_path, 30)

    def indexes() -> set[str]:
        if database.dialect == "sqlite":
            return set()
        with database.read() as conn:
            found = conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'workload_search'")
            )
            return set(found.scalars())

    def answers() -> list[tuple[list[str], int]]:
        with database.read() as conn:
            cases = _workload_id_queries(conn)
            return [
                _answer(
                    conn,
                    PodQuery(
                        scope=ScopeSet.everything(),
                        terms=parse_filter([f"workloadId{op}{n}"], fields=POD_FIELDS),
                    ),
                    Sort("createdAt"),
                )
                for op, n in cases
            ]

    try:
        at_head = answers()
        assert sum(count for _ids, count in at_head) > 0
        assert ("ix_workload_search_id_trgm" in indexes()) == (database.dialect == "postgresql")
        _downgrade(database, "0021")
        assert "ix_workload_search_id_trgm" not in indexes()
        assert answers() == at_head
        migrate.upgrade(database.engine)
        assert ("ix_workload_search_id_trgm" in indexes()) == (database.dialect == "postgresql")
        assert answers() == at_head
    finally:
        database.dispose()


# --- counts of search words from pod_text (migration 0023) ------------------------------------------

# Words in either case of a letter outside ASCII (the nodes are named from ``LETTERS``), which ``LIKE``
# tells apart; words of every pod or none; two at once; and shorter ones, which no trigram holds.
COUNTED_WORDS = [
    "é-n",
    "É-n",
    "a-n",
    "running",
    "job-1",
    "succeeded a-n",
    "pending job",
    "nothing-like-it",
    "1",
    "-n",
]


def _counted_as_python_says(database: Database) -> None:
    with database.read() as conn:
        rows = conn.execute(sa.select(workload_pods.c.search_text, workload_pods.c.deleted_at)).all()
        for words in COUNTED_WORDS:
            query = PodQuery(scope=ScopeSet.everything(), words=parse_search(words))
            expected = sum(
                r.deleted_at is None
                and r.search_text is not None
                and all(w in r.search_text for w in query.words)
                for r in rows
            )
            assert store.count_pods(conn, query) == expected, words


@pytest.mark.usefixtures("pods")
@pytest.mark.parametrize("cap", [2, sqlite_dialect.CAP])
def test_a_search_words_count_is_what_python_says(
    database: Database, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    """The live pods with every word, as Python finds them in the stored texts: the count from
    ``pod_text`` (SQLite; words of more than ``cap`` candidates, as a tenth of a million pods are more
    than 5,000) tells ``é`` from ``É`` as ``LIKE`` does, and leaves the deleted pods out; the
    candidates of the others are counted as they are."""
    monkeypatch.setattr(sqlite_dialect, "CAP", cap)
    with database.read() as conn:
        texts = " ".join(t or "" for t in conn.execute(sa.select(workload_pods.c.search_text)).scalars())
    # Both cases are stored.
    assert "é-n" in texts
    assert "É-n" in texts
    _counted_as_python_says(database)


@pytest.mark.usefixtures("pods")
def test_a_search_words_count_reads_no_pods_text(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: a tenant-wide count of search words too broad for the candidate look-up (made so here:
    a cap of 2) is one statement on ``pod_text`` and the deleted pods' index after that look-up,
    reading no pod's text."""
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL: test_a_phase_words_count_reads_the_phases_index_alone")
    monkeypatch.setattr(sqlite_dialect, "CAP", 2)
    statements: list[tuple[str, Any]] = []

    def ran(*args: Any) -> None:
        statements.append((args[2], args[3]))

    with database.read() as conn:
        sa.event.listen(conn, "before_cursor_execute", ran)
        store.count_pods(conn, PodQuery(scope=ScopeSet.everything(), words=parse_search("running job")))
        sa.event.remove(conn, "before_cursor_execute", ran)
        [(statement, params)] = [(s, p) for s, p in statements if "count(" in s]
        plan = [str(r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]
    assert "SCAN pod_text VIRTUAL TABLE INDEX 0:M1" in plan, plan
    assert [step for step in plan if "workload_pods" in step] == [
        "SEARCH workload_pods USING COVERING INDEX ix_workload_pods_deleted_at (deleted_at>?)"
    ], plan


def test_migration_0023_makes_pod_text_case_sensitive_and_goes_back_down(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: down to 0022, ``pod_text`` folds every case again; up, it is rebuilt case-sensitive
    over the stored pods, and counts from it (every word made broad: a cap of 2 candidates) are what
    Python finds (PostgreSQL: nothing changes either way)."""
    monkeypatch.setattr(sqlite_dialect, "CAP", 2)
    database = _stored_pods(empty_url, tmp_path, 60)

    def tokenizer() -> str | None:
        if database.dialect != "sqlite":
            return None
        with database.read() as conn:
            return str(
                conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'pod_text'")).scalar_one()
            )

    try:
        _counted_as_python_says(database)
        if database.dialect == "sqlite":
            assert "case_sensitive 1" in str(tokenizer())
        _downgrade(database, "0022")
        if database.dialect == "sqlite":
            assert "case_sensitive" not in str(tokenizer())
        migrate.upgrade(database.engine)
        if database.dialect == "sqlite":
            assert "case_sensitive 1" in str(tokenizer())
            with database.write() as conn:
                conn.execute(sa.text("INSERT INTO pod_text (pod_text, rank) VALUES ('integrity-check', 1)"))
        _counted_as_python_says(database)
    finally:
        database.dispose()


# --- search words by phase and by the rest of the text (PostgreSQL, migration 0024) ------------------

# Phases are any text of 1-32 characters from the sync protocol: besides Kubernetes' own, one with
# ``LIKE``'s special characters and spaces, one with letters outside ASCII (which ``fold`` keeps), one
# that is also a node pool's name and one that is also in the pods' names.
ODD_PHASES = ["Running", "Pending", "Succeeded", "Failed", "Ev%_il\\ Ph ase", "ÉtatÉ-x", "a100", "job"]
# Words of one phase, of several, of the names alone, of both, in a phase after its space, of none;
# two and three at once; short ones, which no trigram holds.
PHASE_WORDS = [
    "succeeded",
    "eded",
    "ed",
    "e",
    "ning",
    "a100",
    "job",
    "job-1",
    "-n",
    "ph",
    "ase",
    "%_il\\",
    "ev%",
    "ÉtatÉ-x",
    "étaté-x",
    "tatÉ",
    "1running",
    "n-running",
    "nothing-like-it",
    "succeeded a-n",
    "succeeded running",
    "ed ning",
    "job job-1",
    "e d -x",
]


def _odd_pod(rng: random.Random, n: int, revision: int) -> PodObservation:
    pod = _pod(rng, n, revision)
    return pod.model_copy(update={"k8s_phase": rng.choice(ODD_PHASES)})


@pytest.fixture
def odd_pods(database: Database) -> None:
    """120 pods in the phases of ``ODD_PHASES``; then a third of them again in other phases (the text
    is rewritten), a fifth of those deleted."""
    rng = random.Random(11)
    with database.write() as conn:
        catalog.seed(conn, NOW)
    _sync(database, [_odd_pod(rng, n, 1) for n in range(120)])
    _sync(database, [_odd_pod(rng, n, 2) for n in range(0, 120, 3)])


def _as_python_says(database: Database) -> int:
    """Every count and page of ``PHASE_WORDS`` (live and deleted pods, the tenant and a project)
    against the pods Python finds the words in; the live pods counted."""
    sort = Sort("createdAt", SortOrder.DESC)
    c = workload_pods.c
    counted = 0
    with database.read() as conn:
        rows = conn.execute(
            sa.select(c.id, c.search_text, c.deleted_at, c.project_id).order_by(
                c.created_at.desc(), c.id.desc()
            )
        ).all()
    for words in PHASE_WORDS:
        for deleted in (False, True):
            for scope in (ScopeSet.everything(), ScopeSet(projects=frozenset({"p2"}))):
                query = PodQuery(scope=scope, deleted=deleted, words=parse_search(words))
                expected = [
                    r.id
                    for r in rows
                    if (r.deleted_at is not None) == deleted
                    and (scope.tenant or r.project_id == "p2")
                    and all(w in (r.search_text or "") for w in query.words)
                ]
                with database.read() as conn:
                    assert _answer(conn, query, sort) == (expected, len(expected)), (words, deleted, scope)
                counted += len(expected) if scope.tenant and not deleted else 0
    return counted


@pytest.mark.usefixtures("odd_pods")
def test_search_words_in_phases_and_names_select_what_python_says(database: Database) -> None:
    """Words in a phase (one or several: ``ed``), in the names, in both, in a phase past a space in
    it, with ``LIKE``'s special characters, in either case of a letter outside ASCII, words that
    would span the space before the phase, several at once; live pods and deleted ones, the tenant's
    and a project's: every count and page is what Python finds in the stored texts."""
    with database.read() as conn:
        phases = set(conn.execute(sa.select(workload_pods.c.k8s_phase)).scalars())
    assert phases == set(ODD_PHASES)
    assert _as_python_says(database) > 200


@pytest.mark.usefixtures("odd_pods")
def test_a_phase_with_no_live_pod_is_no_words_phase(database: Database) -> None:
    """A phase whose pods are all deleted is no live phase: its word is counted in the live pods'
    names alone, and its deleted pods are still found by it."""
    with database.write() as conn:
        conn.execute(
            workload_pods.update().where(workload_pods.c.k8s_phase == "Failed").values(deleted_at=NOW)
        )
    with database.read() as conn:
        query = PodQuery(scope=ScopeSet.everything(), words=["failed"])
        assert store.count_pods(conn, query) == 0
        gone = PodQuery(scope=ScopeSet.everything(), deleted=True, words=["failed"])
        assert store.count_pods(conn, gone) > 0
    _as_python_says(database)


def _statements(database: Database, run: Any) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def ran(*args: Any) -> None:
        statements.append((args[2], args[3]))

    with database.read() as conn:
        sa.event.listen(conn, "before_cursor_execute", ran)
        run(conn)
        sa.event.remove(conn, "before_cursor_execute", ran)
    return statements


def _explained(database: Database, statement: str, params: Any) -> str:
    """The plan of ``statement``, where the table is no longer read whole nor walked along an index
    with a filter (the plans for a few pages), and each row's predicate is priced up: the plans for
    many rows."""
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Every page all-visible too, as a store is once autovacuum has been by.
        conn.exec_driver_sql("VACUUM ANALYZE workload_pods")
    with database.read() as conn:
        conn.exec_driver_sql(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; "
            "SET LOCAL cpu_operator_cost = 1"
        )
        return "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", params).scalars())


@pytest.mark.usefixtures("odd_pods")
def test_a_phase_words_count_reads_the_phases_index_alone(database: Database) -> None:
    """PostgreSQL: a count of ``succeeded`` is one statement, after the look-up of the live phases (a
    seek each on their index): the pods of the phase counted from that index alone, the others by the
    trigram index on the text without the phase, whose rows the predicate checks there, and no
    ``LIKE`` on the whole text."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite counts from pod_text (0023)")
    query = PodQuery(scope=ScopeSet.everything(), words=parse_search("succeeded"))
    statements = _statements(database, lambda conn: store.count_pods(conn, query))
    [(phases, _), (counted, params)] = statements
    assert "workload_pods.search_text LIKE" not in counted, counted
    plan = _explained(database, counted, params)
    # One part a phase's pods (here a bitmap: index-only scans are off with index scans; the
    # benchmark's store counts them from the index alone), one the others'.
    [of_phase] = [part for part in plan.split("InitPlan") if "ix_workload_pods_live_phase" in part]
    assert "Index Cond: ((k8s_phase)::text = 'Succeeded'::text)" in of_phase, plan
    assert "search_text" not in of_phase, plan
    assert "Bitmap Index Scan on ix_workload_pods_names_trgm" in plan, plan
    assert "ix_workload_pods_live_phase" in _explained(database, phases, _), phases


@pytest.mark.usefixtures("odd_pods")
def test_a_search_page_uses_the_text_without_the_phase(database: Database) -> None:
    """PostgreSQL: a page of a word of a phase (and of the names) is looked up by the trigram index
    on the text without the phase or the phase's index, one bitmap each, not by ``LIKE`` on the whole
    text."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite looks a word's candidates up in pod_text (pod_narrowing)")
    query = PodQuery(scope=ScopeSet.everything(), words=parse_search("eded"))
    sort = Sort("createdAt", SortOrder.DESC)
    statements = _statements(
        database, lambda conn: store.list_pods(conn, query, sort=sort, offset=0, limit=5, full=False)
    )
    [(page, params)] = [(s, p) for s, p in statements if "ORDER BY" in s and "RECURSIVE" not in s][-1:]
    assert "workload_pods.search_text LIKE" not in page, page
    plan = _explained(database, page, params)
    assert "Bitmap Index Scan on ix_workload_pods_names_trgm" in plan, plan
    assert "Bitmap Index Scan on ix_workload_pods_live_phase" in plan, plan


@pytest.mark.usefixtures("odd_pods")
def test_past_the_most_phases_words_are_matched_on_the_whole_text(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``MOST_PHASES`` distinct live phases (made to here: one), the words are the plain
    ``LIKE`` on the whole text, with the same answers."""
    from workplane.store.dialects import postgresql

    monkeypatch.setattr(postgresql, "MOST_PHASES", 1)
    _as_python_says(database)


def test_migration_0024_moves_the_pods_trigrams_off_the_phase_and_goes_back_down(
    empty_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: down to 0023, the trigram index is on the whole text again and the phase's index
    goes; up, the trigrams are on the text without the phase, over the stored pods. Either way every
    count and page of ``PHASE_WORDS`` is what Python finds (SQLite: nothing changes)."""
    database = _stored_pods(empty_url, tmp_path, 0)
    rng = random.Random(5)
    _sync(database, [_odd_pod(rng, n, 1) for n in range(60)])
    _sync(database, [_odd_pod(rng, n, 2) for n in range(0, 60, 3)])
    head = {"ix_workload_pods_names_trgm", "ix_workload_pods_live_phase"}

    def indexes() -> set[str]:
        if database.dialect == "sqlite":
            return set()
        with database.read() as conn:
            named = "SELECT indexname FROM pg_indexes WHERE tablename = 'workload_pods'"
            found = conn.execute(sa.text(named))
            return set(found.scalars()) & {*head, "ix_workload_pods_search_trgm"}

    postgresql = database.dialect == "postgresql"
    try:
        assert _as_python_says(database) > 50
        assert indexes() == (head if postgresql else set())
        _downgrade(database, "0023")
        assert indexes() == ({"ix_workload_pods_search_trgm"} if postgresql else set())
        _as_python_says(database)
        migrate.upgrade(database.engine)
        assert indexes() == (head if postgresql else set())
        _as_python_says(database)
    finally:
        database.dispose()
