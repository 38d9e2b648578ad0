"""The trigram index narrows substring filters and search without changing any result."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.factories import CLUSTER, load, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import Observation
from workplane.domain.record import WorkloadIn
from workplane.query.filters import Sort, WorkloadQuery, parse_filter, parse_search
from workplane.store import ingest, text_search
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database

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
    with database.write() as conn:
        ingest.apply_batch(
            conn,
            cluster_id=str(CLUSTER),
            cluster_name=None,
            observations=observations,
            samples=[],
            resync=None,
            catalog=CatalogCache().get(conn),
            tenant_id=1,
            now_ms=NOW,
        )


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


@pytest.mark.usefixtures("inventory")
@pytest.mark.parametrize(("filter_by", "search", "expected"), CASES)
@pytest.mark.parametrize("cap", [2, text_search.CAP])
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
    monkeypatch.setattr(text_search, "CAP", cap)
    query = WorkloadQuery(terms=parse_filter([filter_by] if filter_by else []), words=parse_search(search))
    names, count = _names(database, catalog, query)
    assert sorted(names) == sorted(expected)
    assert count == len(expected)


@pytest.mark.usefixtures("inventory")
def test_candidates_come_from_the_index_on_sqlite(database: Database) -> None:
    with database.read() as conn:
        found = text_search.candidates(conn, "name", "rare")
        short = text_search.candidates(conn, "name", "ra")
    assert short is None
    if database.is_sqlite:
        assert found is not None
        assert len(found) == 2
    else:
        assert found is None  # PostgreSQL: its planner uses the pg_trgm indexes by itself


def test_sync_batches_keep_the_index_whole(database: Database, catalog: CatalogSnapshot) -> None:
    """New rows indexed by the batch, renames and deletions by the triggers: FTS5's own integrity check
    compares the index with the text in ``workloads``."""
    if not database.is_sqlite:
        pytest.skip("the FTS5 index is SQLite's")
    ids = [uuid.uuid4() for _ in range(40)]
    _sync(database, [workload(f"first-{n}", id=i) for n, i in enumerate(ids)])
    _sync(database, [workload(f"renamed-{n}", id=i) for n, i in enumerate(ids[:10])], revision=2)
    _sync(database, [workload(f"later-{n}", id=uuid.uuid4()) for n in range(15)])
    with database.write() as conn:
        conn.execute(sa.text("DELETE FROM workloads WHERE name LIKE 'first-3%'"))
        conn.execute(sa.text("INSERT INTO workload_text (workload_text, rank) VALUES ('integrity-check', 1)"))
        found = text_search.candidates(conn, "name", "renamed")
        gone = text_search.candidates(conn, "name", "first-3")
    assert found is not None
    assert len(found) == 10
    assert gone == set()
