"""A scoped selection that is looked up by its terms' indexes (few rows, or a range under a walk's
reach) is read by those indexes on SQLite, the scope checked on each row, where the scope holds more
live rows than the terms select (``store.ordering.terms_lead``, and ``ranges_lead`` for a count); the
pages and counts are the same. A few rows selected by equalities on columns indexed with the creation
order are walked in that order (``store.workloads._held_in_creation_order``). PostgreSQL plans by its
statistics and is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import first_page_plans, load, paged_and_counted, wid, workload
from workplane.api.deps import Services
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.domain.timefmt import now_ms
from workplane.query.filters import Sort, SortOrder, WorkloadQuery, parse_filter
from workplane.store.catalog import CatalogCache
from workplane.store.compile import Compiler
from workplane.store.database import Database, dialect_of
from workplane.store.ordering import Asked, Rollup, Walk, ranged_walk, ranges_lead, terms_lead

# 240 workloads in project "big", 8 in project "small": 14 Pending (13 in big, 1 in small) and 9 with
# 8 GPUs (8 in big, 1 in small). For pages of one row (two ids asked), a walk's reach is
# ceil(sqrt(2 * 248)) = 23.
BIG, SMALL = "big", "small"
N = 248
START = datetime(2024, 5, 1, tzinfo=UTC)


def _project(n: int) -> str:
    return SMALL if n % 31 == 7 else BIG


def _pending(n: int) -> bool:
    return n % 19 == 0


def _gpus(n: int) -> int:
    return 8 if n % 27 == 7 else 1


@pytest.fixture
def placed(database: Database, services: Services) -> None:
    load(
        database,
        *(
            workload(
                f"w{n:03d}",
                projectId=_project(n),
                projectName=_project(n),
                phase="Pending" if _pending(n) else "Running",
                createdAt=START + timedelta(minutes=(n * 53) % N),
                allocatedResources={"gpu": _gpus(n)},
            )
            for n in range(N)
        ),
    )


def _query(project: str | None, *terms: str, deleted: bool = False) -> WorkloadQuery:
    scope = ScopeSet.everything() if project is None else ScopeSet.of([Scope(ScopeType.PROJECT, project)])
    return WorkloadQuery(scope=scope, deleted=deleted, terms=parse_filter(list(terms)))


@pytest.mark.usefixtures("placed")
def test_the_terms_lead_where_the_scope_holds_more_than_they_select(database: Database) -> None:
    # The counts the decisions below weigh (the comment above ``BIG``).
    assert sum(_project(n) == SMALL for n in range(N)) == 8
    assert [sum(_pending(n) for n in range(N) if _project(n) == p) for p in (BIG, SMALL)] == [13, 1]
    assert [sum(_gpus(n) == 8 for n in range(N) if _project(n) == p) for p in (BIG, SMALL)] == [8, 1]
    with database.read() as conn:
        catalog = CatalogCache().get(conn)
        compiler = Compiler(catalog, now_ms(), dialect_of(conn))

        def rollup(query: WorkloadQuery) -> Rollup:
            return Rollup(conn, query, compiler, Asked())

        def few(query: WorkloadQuery) -> bool:
            return terms_lead(rollup(query), few=True, walk=None, need=2)

        def under_reach(query: WorkloadQuery) -> bool:
            walk = ranged_walk(rollup(query), Sort("createdAt"), need=2)
            assert walk == Walk(None)  # 9 rows: fewer than the reach
            return terms_lead(rollup(query), few=False, walk=walk, need=2)

        if database.dialect == "postgresql":
            assert not few(_query(BIG, "phase==Pending"))
            assert not under_reach(_query(BIG, "allocatedGPU>=8"))
            assert not ranges_lead(rollup(_query(BIG, "allocatedGPU>=8")))
            return
        assert few(_query(BIG, "phase==Pending"))  # 14 Pending tenant-wide against the scope's 240 rows
        assert not few(_query(SMALL, "phase==Pending"))  # 14 against 8: the scope's index
        assert not few(_query(BIG, "phase!=Running"))  # a negation: no index of its own
        assert not few(_query(BIG, "phase==Pending", "phase!=Running"))
        assert not few(_query(None, "phase==Pending"))  # no scope to check
        assert not few(_query(BIG, "phase==Pending", deleted=True))
        assert not terms_lead(
            Rollup(conn, _query(BIG, "phase==Pending"), compiler.varied(scope_unindexed=True), Asked()),
            few=True,
            walk=None,
            need=2,
        )  # already off its index
        assert under_reach(_query(BIG, "allocatedGPU>=8"))  # 240 past the reach of 23
        assert not under_reach(_query(SMALL, "allocatedGPU>=8"))  # 8: under it
        assert not terms_lead(rollup(_query(BIG, "allocatedGPU>=8")), few=False, walk=None, need=2)
        assert not terms_lead(
            rollup(_query(BIG, "allocatedGPU>=8")), few=False, walk=Walk(None, empty=True), need=2
        )
        assert ranges_lead(rollup(_query(BIG, "allocatedGPU>=8")))  # 9 against 240
        assert not ranges_lead(rollup(_query(SMALL, "allocatedGPU>=8")))  # 9 against 8
        assert not ranges_lead(rollup(_query(BIG, "phase==Pending")))  # no range


def _expected(project: str, holds: Any, order: SortOrder) -> list[str]:
    own = [n for n in range(N) if _project(n) == project and holds(n)]
    ordered = sorted(
        own, key=lambda n: ((n * 53) % N, str(wid(f"w{n:03d}"))), reverse=order is SortOrder.DESC
    )
    return [str(wid(f"w{n:03d}")) for n in ordered]


CASES = {
    "phase==Pending": _pending,
    "allocatedGPU>=8": lambda n: _gpus(n) == 8,
    "phase==Running,allocatedGPU>=8": lambda n: not _pending(n) and _gpus(n) == 8,
}


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("project", [BIG, SMALL])
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
@pytest.mark.parametrize("terms", sorted(CASES))
def test_a_viewers_pages_and_counts_are_its_own(
    database: Database, project: str, order: SortOrder, terms: str
) -> None:
    expected = _expected(project, CASES[terms], order)
    query = _query(project, *terms.split(","))
    with database.read() as conn:
        assert paged_and_counted(conn, query, Sort("createdAt", order), len(expected)) == (
            expected,
            len(expected),
        )


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_few_equal_rows_are_walked_in_the_creation_order_by_the_leading_index(
    database: Database, order: SortOrder
) -> None:
    """A few rows selected by equalities on columns whose live index is ``(column, created_at, id)``
    are walked along it in the creation order until the page is full, not read whole and sorted: by
    the status's index where the terms lead, by the project's where the scope does."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    for project, index in ((BIG, "ix_workloads_live_phase"), (SMALL, "ix_workloads_live_project_id")):
        _, (plan,) = first_page_plans(database, _query(project, "phase==Pending"), Sort("createdAt", order))
        # The project's index holds the status (migration 0029): read alone, a covering index.
        assert any(f"USING INDEX {index} " in r or f"USING COVERING INDEX {index} " in r for r in plan), plan
        assert not any("TEMP B-TREE" in r for r in plan), plan
