"""The trigram index narrows substring filters and search without changing any result; on PostgreSQL
the side table holding the text and its indexes stays in step with every write."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import postgresql, sqlite

from tests.conftest import POSTGRES_URL, _drop_postgres, _fresh_postgres
from tests.factories import CLUSTER, load, sync, update_workload, wid, workload
from workplane.domain.catalog import CatalogSnapshot, TypeDefaults
from workplane.domain.observation import Observation
from workplane.domain.record import WorkloadIn
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Sort, WorkloadQuery, parse_filter, parse_search
from workplane.store import migrate
from workplane.store import workloads as store
from workplane.store.compile import Compiler
from workplane.store.database import Database, SqlDialect
from workplane.store.dialects import POSTGRESQL, SQLITE
from workplane.store.dialects import sqlite as sqlite_dialect
from workplane.store.schema import workloads

EVERYTHING = ScopeSet.everything()

NOW = 1_800_000_000_000


def _names(database: Database, catalog: CatalogSnapshot, query: WorkloadQuery) -> tuple[list[str], int]:
    with database.read() as conn:
        page = store.list_workloads(
            conn, query, sort=Sort(), offset=0, limit=500, catalog=catalog, now_ms=NOW
        )
        count = store.count_workloads(conn, query, catalog=catalog, now_ms=NOW)
        names = [r.doc.split('"name":"', 1)[1].split('"', 1)[0] for r in page.rows]
    return names, count


def _sync(database: Database, records: list[WorkloadIn], revision: int = 1) -> None:
    """Write the records as one agent's sync batch (which indexes its new rows itself)."""
    observations = [
        Observation.model_validate(
            {**r.model_dump(mode="json", by_alias=True, exclude_none=True), "revision": revision}
        )
        for r in records
    ]
    sync(database, observations, now=NOW)


@pytest.fixture(params=["store", "sync"])
def inventory(request: pytest.FixtureRequest, database: Database, catalog: CatalogSnapshot) -> None:
    """The same workloads written by the store (the text index's triggers) or by a sync batch."""
    records = [workload(f"job-{n:02d}", images=[f"registry/img-{n % 3}:v1"]) for n in range(30)]
    records += [workload("RARE-one"), workload("has-rare-too"), workload("r%a_re", submittedBy="Rarely")]
    if request.param == "store":
        load(database, *records)
    else:
        _sync(database, [r.model_copy(update={"id": uuid.uuid4()}) for r in records])


CASES = [
    ("name=@rare", None, ["RARE-one", "has-rare-too"]),
    ("name=^rar", None, ["RARE-one"]),
    ("name=$too", None, ["has-rare-too"]),
    ("name=@job-0", None, [f"job-0{n}" for n in range(10)]),
    ("name=@%a_", None, ["r%a_re"]),
    (None, "rarely", ["r%a_re"]),
    (None, "img-2 job-2", ["job-20", "job-23", "job-26", "job-29"]),
    # "train" matches the category, not the text; "rare" is also in the submitter "Rarely".
    (None, "train rare", ["RARE-one", "has-rare-too", "r%a_re"]),
    ("name=@nothing-like-it", None, []),
]


@pytest.mark.no_cover
@pytest.mark.usefixtures("inventory")
@pytest.mark.parametrize(("filter_by", "search", "expected"), CASES)
@pytest.mark.parametrize("cap", [2, sqlite_dialect.CAP])
def test_index_and_scan_agree(
    database: Database,
    catalog: CatalogSnapshot,
    monkeypatch: pytest.MonkeyPatch,
    filter_by: str | None,
    search: str | None,
    expected: list[str],
    cap: int,
) -> None:
    # With a cap of 2 most needles are "broad" and take the scan path; with the real cap, the index.
    monkeypatch.setattr(sqlite_dialect, "CAP", cap)
    query = WorkloadQuery(
        scope=EVERYTHING, terms=parse_filter([filter_by] if filter_by else []), words=parse_search(search)
    )
    names, count = _names(database, catalog, query)
    assert sorted(names) == sorted(expected)
    assert count == len(expected)


@pytest.mark.usefixtures("inventory")
def test_candidates_come_from_the_index_on_sqlite(database: Database) -> None:
    with database.read() as conn:
        found = database.sql.text_candidates(conn, "name", "rare")
        short = database.sql.text_candidates(conn, "name", "ra")
    assert short is None
    if database.dialect == "sqlite":
        assert found is not None
        assert len(found) == 2
    else:
        assert found is None  # PostgreSQL: its planner uses the trigram indexes of workload_search


