"""A project viewer's range on completedAt is read by the project's completed rows in completion order
(``ix_workloads_live_project_completed``, migration 0027), not by every row the project holds: the
pages and counts are what Python says, and on SQLite the page's look-up takes that index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import first_page_plans, load, paged_and_counted, wid, workload
from workplane.api.deps import Services
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.query.filters import Sort, SortOrder, WorkloadQuery, parse_filter
from workplane.store.database import Database

INDEX = "ix_workloads_live_project_completed"
START = datetime(2024, 5, 1, tzinfo=UTC)
N = 240
OWN, OTHER = "own", "other"
SINCE = START + timedelta(days=30)


def _project(n: int) -> str:
    return OWN if n % 4 == 0 else OTHER


def _completed(n: int) -> datetime | None:
    """The other project's rows complete throughout the range; the own project's only its newest
    few (the project's matches are at the far end of its creation order), and a few of its older
    ones long before the range. Every fifth row is still running."""
    if n % 5 == 1:
        return None
    if _project(n) == OTHER or n >= N - 40:
        return START + timedelta(days=31, hours=n)
    return START + timedelta(days=1, hours=n)


@pytest.fixture
def placed(database: Database, services: Services) -> None:
    load(
        database,
        *(
            workload(
                f"w{n:03d}",
                projectId=_project(n),
                projectName=_project(n),
                phase="Running" if _completed(n) is None else "Completed",
                createdAt=START + timedelta(minutes=n),
                completedAt=_completed(n),
            )
            for n in range(N)
        ),
    )


def _query(project: str) -> WorkloadQuery:
    return WorkloadQuery(
        scope=ScopeSet.of([Scope(ScopeType.PROJECT, project)]),
        terms=parse_filter([f"completedAt>={SINCE.isoformat().replace('+00:00', 'Z')}"]),
    )


def _expected(project: str, order: SortOrder) -> list[str]:
    own = [n for n in range(N) if _project(n) == project and (_completed(n) or START) >= SINCE]
    return [str(wid(f"w{n:03d}")) for n in sorted(own, reverse=order is SortOrder.DESC)]


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("project", [OWN, OTHER])
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_viewers_completed_range_pages_and_counts_as_python_says(
    database: Database, project: str, order: SortOrder
) -> None:
    expected = _expected(project, order)
    assert expected
    with database.read() as conn:
        got = paged_and_counted(conn, _query(project), Sort("createdAt", order), len(expected))
    assert got == (expected, len(expected))


@pytest.mark.usefixtures("placed")
def test_the_project_s_matches_are_looked_up_by_its_completed_rows(database: Database) -> None:
    """The page's look-up of the project's matches reads the project's completed rows in completion
    order from the range's start (SQLite's plan; PostgreSQL chooses by its statistics), where it
    read the project's every row by its creation-ordered index."""
    if database.dialect != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    ids, plans = first_page_plans(database, _query(OWN), Sort("createdAt"))
    assert ids == _expected(OWN, SortOrder.ASC)[:3]
    assert any(f"USING INDEX {INDEX} (project_id=? AND completed_at>?)" in r for p in plans for r in p), plans
