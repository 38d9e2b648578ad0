"""A scoped caller's page by name walks the live name index, which holds the scopes' columns
(migration 0028), checking each entry's scope there: the pages and counts are what Python says, for a
scope whose names are spread along the order and for one whose names all sort last (the bounded walk
finds none and the scope's own index is read); on SQLite the walk reads the index alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import first_page_plans, load, paged_and_counted, wid, workload
from workplane.api.deps import Services
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.query.filters import Sort, SortOrder, WorkloadQuery
from workplane.store.database import Database

INDEX = "ix_workloads_live_name"
START = datetime(2024, 5, 1, tzinfo=UTC)
N = 240
# Every fourth row: names spread along the name order (a permutation of the creation order).
SPREAD = "spread"
# Every sixth row from the second: names that all sort after every other.
LAST = "last"
OTHER = "other"
SCOPES = {
    "project spread": Scope(ScopeType.PROJECT, SPREAD),
    "project last": Scope(ScopeType.PROJECT, LAST),
    "department spread": Scope(ScopeType.DEPARTMENT, f"d-{SPREAD}"),
}


def _project(n: int) -> str:
    if n % 4 == 0:
        return SPREAD
    return LAST if n % 6 == 1 else OTHER


def _name(n: int) -> str:
    spread = f"n{(n * 97) % N:03d}"  # 97 and 240 are coprime: every name once, out of creation order
    return f"z{spread}" if _project(n) == LAST else spread


@pytest.fixture
def placed(database: Database, services: Services) -> None:
    load(
        database,
        *(
            workload(
                f"w{n:03d}",
                name=_name(n),
                projectId=_project(n),
                projectName=_project(n),
                departmentId=f"d-{_project(n)}",
                createdAt=START + timedelta(minutes=n),
            )
            for n in range(N)
        ),
    )


def _query(scope: str) -> WorkloadQuery:
    return WorkloadQuery(scope=ScopeSet.of([SCOPES[scope]]))


def _expected(scope: str, order: SortOrder) -> list[str]:
    project = SCOPES[scope].id.removeprefix("d-")
    own = sorted((n for n in range(N) if _project(n) == project), key=_name, reverse=order is SortOrder.DESC)
    return [str(wid(f"w{n:03d}")) for n in own]


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("scope", sorted(SCOPES))
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_scoped_page_by_name_pages_and_counts_as_python_says(
    database: Database, scope: str, order: SortOrder
) -> None:
    expected = _expected(scope, order)
    assert len(expected) in (40, 60)
    with database.read() as conn:
        got = paged_and_counted(conn, _query(scope), Sort("name", order), len(expected))
    assert got == (expected, len(expected))


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("scope", ["project spread", "department spread"])
def test_a_scoped_page_by_name_walks_the_name_index_alone(database: Database, scope: str) -> None:
    """A quarter of the rows, a page of three: the walk along the name index, the scope checked in
    each entry (SQLite's plan: a covering index), where the scope's rows were read by its own index
    and sorted (a walk that read each row from the table was taken to cost 25 of those)."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    ids, plans = first_page_plans(database, _query(scope), Sort("name"))
    assert ids == _expected(scope, SortOrder.ASC)[:3]
    assert any(f"workloads USING COVERING INDEX {INDEX}" in r for p in plans for r in p), plans