def test_sync_batches_keep_the_index_whole(database: Database, catalog: CatalogSnapshot) -> None:
    """New rows indexed by the batch, renames and deletions by the triggers: FTS5's own integrity check
    compares the index with the text in ``workloads``."""
    if database.dialect != "sqlite":
        pytest.skip("the FTS5 index is SQLite's")
    ids = [uuid.uuid4() for _ in range(40)]
    _sync(database, [workload(f"first-{n}", id=i) for n, i in enumerate(ids)])
    _sync(database, [workload(f"renamed-{n}", id=i) for n, i in enumerate(ids[:10])], revision=2)
    _sync(database, [workload(f"later-{n}", id=uuid.uuid4()) for n in range(15)])
    with database.write() as conn:
        conn.execute(sa.text("DELETE FROM workloads WHERE name LIKE 'first-3%'"))
        conn.execute(sa.text("INSERT INTO workload_text (workload_text, rank) VALUES ('integrity-check', 1)"))
        found = database.sql.text_candidates(conn, "name", "renamed")
        gone = database.sql.text_candidates(conn, "name", "first-3")
    assert found is not None
    assert len(found) == 10
    assert gone == set()


def test_substring_predicates_compile_per_database() -> None:
    """SQLite keeps the plain LIKE on workloads (its FTS5 narrowing is separate); PostgreSQL asks
    workload_search where a trigram index can serve the predicate."""
    catalog = CatalogSnapshot({}, 1)
    query = WorkloadQuery(
        scope=EVERYTHING, terms=parse_filter(["name=@abc", "name=^d", "name=$e"]), words=parse_search("fgh")
    )

    def where(dialect: SqlDialect, query: WorkloadQuery) -> sa.Select[Any]:
        return sa.select(workloads.c.id).where(*Compiler(catalog, NOW, dialect).where(query))

    lite = str(where(SQLITE, query).compile(dialect=sqlite.dialect()))
    pg = str(where(POSTGRESQL, query).compile(dialect=postgresql.dialect()))
    assert "workload_search" not in lite
    assert lite.count("lower(workloads.name) LIKE") == 3
    assert "workloads.search_text LIKE" in lite
    assert pg.count("EXISTS (SELECT * \nFROM workload_search") == 1  # one look-up for all four
    assert "lower(workloads.name)" not in pg
    assert "workloads.search_text" not in pg
    # Neither a negative operator nor a word that also matches a phase or category name (an OR).
    for plain in (
        WorkloadQuery(scope=EVERYTHING, terms=parse_filter(["name!@abc"])),
        WorkloadQuery(scope=EVERYTHING, words=parse_search("run")),
    ):
        statement = where(POSTGRESQL, plain)
        assert "workload_search" not in str(statement.compile(dialect=postgresql.dialect()))


# --- the query layer's answers equal the plain predicates ------------------------------------------

NEEDLES = ["a", "ab", "abc", "Ab%", "x_y", "\\", "é", "É", "zzz-nothing", "job", "-1", "q"]
WORDS = ["a", "abc", "train", "completed", "run", "pytorch", "img-1", "team-b", "É", "zzz-nothing"]


def _plain(catalog: CatalogSnapshot, query: WorkloadQuery) -> list[sa.ColumnElement[bool]]:
    """The query's predicates with every substring match on workloads' own columns: what the query
    meant before any index got involved. (The base dialect renders the plain predicates; SQLite's
    index narrows the candidates apart from them.)"""
    return Compiler(catalog, NOW, SqlDialect()).where(query)


@pytest.fixture
def mixed(database: Database, catalog: CatalogSnapshot) -> None:
    """Names in mixed case with LIKE's special characters and non-ASCII letters; some deleted, some
    renamed after they were created (so the side table has been rewritten)."""
    rng = random.Random(5)
    letters = ["a", "b", "A", "B", "c", "%", "_", "\\", "é", "É", "-", "1", "x", "y", "q"]
    records = []
    for n in range(120):
        name = "".join(rng.choice(letters) for _ in range(rng.randrange(1, 9))) + f"-{n}"
        records.append(
            workload(
                f"m{n}",
                name=name,
                phase=rng.choice(["Running", "Completed", "Pending"]),
                category=rng.choice([None, "Train", "Build"]),
                projectName=rng.choice(["team-a", "team-b"]),
                images=[f"img-{n % 3}:v1"] if n % 4 else [],
                submittedBy=rng.choice([None, "Émile", "abc"]),
            )
        )
    ids = load(database, *records)
    with database.write() as conn:
        for workload_id in ids[::7]:
            store.delete_workload(conn, workload_id, deleted_at_ms=NOW - 1)
        for n, workload_id in enumerate(ids[3::11]):
            conn.execute(
                workloads.update().where(workloads.c.id == workload_id).values(name=f"Renamed-ABC-{n}")
            )


