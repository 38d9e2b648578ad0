"""A pods page with a range on completedAt (live pods) or deletedAt (deleted pods) in the creation
order, read day by day along the time's day index (migration 0026; ``store.ordering.page_by_days``,
shared with the workloads' completedAt ranges): every page and count equals a Python model of the
pods' times, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command

from tests.factories import CLUSTER, wid
from tests.store.test_field_access import _sent
from tests.store.test_pod_text_search import _workload
from tests.store.test_workloads import _statistics, _workload_indexes
from workplane.domain.batch import SyncBatch
from workplane.domain.pods import PodObservation
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Sort, SortOrder, parse_filter
from workplane.query.pods import POD_FIELDS, Completed, PodQuery
from workplane.services import ingest
from workplane.store import catalog, migrate, ordering
from workplane.store import pods as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database

NOW = 1_800_000_000_000
BASE = datetime(2024, 5, 1, tzinfo=UTC)
WORKLOADS = 12
DAY_INDEXES = ("ix_workload_pods_completed_day", "ix_workload_pods_deleted_day")
# The page statement of a range read day by day.
BY_DAYS = "WITH RECURSIVE days(day)"


@dataclass(frozen=True)
class Model:
    """A pod as the model knows it: its id and times (ms)."""

    id: str
    created: int
    completed: int | None
    deleted: int | None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _edge(moment: datetime, n: int) -> datetime:
    """The first or last millisecond of the day after ``moment``'s: the edges of a day index's days."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return day if n % 2 else day - timedelta(milliseconds=1)


