"""A scoped caller's pages in the order of a text field, on SQLite's plans that weigh the scope.

- By name: the live name index holds the scopes' columns (migration 0028), and a page walks it,
  checking each entry's scope there: for a scope whose names are spread along the order and for one
  whose names all sort last (the bounded walk finds none and the scope's own index is read).
- By type, read a type at a time (``ordering.parts_for``): a type that holds more rows tenant-wide
  than the scope does is kept off its index, and the scope's own index, which holds the type
  (migration 0029), reads the part alone.
- By phaseUpdatedAt: a scope's rows are looked up and sorted, on PostgreSQL with the order kept off
  its index (``store.workloads._gathered_in_time``), where the planner would walk the time's index;
  on SQLite from the scope's index alone, which holds the time (migration 0030).

The pages and counts are what Python says on both databases; SQLite's plans are the ones described.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import first_page_plans, first_page_statements, load, paged_and_counted, wid, workload
from workplane.api.deps import Services
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.query.filters import Sort, SortOrder, WorkloadQuery
from workplane.store import workloads as store
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


def _phase_updated(n: int) -> datetime:
    return START + timedelta(hours=(n * 53) % N)


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
                phaseUpdatedAt=_phase_updated(n),
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
    keys: dict[str, Callable[[int], tuple[Any, str]]] = {
        "name": lambda n: (_name(n), ""),
        "type": lambda n: (_type(n), str(wid(f"w{n:03d}"))),
        "phaseUpdatedAt": lambda n: (_phase_updated(n), str(wid(f"w{n:03d}"))),
    }
    key = keys[field]
    return [str(wid(f"w{n:03d}")) for n in sorted(own, key=key, reverse=order is SortOrder.DESC)]


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("field", ["name", "type", "phaseUpdatedAt"])
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
    million workloads every live Training row read and sorted for a viewer's page, 0.8 s), and from
    that index alone, which holds the type (migration 0029)."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    ids, plans = first_page_plans(database, _query(scope), Sort("type", SortOrder.DESC))
    assert ids == _expected(scope, SortOrder.DESC, "type")[:3]
    (part,) = [p for p in plans if any("ix_workloads_live_" in r for r in p)]
    column = "project_id" if scope.startswith("project") else "department_id"
    assert any(f"USING COVERING INDEX ix_workloads_live_{column} ({column}=?)" in r for r in part), plans


def _page_orders(database: Database, query: WorkloadQuery) -> list[str]:
    """The ORDER BY of each statement of a first page by phaseUpdatedAt that selects ids in order."""
    _ids, selects = first_page_statements(database, query, Sort("phaseUpdatedAt"))
    return [statement.split("ORDER BY")[1] for statement, _p in selects]


@pytest.mark.usefixtures("placed")
def test_a_scoped_page_by_phase_updated_at_is_sorted_not_walked_on_postgresql(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scope's rows sorted, the order off its index (``phase_updated_at + 0``: PostgreSQL walked
    the time's index, expecting the scope's rows spread along it); not tenant-wide, and not for a
    scope of more than ``GATHERED_LOOKUP_MOST`` rows."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite keeps a scope on its index for a time's order (_broad_scope)")
    (scoped,) = _page_orders(database, _query("project spread"))
    assert "workloads.phase_updated_at + " in scoped
    (tenant,) = _page_orders(database, WorkloadQuery(scope=ScopeSet.everything()))
    assert "workloads.phase_updated_at + " not in tenant
    monkeypatch.setattr(store, "GATHERED_LOOKUP_MOST", 59)
    (broad,) = _page_orders(database, _query("project spread"))
    assert "workloads.phase_updated_at + " not in broad


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("scope", ["project spread", "department spread"])
def test_a_scoped_page_by_phase_updated_at_reads_the_scope_s_index_alone_on_sqlite(
    database: Database, scope: str
) -> None:
    """The scope's index holds phaseUpdatedAt (migration 0030): its entries sorted, no row read."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    ids, plans = first_page_plans(database, _query(scope), Sort("phaseUpdatedAt"))
    assert ids == _expected(scope, SortOrder.ASC, "phaseUpdatedAt")[:3]
    column = "project_id" if scope.startswith("project") else "department_id"
    assert any(
        f"USING COVERING INDEX ix_workloads_live_{column} ({column}=?)" in r for p in plans for r in p
    ), plans