def _queries() -> list[WorkloadQuery]:
    queries = []
    for needle in NEEDLES:
        for op in ("=@", "=^", "=$", "!@"):
            for deleted in (False, True):
                queries.append(
                    WorkloadQuery(
                        scope=EVERYTHING, terms=parse_filter([f"name{op}{needle}"]), deleted=deleted
                    )
                )
    for word in WORDS:
        queries.append(WorkloadQuery(scope=EVERYTHING, words=parse_search(word)))
        queries.append(WorkloadQuery(scope=EVERYTHING, words=parse_search(f"{word} team"), deleted=True))
    queries.append(
        WorkloadQuery(
            scope=EVERYTHING, terms=parse_filter(["name=@ab", "phase==Running"]), words=parse_search("img")
        )
    )
    return queries


@pytest.mark.usefixtures("mixed")
def test_substring_answers_equal_the_plain_predicates(database: Database, catalog: CatalogSnapshot) -> None:
    for query in _queries():
        with database.read() as conn:
            expected = sorted(
                conn.execute(sa.select(workloads.c.id).where(*_plain(catalog, query))).scalars()
            )
            page = store.list_workloads(
                conn, query, sort=Sort(), offset=0, limit=1000, catalog=catalog, now_ms=NOW
            )
            count = store.count_workloads(conn, query, catalog=catalog, now_ms=NOW)
        assert sorted(r.id for r in page.rows) == expected, query
        assert count == len(expected), query


# --- PostgreSQL: workload_search follows every write ------------------------------------------------


def _observation(n: int, revision: int, **fields: Any) -> Observation:
    values: dict[str, Any] = {
        "id": str(wid(f"s{n}")),
        "clusterId": str(CLUSTER),
        "revision": revision,
        "name": f"Sync-{n}",
        "projectId": "p1",
        "projectName": "team-a",
        "departmentId": "d1",
        "departmentName": "research",
        "type": "Training",
        "phase": "Pending",
        "createdAt": "2024-05-01T10:00:00Z",
        "images": ["nvcr.io/nvidia/pytorch:24.05-py3"],
    }
    values.update(fields)
    return Observation.model_validate(values)


def _sync_observations(database: Database, *observations: Observation) -> None:
    sync(database, observations, now=NOW)


def _side_rows(database: Database) -> dict[str, tuple[str, str, str]]:
    """workload_search after checking it against workloads: id -> (name_lower, search_text, xmin)."""
    with database.read() as conn:
        stale = conn.execute(
            sa.text(
                "SELECT count(*) FROM workloads w FULL JOIN workload_search s ON s.workload_id = w.id "
                "WHERE w.id IS NULL OR s.workload_id IS NULL "
                "OR s.name_lower <> lower(w.name) OR s.search_text <> w.search_text"
            )
        ).scalar_one()
        rows = conn.execute(
            sa.text("SELECT workload_id, name_lower, search_text, xmin::text FROM workload_search")
        )
        found = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert stale == 0
    return found


def _named(database: Database, catalog: CatalogSnapshot, raw: str, deleted: bool = False) -> list[str]:
    query = WorkloadQuery(scope=EVERYTHING, terms=parse_filter([raw]), deleted=deleted)
    with database.read() as conn:
        page = store.list_workloads(
            conn, query, sort=Sort(), offset=0, limit=100, catalog=catalog, now_ms=NOW
        )
    return sorted(r.id for r in page.rows)


