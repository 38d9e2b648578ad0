"""A scoped caller's pages in the order of a text field, on SQLite's plans that weigh the scope.

- By name: the live name index holds the scopes' columns (migration 0028), and a page walks it,
  checking each entry's scope there: for a scope whose names are spread along the order and for one
  whose names all sort last (the bounded walk finds none and the scope's own index is read).
- By type, read a type at a time (``ordering.parts_for``): a type that holds more rows tenant-wide
  than the scope does is kept off its index, and the scope's own index reads the part.

The pages and counts are what Python says on both databases; SQLite's plans are the ones described.
"""

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


def _type(n: int) -> str:
    """Every eighth row (half the spread project's) a PyTorchJob, the rest Training."""
    return "PyTorchJob" if n % 8 == 0 else "Training"


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
                type=_type(n),
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


def _expected(scope: str, order: SortOrder, field: str = "name") -> list[str]:
    project = SCOPES[scope].id.removeprefix("d-")
    own = [n for n in range(N) if _project(n) == project]
    key = {"name": lambda n: (_name(n), ""), "type": lambda n: (_type(n), str(wid(f"w{n:03d}")))}[field]
    return [str(wid(f"w{n:03d}")) for n in sorted(own, key=key, reverse=order is SortOrder.DESC)]


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("field", ["name", "type"])
@pytest.mark.parametrize("scope", sorted(SCOPES))
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_scoped_page_pages_and_counts_as_python_says(
    database: Database, scope: str, order: SortOrder, field: str
) -> None:
    expected = _expected(scope, order, field)
    assert len(expected) in (40, 60)
    with database.read() as conn:
        got = paged_and_counted(conn, _query(scope), Sort(field, order), len(expected))
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


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("scope", ["project spread", "department spread"])
def test_a_part_of_a_type_broader_than_the_scope_is_read_by_the_scope_s_index(
    database: Database, scope: str
) -> None:
    """Newest type first: the scope's Training rows (30 of its 60), a part whose type holds 210 live
    rows tenant-wide, are read by the scope's own index, not by the type's (which SQLite took: at a
    million workloads every live Training row read and sorted for a viewer's page, 0.8 s)."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    ids, plans = first_page_plans(database, _query(scope), Sort("type", SortOrder.DESC))
    assert ids == _expected(scope, SortOrder.DESC, "type")[:3]
    (part,) = [p for p in plans if any("ix_workloads_live_" in r for r in p)]
    column = "project_id" if scope.startswith("project") else "department_id"
    assert any(f"USING INDEX ix_workloads_live_{column} ({column}=?)" in r for r in part), plans