def _pods() -> tuple[list[PodObservation], list[Model]]:
    """400 pods created every 50 minutes, two at a time (ties on createdAt, broken by id), over a week;
    three in five completed, most within hours, every seventh weeks later (so that the recently
    completed were created all along), every thirteenth on a day's first or last millisecond; every
    sixth deleted (completed or not), at times spread the same way. Each day holds a few to a few
    dozen of either, so that a page reads some days in full and others up to a bound."""
    rng = random.Random(26)
    items, models = [], []
    for i in range(400):
        created = BASE + timedelta(minutes=50 * (i // 2))
        item: dict[str, Any] = {
            "id": str(wid(f"pod{i}")),
            "workloadId": str(wid(f"w{i % WORKLOADS}")),
            "revision": 1,
            "name": f"pod-{i}",
            "createdAt": _iso(created),
            "k8sPhase": "Running",
            "nodeName": f"node-{i % 5}",
        }
        completed = deleted = None
        if i % 5 < 3:
            later = timedelta(days=rng.randrange(3, 28)) if i % 7 == 0 else timedelta()
            completed = created + later + timedelta(minutes=rng.randrange(1, 600))
            if i % 13 == 0:
                completed = _edge(completed, i)
            item |= {"k8sPhase": "Succeeded", "completedAt": _iso(completed)}
        if i % 6 == 1:
            later = timedelta(days=rng.randrange(2, 20)) if i % 4 == 1 else timedelta()
            deleted = created + later + timedelta(minutes=rng.randrange(1, 900))
            if i % 5 == 1:
                deleted = _edge(deleted, i // 6)
            item["deletedAt"] = _iso(deleted)
        items.append(PodObservation.model_validate(item))
        models.append(
            Model(
                item["id"],
                _ms(created),
                None if completed is None else _ms(completed),
                None if deleted is None else _ms(deleted),
            )
        )
    return items, models


@pytest.fixture
def pods(database: Database) -> list[Model]:
    items, models = _pods()
    with database.write() as conn:
        catalog.seed(conn, NOW)
        ingest.apply_batch(
            conn,
            SyncBatch(workloads=[_workload(n) for n in range(WORKLOADS)], pods=items),
            catalog=CatalogCache().get(conn),
            cluster_id=str(CLUSTER),
            tenant_id=1,
            now_ms=NOW,
        )
    return models


def _at(days: float, field: str = "completedAt", op: str = ">=") -> str:
    return f"{field}{op}{_iso(BASE + timedelta(days=days))}"


def _terms(field: str) -> list[list[str]]:
    return [
        [_at(5, field)],  # the recent ones, created all along
        [_at(6.3, field)],  # from within a day
        [_at(0, field)],  # every one
        [f"{field}<={_iso(BASE + timedelta(days=4) - timedelta(milliseconds=1))}"],  # a day's last ms
        [_at(3, field), _at(6, field, "<=")],
        [_at(2, field), _at(9, field)],
        [_at(5, field), _at(5, field, "<=")],  # the pods on a day's first millisecond
        [_at(300, field)],  # none
    ]


def _holds(model: Model, term: str) -> bool:
    (parsed,) = parse_filter([term], fields=POD_FIELDS)
    value = model.completed if parsed.field.name == "completedAt" else model.deleted
    if value is None:
        return False
    return value >= parsed.number if parsed.op == ">=" else value <= parsed.number


def _selected(models: list[Model], terms: list[str], *, deleted: bool, descending: bool) -> list[str]:
    kept = [m for m in models if (m.deleted is not None) == deleted and all(_holds(m, t) for t in terms)]
    return [m.id for m in sorted(kept, key=lambda m: (m.created, m.id), reverse=descending)]


# Each time field's selection: the live pods with a completion time, the deleted pods.
CASES = [
    ("completedAt", False, Completed.ALL),
    ("completedAt", False, Completed.TRUE),
    ("deletedAt", True, Completed.ALL),
]


@pytest.mark.parametrize(("field", "deleted", "completed"), CASES)
def test_a_time_range_in_creation_order_is_read_day_by_day(
    database: Database, pods: list[Model], field: str, deleted: bool, completed: Completed
) -> None:
    """Each day's first pods along the time's day index, merged, are exactly the model's page, at
    every offset, in both directions, with ties on createdAt, days that hold fewer pods than wanted
    and bounds on a day's edge; one statement for the page, beside the days' ends and the page's
    rows. Past ``COMPLETED_DAYS_MOST`` entries (a deep offset) ``_ranged_page`` answers, as
    exactly."""
    by_days = fallbacks = 0
    for terms in _terms(field):
        query = PodQuery(
            scope=ScopeSet.everything(),
            deleted=deleted,
            completed=completed,
            terms=parse_filter(terms, fields=POD_FIELDS),
        )
        for order in SortOrder:
            sort = Sort("createdAt", order)
            expected = _selected(pods, terms, deleted=deleted, descending=order is SortOrder.DESC)
            for offset, limit in (
                (0, 10),
                (0, 50),
                (3, 1),
                (7, 5),
                (60, 20),
                (len(expected) - 3, 10),
                (0, 350),
            ):
                offset = max(0, offset)
                with _sent(database) as sent, database.read() as conn:
                    page = store.list_pods(conn, query, sort=sort, offset=offset, limit=limit, full=False)
                got = [orjson.loads(p)["id"] for p in page.pods]
                assert got == expected[offset : offset + limit], (terms, order, offset, limit)
                assert page.has_more == (len(expected) > offset + limit), (terms, order, offset, limit)
                pages = [s for s in sent if s.startswith(BY_DAYS)]
                if offset + limit + 1 <= 100:
                    # At most 40 days here, 100 pods from each: read day by day, in three statements.
                    assert len(pages) == 1 or not expected, (terms, sent)
                    assert len([s for s in sent if s.startswith(("SELECT", "WITH"))]) <= 3, sent
                elif offset + limit + 1 > 300 and terms == _terms(field)[2]:
                    # Every one: about a month of days, 351 pods from each, past the limit.
                    assert not pages, (terms, offset, limit)
                    fallbacks += 1
                by_days += len(pages)
    assert by_days > 50
    assert fallbacks == 2


def test_too_many_days_keep_the_ranged_page(
    database: Database, pods: list[Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the days times the pods wanted from each exceed ``COMPLETED_DAYS_MOST``, the page is
    ``_ranged_page``'s (no day-by-day statement), and the same."""
    monkeypatch.setattr(ordering, "COMPLETED_DAYS_MOST", 10)
    for field, deleted, _ in CASES[::2]:
        terms = [_at(2, field)]
        query = PodQuery(
            scope=ScopeSet.everything(), deleted=deleted, terms=parse_filter(terms, fields=POD_FIELDS)
        )
        expected = _selected(pods, terms, deleted=deleted, descending=False)
        with _sent(database) as sent, database.read() as conn:
            page = store.list_pods(
                conn, query, sort=Sort("createdAt", SortOrder.ASC), offset=2, limit=7, full=False
            )
        assert [orjson.loads(p)["id"] for p in page.pods] == expected[2:9]
        assert not [s for s in sent if s.startswith(BY_DAYS)], sent


def test_other_selections_are_not_read_day_by_day(database: Database, pods: list[Model]) -> None:
    """A scope, another term, search words, the other liveness or ``completed=false``: the day index
    does not hold what they select, and the plain or ranged plans answer, as the model does."""
    cases = [
        (ScopeSet(projects=frozenset({"p1"})), [_at(2)], False, Completed.ALL, None),
        (ScopeSet.everything(), [_at(2), "nodeName==node-1"], False, Completed.ALL, None),
        (ScopeSet.everything(), [_at(2)], True, Completed.ALL, None),
        (ScopeSet.everything(), [_at(2, "deletedAt")], False, Completed.ALL, None),
        (ScopeSet.everything(), [_at(2)], False, Completed.FALSE, []),
        (ScopeSet.everything(), [_at(2, "deletedAt")], True, Completed.TRUE, None),
    ]
    projects = {str(wid(f"pod{i}")): f"p{i % WORKLOADS % 3 + 1}" for i in range(400)}
    nodes = {str(wid(f"pod{i}")): f"node-{i % 5}" for i in range(400)}
    for scope, terms, deleted, completed, fixed in cases:
        query = PodQuery(
            scope=scope, deleted=deleted, completed=completed, terms=parse_filter(terms, fields=POD_FIELDS)
        )
        expected = _selected(pods, [t for t in terms if "node" not in t], deleted=deleted, descending=False)
        if not scope.tenant:
            expected = [i for i in expected if projects[i] == "p1"]
        if len(terms) > 1:
            expected = [i for i in expected if nodes[i] == "node-1"]
        if completed is Completed.TRUE:
            expected = [m.id for m in pods if m.id in set(expected) and m.completed is not None]
            expected = sorted(expected, key=lambda i: next((m.created, m.id) for m in pods if m.id == i))
        if fixed is not None:
            expected = fixed
        with _sent(database) as sent, database.read() as conn:
            page = store.list_pods(
                conn, query, sort=Sort("createdAt", SortOrder.ASC), offset=1, limit=9, full=False
            )
        assert [orjson.loads(p)["id"] for p in page.pods] == expected[1:10], (terms, deleted, completed)
        assert not [s for s in sent if s.startswith(BY_DAYS)], sent


@pytest.mark.parametrize(("field", "deleted"), [("completedAt", False), ("deletedAt", True)])
def test_a_time_range_count_is_the_models(
    database: Database, pods: list[Model], field: str, deleted: bool
) -> None:
    """The counts of a range on completedAt or deletedAt, of live and of deleted pods, are the
    model's; a completedAt range also bounds the day of completion (``compile.day_bound``), a
    deletedAt range does not (its own index gives a count of deleted pods alone)."""
    for terms in _terms(field):
        for which in (False, True):
            query = PodQuery(
                scope=ScopeSet.everything(), deleted=which, terms=parse_filter(terms, fields=POD_FIELDS)
            )
            with _sent(database) as sent, database.read() as conn:
                count = store.count_pods(conn, query)
            assert count == len(_selected(pods, terms, deleted=which, descending=False)), (terms, which)
            (statement,) = [s for s in sent if s.startswith("SELECT count(*)")]
            bounded = re.search(r"\(workload_pods\.completed_at / 86400000\) [<>]=", statement)
            assert bool(bounded) == (field == "completedAt"), statement
            assert "deleted_at / 86400000" not in statement, statement


def _plan(database: Database, statement: str, parameters: Any) -> list[str]:
    """The plan's reads of ``workload_pods``: SQLite's as it plans it; PostgreSQL's with the scans
    and joins that read the table ruled out (so that the day's expression is the index's)."""
    with database.read() as conn:
        if database.engine.dialect.name == "sqlite":
            explained = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = [str(r[3]) for r in explained]
            return [
                r for r in plan if r.startswith(("SCAN", "SEARCH")) and "days" not in r and "ROW" not in r
            ]
        for setting in ("seqscan", "bitmapscan", "hashjoin", "mergejoin"):
            conn.exec_driver_sql(f"SET LOCAL enable_{setting} = off")
        plan = [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
        return [r for r in plan if " Scan " in r and " on workload_pods" in r]


@pytest.mark.parametrize(
    ("field", "deleted", "index", "counted_by"),
    [
        ("completedAt", False, DAY_INDEXES[0], DAY_INDEXES[0]),
        ("deletedAt", True, DAY_INDEXES[1], "ix_workload_pods_deleted_at"),
    ],
)
def test_a_time_range_page_reads_its_day_index_alone(
    database: Database, pods: list[Model], field: str, deleted: bool, index: str, counted_by: str
) -> None:
    """The page statement reads the time's day index twice (each day's bound, then its pods up to it)
    and nothing else, on SQLite from the index alone; the days' ends, one probe each at an end of it.
    A count of the range reads one index alone on SQLite (``counted_by``: for completedAt the day
    index, where it read each pod's row for ``deleted_at``)."""
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        if "86400000" in statement or statement.startswith("SELECT count(*)"):
            captured.append((statement, parameters))

    query = PodQuery(
        scope=ScopeSet.everything(), deleted=deleted, terms=parse_filter([_at(5, field)], fields=POD_FIELDS)
    )
    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.read() as conn:
            for order in SortOrder:
                store.list_pods(conn, query, sort=Sort("createdAt", order), offset=0, limit=10, full=False)
            store.count_pods(conn, query)
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    assert len(captured) == 5, captured
    sqlite = database.engine.dialect.name == "sqlite"
    for statement, parameters in captured:
        reads = _plan(database, statement, parameters)
        if statement.startswith("SELECT count(*)"):
            assert len(reads) == 1, reads
            if sqlite:
                assert f"COVERING INDEX {counted_by} " in reads[0], reads
            continue
        by_day = [r for r in reads if index in r]
        assert len(by_day) == 2, reads
        assert reads == by_day, reads
        if sqlite:
            assert all(f"COVERING INDEX {index}" in r for r in by_day), reads


def test_migration_0026_adds_the_pods_day_indexes_and_goes_back_down(empty_url: str) -> None:
    """The live completed pods by day of completion and the deleted pods by day of deletion, then
    creation time, and on PostgreSQL each day's statistics."""
    engine = sa.create_engine(empty_url)
    postgresql = engine.dialect.name == "postgresql"
    statistics = {"st_workload_pods_completed_day", "st_workload_pods_deleted_day"}
    migrate.upgrade(engine)
    assert set(DAY_INDEXES) <= _workload_indexes(engine, "workload_pods")
    assert (statistics <= _statistics(engine)) == postgresql
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0025")
    assert not set(DAY_INDEXES) & _workload_indexes(engine, "workload_pods")
    assert not statistics & _statistics(engine)
    migrate.upgrade(engine)
    assert set(DAY_INDEXES) <= _workload_indexes(engine, "workload_pods")
    engine.dispose()