def test_side_table_follows_every_write(database: Database, catalog: CatalogSnapshot) -> None:
    if database.dialect == "sqlite":
        pytest.skip("workload_search is PostgreSQL's (SQLite keeps its FTS5 table)")
    first, second, third = (str(wid(f"s{n}")) for n in range(3))
    # Created by a sync batch (one INSERT for the batch).
    _sync_observations(database, *(_observation(n, 1) for n in range(3)))
    created = _side_rows(database)
    assert set(created) == {first, second, third}
    assert created[first][0] == "sync-0"
    # A phase change leaves the text alone: the row is not even rewritten.
    _sync_observations(database, *(_observation(n, 2, phase="Running") for n in range(3)))
    assert _side_rows(database) == created
    # A rename through a sync batch.
    _sync_observations(database, _observation(0, 3, name="Renamed-Zero", phase="Running"))
    renamed = _side_rows(database)
    assert renamed[first][0] == "renamed-zero"
    assert "renamed-zero" in renamed[first][1]
    assert renamed[second] == created[second]
    assert _named(database, catalog, "name=@ZERO") == [first]
    assert _named(database, catalog, "name=@sync-0") == []
    # A hand-written UPDATE of the name, and one that writes the same name again (no change).
    with database.write() as conn:
        conn.execute(sa.text("UPDATE workloads SET name = 'By-Hand' WHERE id = :id"), {"id": second})
        conn.execute(sa.text("UPDATE workloads SET name = name WHERE id = :id"), {"id": third})
    by_hand = _side_rows(database)
    assert by_hand[second][0] == "by-hand"
    assert by_hand[third] == created[third]
    assert _named(database, catalog, "name=^by-h") == [second]
    # A full replace through the store (every column named in SET, the text unchanged).
    with database.write() as conn:
        update_workload(
            conn, workload("s2", id=third, name="Sync-2"), catalog=catalog, tenant_id=1, now_ms=NOW
        )
    assert _side_rows(database)[third][0] == "sync-2"
    # Deleted workloads keep their text (deleted=true listings search it); the purge takes it away.
    with database.write() as conn:
        store.delete_workload(conn, first, deleted_at_ms=NOW - 10)
    assert first in _side_rows(database)
    assert _named(database, catalog, "name=@zero", deleted=True) == [first]
    assert _named(database, catalog, "name=@zero") == []
    with database.write() as conn:
        assert store.purge_deleted(conn, older_than_ms=NOW) == 1
    assert set(_side_rows(database)) == {second, third}
    # A hand-written DELETE cascades too.
    with database.write() as conn:
        conn.execute(sa.text("DELETE FROM workloads WHERE id = :id"), {"id": second})
    assert set(_side_rows(database)) == {third}


def test_migration_fills_the_side_table_and_goes_back_down(tmp_path: Path) -> None:
    """0010 copies the text of the workloads already stored and moves the trigram indexes; its
    downgrade restores the indexes of 0004. On SQLite it changes nothing."""
    lite = sa.create_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
    migrate.upgrade(lite)
    assert "workload_text" in sa.inspect(lite).get_table_names()
    assert "workload_search" not in sa.inspect(lite).get_table_names()
    lite.dispose()
    if not POSTGRES_URL:
        pytest.skip("WORKPLANE_TEST_POSTGRES_URL is not set")
    url, name = _fresh_postgres(POSTGRES_URL)
    engine = sa.create_engine(url)
    try:
        migrate.upgrade(engine, "0008")
        catalog = CatalogSnapshot({"Training": TypeDefaults("Training", "Train", "low")}, 1)
        with engine.begin() as conn:
            ids = store.create_workloads(
                conn, [workload("Old-One"), workload("Old-Two")], catalog=catalog, tenant_id=1, now_ms=NOW
            )
            store.delete_workload(conn, ids[1], deleted_at_ms=NOW)
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT workload_id, name_lower FROM workload_search")).all()
            assert sorted(rows) == sorted(zip(ids, ["old-one", "old-two"], strict=True))
        assert _trigram_indexes(engine) == {
            # With 0022's index on the ids (a pod's workloadId substring).
            "workload_search": [
                "ix_workload_search_id_trgm",
                "ix_workload_search_name_trgm",
                "ix_workload_search_text_trgm",
            ],
            "workloads": [],
        }
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), "0008")
        assert "workload_search" not in sa.inspect(engine).get_table_names()
        assert _trigram_indexes(engine)["workloads"] == ["ix_workloads_name_trgm", "ix_workloads_search_trgm"]
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.heads()[0]
    finally:
        engine.dispose()
        _drop_postgres(POSTGRES_URL, name)


def _trigram_indexes(engine: sa.Engine) -> dict[str, list[str]]:
    inspector = sa.inspect(engine)
    tables = [t for t in ("workloads", "workload_search") if t in inspector.get_table_names()]
    return {
        t: sorted(str(i["name"]) for i in inspector.get_indexes(t) if str(i["name"]).endswith("_trgm"))
        for t in tables
    }
