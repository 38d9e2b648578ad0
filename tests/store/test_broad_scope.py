"""A caller's scope that holds most of the live workloads is kept off its columns' indexes on SQLite
in an order that is not a time (``store.workloads._broad_scope``): the order's index is walked and
the scope checked on each row, and the page is the same. PostgreSQL plans by its statistics and is
left alone."""

from __future__ import annotations

import pytest

from tests.factories import ids_a_row_at_a_time, load, statements_sent, wid, workload
from workplane.api.deps import Services
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.domain.timefmt import now_ms
from workplane.query.filters import Sort, SortOrder, WorkloadQuery
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database, dialect_of
from workplane.store.ordering import Asked

# 150 workloads in project 1 and 50 in project 2: for a page of one row (two ids asked), a scope is
# broad from sqrt(25 * 2 * 200) = 100 rows on (SQLite's walk cost, ``ordering.dense``), and in the
# name's order, whose index holds the scope, from sqrt(1 * 2 * 200) = 20.
BROAD, NARROW = "1", "2"


@pytest.fixture
def placed(database: Database, services: Services) -> None:
    load(
        database,
        *(
            workload(f"w{n:03d}", name=f"job-{(n * 37) % 200:03d}", projectId=BROAD if n < 150 else NARROW)
            for n in range(200)
        ),
    )


def _viewer(project: str) -> WorkloadQuery:
    return WorkloadQuery(scope=ScopeSet.of([Scope(ScopeType.PROJECT, project)]))


@pytest.mark.usefixtures("placed")
def test_a_broad_scope_is_walked_past_in_orders_that_are_not_times(database: Database) -> None:
    with database.read() as conn:
        dialect = dialect_of(conn)

        totals: list[int | None] = []

        def broad(project: str, field: str) -> bool:
            asked = Asked()
            answer = store._broad_scope(conn, _viewer(project), Sort(field), dialect, asked, need=2)
            totals.append(asked.live_total)
            return answer

        if database.dialect == "postgresql":
            assert not broad(BROAD, "name")
            return
        assert broad(BROAD, "name")
        assert broad(BROAD, "type")
        # 50 rows: looked up by the scope's index and sorted, where the walk reads each row it
        # visits from the table (the type's index) ...
        assert not broad(NARROW, "type")
        # ... but walked where the order's index holds the scope (the name's, migration 0028): from
        # sqrt(1 * 2 * 200) = 20 rows on.
        assert broad(NARROW, "name")
        assert not broad(BROAD, "createdAt")  # the scope's own index is ordered by creation
        assert not broad(BROAD, "completedAt")  # a scope's rows gather in time
        # The live total read on the way is kept for the plans, which do not ask it again; none is
        # read where the order rules the walk out.
        assert totals == [200, 200, 200, 200, None, None]


@pytest.mark.usefixtures("placed")
@pytest.mark.parametrize("project", [BROAD, NARROW])
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_viewers_pages_by_name_are_its_own_in_order(
    database: Database, project: str, order: SortOrder
) -> None:
    own = [n for n in range(200) if (n < 150) == (project == BROAD)]
    by_name = sorted(own, key=lambda n: (n * 37) % 200, reverse=order is SortOrder.DESC)
    expected = [str(wid(f"w{n:03d}")) for n in by_name]
    # Pages of one row: the first few are asked of the broad scope's walk (``placed``), the rest of
    # the scope's index.
    with database.read() as conn:
        got = ids_a_row_at_a_time(conn, _viewer(project), Sort("name", order), len(expected))
    assert got == expected


@pytest.fixture
def gathered(database: Database, services: Services) -> None:
    """The broad project's 150 names all sort after the narrow project's 50 (``z-`` and ``a-``)."""
    load(
        database,
        *(
            workload(
                f"w{n:03d}",
                name=f"{'z' if n < 150 else 'a'}-{(n * 37) % 200:03d}",
                projectId=BROAD if n < 150 else NARROW,
            )
            for n in range(200)
        ),
    )


@pytest.mark.usefixtures("gathered")
@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_broad_scope_gathered_at_the_far_end_is_walked_no_further_than_its_spread(
    database: Database, order: SortOrder
) -> None:
    """A broad scope's rows at the far end of the order: the walk along the order's index stops at the
    bound that an even spread would reach (``WALK_SLACK`` times it: 12 rows for a page of one row),
    and the page is then read by the scope's index and sorted. At the near end, the walk fills it."""
    if database.dialect != "sqlite":
        pytest.skip("the broad scope is SQLite's alone (_broad_scope)")
    expected = sorted((f"z-{(n * 37) % 200:03d}", str(wid(f"w{n:03d}"))) for n in range(150))
    if order is SortOrder.DESC:
        expected.reverse()
    with statements_sent(database) as raw, database.read() as conn:
        catalog = CatalogCache().get(conn)
        sort = Sort("name", order)
        page = store.list_workloads(
            conn, _viewer(BROAD), sort=sort, offset=0, limit=1, catalog=catalog, now_ms=now_ms()
        )
    sent = [" ".join(statement.split()) for statement, _p in raw]
    first = [row.id for row in page.rows]
    with database.read() as conn:
        every = ids_a_row_at_a_time(conn, _viewer(BROAD), Sort("name", order), len(expected))
    assert first == [expected[0][1]]
    assert every == [i for _name, i in expected]
    walks = [s for s in sent if "(+ workloads.project_id) IN" in s and "workloads.name <=" in s]
    by_scope = [s for s in sent if "AND workloads.project_id IN" in s and "ORDER BY workloads.name" in s]
    if order is SortOrder.ASC:
        assert len(walks) == 1, sent
        assert len(by_scope) == 1, sent
    else:
        assert len(walks) == 0, sent  # ">=" for this order
        assert not by_scope, sent
