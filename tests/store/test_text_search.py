"""The trigram index narrows substring filters and search without changing any result."""

from __future__ import annotations

import pytest

from tests.factories import load, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.query.filters import Sort, WorkloadQuery, parse_filter, parse_search
from workplane.store import text_search
from workplane.store import workloads as store
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


@pytest.fixture
def inventory(database: Database, catalog: CatalogSnapshot) -> None:
    records = [workload(f"job-{n:02d}", images=[f"registry/img-{n % 3}:v1"]) for n in range(30)]
    records += [workload("RARE-one"), workload("has-rare-too"), workload("r%a_re", submittedBy="Rarely")]
    load(database, *records)


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
