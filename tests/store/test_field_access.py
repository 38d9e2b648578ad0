"""Every sortable field in both directions, and the filters and counts on them, against an ordering
and a selection computed in Python from all the rows (``store.ordering`` answers many sorts from
ordered parts: it must give exactly the page a full ``ORDER BY`` gives)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tests.factories import at, create_workload, wid, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.fields import FIELDS, WORKLOAD_FIELDS, Kind, Source
from workplane.domain.record import WorkloadIn, render
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Sort, SortOrder, WorkloadQuery, number_matches, parse_filter, text_matches
from workplane.store import workloads as store
from workplane.store.database import Database
from workplane.store.schema import workloads

NOW_MS = 1_800_000_000_000
EVERYTHING = ScopeSet.everything()
TYPES = ["Training", "Workspace", "Inference", "Distributed", "JAXJob", "Job"]
PROJECTS = [("1", "proj-a", "10", "dept-x"), ("2", "proj-b", "10", "dept-x"), ("3", "Proj-C", "20", "dept-y")]


def _load(database: Database, catalog: CatalogSnapshot) -> None:
    """70 workloads with every sortable field sometimes set, many ties, some deleted."""
    rng = random.Random(14)
    base = at("2024-05-01T12:00:00Z")
    with database.write() as conn:
        for i in range(70):
            project_id, project, department_id, department = rng.choice(PROJECTS)
            phase = rng.choice(["Running", "Pending", "Completed", "Running", "Completed"])
            created = base + timedelta(minutes=rng.randrange(0, 50))  # ties on createdAt too
            fields: dict[str, Any] = {
                "type": rng.choice(TYPES),
                "phase": phase,
                "projectId": project_id,
                "projectName": project,
                "departmentId": department_id,
                "departmentName": department,
                "createdAt": created,
                "phaseUpdatedAt": created + timedelta(minutes=rng.randrange(0, 5)),
            }
            if rng.random() < 0.3:
                fields["category"] = rng.choice(["Build", "Train", "Deploy"])
            if rng.random() < 0.3:
                fields["priorityClassName"] = rng.choice(["low", "high", "medium", "very-high"])
            if rng.random() < 0.4:
                fields["submittedBy"] = rng.choice(["alice", "bob", "Carol"])
            if phase == "Completed":
                fields["completedAt"] = created + timedelta(minutes=rng.randrange(5, 10))
            if phase == "Running":
                fields["currentNodePools"] = rng.sample(["pool-a", "pool-b", "default"], rng.randrange(1, 3))
                fields["allocatedResources"] = {"gpu": rng.choice([0.5, 1, 2, 2, 4])}
            if rng.random() < 0.2:
                fields["distributedFramework"] = rng.choice(["PyTorch", "MPI"])
            create_workload(
                conn, workload(f"w{i:02d}", **fields), catalog=catalog, tenant_id=1, now_ms=NOW_MS
            )
        for i in range(0, 70, 9):
            store.delete_workload(conn, str(wid(f"w{i:02d}")), deleted_at_ms=NOW_MS)


def _values(database: Database, catalog: CatalogSnapshot, deleted: bool = False) -> list[dict[str, Any]]:
    """Each workload's value of every field, as served (rendered), keyed by field name; plus ``id``."""
    with database.read() as conn:
        rows = conn.execute(
            sa.select(
                *store.RENDER_COLUMNS, *(workloads.c[f.column] for f in WORKLOAD_FIELDS if f.column)
            ).where(workloads.c.deleted_at.is_not(None) if deleted else workloads.c.deleted_at.is_(None))
        ).all()
    out = []
    for row in rows:
        served = orjson.loads(render(row, catalog, NOW_MS))
        values: dict[str, Any] = {"id": row.id}
        for spec in WORKLOAD_FIELDS:
            if spec.source is Source.STORED:
                values[spec.name] = row._mapping[workloads.c[spec.column]]
            elif spec.source is Source.POOLS:
                pools = served.get("currentNodePools") or []
                values[spec.name] = pools[0] if pools else None
            else:
                values[spec.name] = served[spec.name]
        values["_pools"] = served.get("currentNodePools") or []
        values["_scope"] = (row._mapping[workloads.c.project_id],)
        out.append(values)
    return out


def _expected(rows: list[dict[str, Any]], field: str, descending: bool) -> list[str]:
    """Rows with a value by (value, id) in the direction asked; those without one last, by id."""
    valued = sorted(
        (r for r in rows if r[field] is not None), key=lambda r: (r[field], r["id"]), reverse=descending
    )
    missing = sorted((r for r in rows if r[field] is None), key=lambda r: r["id"], reverse=descending)
    return [r["id"] for r in valued + missing]


def _page(
    database: Database,
    catalog: CatalogSnapshot,
    sort: Sort,
    *,
    offset: int,
    limit: int,
    terms: list[str] = [],  # noqa: B006 - never mutated
    scope: ScopeSet = EVERYTHING,
    deleted: bool = False,
) -> tuple[list[str], bool]:
    with database.read() as conn:
        page = store.list_workloads(
            conn,
            WorkloadQuery(scope=scope, deleted=deleted, terms=parse_filter(terms) if terms else []),
            sort=sort,
            offset=offset,
            limit=limit,
            catalog=catalog,
            now_ms=NOW_MS,
        )
    return [r.id for r in page.rows], page.has_more


def _check_all_sorts(
    database: Database,
    catalog: CatalogSnapshot,
    rows: list[dict[str, Any]],
    *,
    terms: list[str] = [],  # noqa: B006 - never mutated
    scope: ScopeSet = EVERYTHING,
    deleted: bool = False,
) -> None:
    for spec in WORKLOAD_FIELDS:
        if not spec.sortable:
            continue
        for order in SortOrder:
            expected = _expected(rows, spec.name, order is SortOrder.DESC)
            for offset, limit in (
                (0, 10),
                (0, 100),
                (7, 5),
                (len(expected) - 3, 10),
                (len(expected) + 2, 10),
            ):
                got, more = _page(
                    database,
                    catalog,
                    Sort(spec.name, order),
                    offset=max(0, offset),
                    limit=limit,
                    terms=terms,
                    scope=scope,
                    deleted=deleted,
                )
                window = expected[max(0, offset) : max(0, offset) + limit]
                assert got == window, (spec.name, order, offset, limit, terms)
                assert more == (len(expected) > max(0, offset) + limit), (spec.name, order, offset)


def test_every_sort_gives_the_full_ordering_page(database: Database, catalog: CatalogSnapshot) -> None:
    _load(database, catalog)
    rows = _values(database, catalog)
    assert 50 < len(rows) < 70  # some deleted
    # Ties everywhere: few values per field, and some fields mostly without a value.
    assert len({r["category"] for r in rows}) == 3
    assert any(r["submittedBy"] is None for r in rows)
    assert any(r["submittedBy"] for r in rows)
    _check_all_sorts(database, catalog, rows)


def test_deleted_workloads_sort_among_themselves(database: Database, catalog: CatalogSnapshot) -> None:
    _load(database, catalog)
    _check_all_sorts(database, catalog, _values(database, catalog, deleted=True), deleted=True)


def test_scoped_callers_page_through_their_own_workloads(
    database: Database, catalog: CatalogSnapshot
) -> None:
    _load(database, catalog)
    scope = ScopeSet(projects=frozenset({"1", "3"}))
    rows = [r for r in _values(database, catalog) if r["_scope"][0] in {"1", "3"}]
    _check_all_sorts(database, catalog, rows, scope=scope)


FILTERS = [
    "phase==Running",
    "phase!=Completed",
    "projectName==proj-b",
    "projectName!=proj-b",
    "projectName=@proj",
    "projectName=@c",
    "departmentName=@Y",
    "departmentId==10",
    "type=@in",
    "type==Workspace",
    "category==Train",
    "category=@de",
    "priorityClassName==high",
    "priority>=80",
    "submittedBy=@o",
    "submittedBy==alice",
    "submittedBy!=alice",
    "nodepool=@pool",
    "nodepool=@-a",  # one pool's name: counted from the pool rollup
    "nodepool=^def",
    "nodepool=$B",
    "nodepool=@nowhere",
    "nodepool==pool-a",
    "nodepool==nowhere",
    "allocatedGPU>=2",
    "totalRunningTimeSeconds>=60",
]


def _holds(row: dict[str, Any], term: str) -> bool:
    (parsed,) = parse_filter([term])
    name, op = parsed.field.name, parsed.op
    if name == "nodepool":
        pools = row["_pools"]
        if op in ("!=", "!@"):
            return not any(text_matches({"!=": "==", "!@": "=@"}[op], parsed.text, p) for p in pools)
        return any(text_matches(op, parsed.text, p) for p in pools)
    if FIELDS[name].kind is Kind.TEXT:
        return text_matches(op, parsed.text, row[name])
    value = row[name]
    return number_matches(op, parsed.number, float(value) if value is not None else None)


def test_filters_and_counts_match_the_rows(database: Database, catalog: CatalogSnapshot) -> None:
    _load(database, catalog)
    rows = _values(database, catalog)
    for term in FILTERS:
        selected = [r for r in rows if _holds(r, term)]
        with database.read() as conn:
            count = store.count_workloads(
                conn,
                WorkloadQuery(scope=EVERYTHING, terms=parse_filter([term])),
                catalog=catalog,
                now_ms=NOW_MS,
            )
        assert count == len(selected), term
        with database.read() as conn:
            scoped = store.count_workloads(
                conn,
                WorkloadQuery(scope=ScopeSet(projects=frozenset({"3"})), terms=parse_filter([term])),
                catalog=catalog,
                now_ms=NOW_MS,
            )
        assert scoped == sum(1 for r in selected if r["_scope"][0] == "3"), term
        for field in ("createdAt", "phase", "category", "submittedBy", "projectName", "priority"):
            for order in SortOrder:
                expected = _expected(selected, field, order is SortOrder.DESC)
                got, _more = _page(database, catalog, Sort(field, order), offset=3, limit=8, terms=[term])
                assert got == expected[3:11], (term, field, order)


def test_contains_terms_without_the_value_lists(
    database: Database, catalog: CatalogSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted rows are not in the rollup, and a column of more than ``FEW_VALUES`` values keeps the
    plain predicate: both must still select exactly."""
    _load(database, catalog)
    deleted = _values(database, catalog, deleted=True)
    live = _values(database, catalog)
    monkeypatch.setattr(store, "FEW_VALUES", 1)
    for term in ("projectName=@proj", "submittedBy=@o", "departmentName=@Y"):
        for rows, is_deleted in ((deleted, True), (live, False)):
            expected = sorted(r["id"] for r in rows if _holds(r, term))
            got, _more = _page(
                database,
                catalog,
                Sort("name", SortOrder.ASC),
                offset=0,
                limit=100,
                terms=[term],
                deleted=is_deleted,
            )
            assert sorted(got) == expected, (term, is_deleted)


RANGE_BASE = at("2024-05-01T12:00:00Z")
# Completed long after all others: the newest hundred, and three of the oldest (long runs).
LATE = RANGE_BASE + timedelta(days=10)
LONG_RUNS = (5, 17, 42)


def _load_ranges(database: Database, catalog: CatalogSnapshot) -> None:
    """400 workloads, created in order two to a minute (ties on createdAt): a third Running with
    1–8 GPUs, the rest Completed, the newest hundred (and three old ones) long after the others;
    every thirteenth deleted. A range then selects rows all along the creation-time walk, at its
    newest end only, or near its start only."""
    records = []
    for i in range(400):
        created = RANGE_BASE + timedelta(minutes=i // 2)
        fields: dict[str, Any] = {"createdAt": created, "phaseUpdatedAt": created}
        if i % 3 == 0:
            fields |= {"phase": "Running", "allocatedResources": {"gpu": (1, 2, 4, 8)[i // 3 % 4]}}
        else:
            done = (
                LATE + timedelta(minutes=i) if i >= 300 or i in LONG_RUNS else created + timedelta(minutes=5)
            )
            fields |= {"phase": "Completed", "completedAt": done, "phaseUpdatedAt": done}
        records.append(workload(f"r{i:03d}", **fields))
    _create_deleting(database, catalog, records, every=13)


def _create_deleting(
    database: Database, catalog: CatalogSnapshot, records: list[WorkloadIn], *, every: int
) -> None:
    """Create ``records``, then delete every ``every``-th of them."""
    with database.write() as conn:
        store.create_workloads(conn, records, catalog=catalog, tenant_id=1, now_ms=NOW_MS)
        for record in records[::every]:
            store.delete_workload(conn, str(record.id), deleted_at_ms=NOW_MS)


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


RANGE_TERMS = [
    [f"completedAt>={_iso(LATE)}"],  # the newest end of the walk, and three rows near its start
    [f"completedAt>={_iso(RANGE_BASE)}"],  # all along it
    [f"completedAt<={_iso(RANGE_BASE + timedelta(minutes=30))}"],  # near its start only
    [f"completedAt>={_iso(LATE + timedelta(days=1))}"],  # none
    ["allocatedGPU>=1"],
    ["allocatedGPU>=8"],
    ["allocatedGPU>=100"],
    [f"phaseUpdatedAt>={_iso(LATE)}"],
    [f"completedAt>={_iso(LATE)}", "phase==Completed"],
    [f"completedAt>={_iso(RANGE_BASE)}", f"completedAt<={_iso(LATE)}"],
]


@pytest.mark.parametrize("deleted", [False, True])
def test_range_terms_in_creation_order(database: Database, catalog: CatalogSnapshot, deleted: bool) -> None:
    """A range on an indexed column in the creation-time order (``store.ordering.ranged_walk``): a
    bounded walk along the order's index where the page lies inside it, else the range's own rows
    sorted: the same pages either way, at every offset."""
    _load_ranges(database, catalog)
    rows = _values(database, catalog, deleted=deleted)
    for terms in RANGE_TERMS:
        selected = [r for r in rows if all(_holds(r, t) for t in terms)]
        for order in SortOrder:
            expected = _expected(selected, "createdAt", order is SortOrder.DESC)
            for offset, limit in (
                (0, 10),
                (0, 50),
                (7, 5),
                (60, 20),
                (len(expected) - 3, 10),
                (len(expected), 5),
            ):
                offset = max(0, offset)
                got, more = _page(
                    database,
                    catalog,
                    Sort("createdAt", order),
                    offset=offset,
                    limit=limit,
                    terms=terms,
                    deleted=deleted,
                )
                assert got == expected[offset : offset + limit], (terms, order, offset, limit)
                assert more == (len(expected) > offset + limit), (terms, order, offset, limit)


def test_range_terms_never_walk_the_whole_creation_order(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """SQLite (no statistics) walked the creation-time index to its end for a range whose rows lie
    at the far end of it, or none: each page statement is now bounded, or the range's own index."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    _load_ranges(database, catalog)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        if (
            " ".join(statement.split()).startswith("SELECT workloads.id FROM workloads")
            and "ORDER BY" in statement
        ):
            statements.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        for terms in RANGE_TERMS:
            for order in SortOrder:
                _page(database, catalog, Sort("createdAt", order), offset=0, limit=10, terms=terms)
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    assert statements
    with database.read() as conn:
        for statement, parameters in statements:
            plan = " | ".join(
                str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "SCAN workloads USING INDEX ix_workloads_live_created" not in plan, (statement, plan)


CLOCK_FIELDS = ("totalPendingTimeSeconds", "totalRunningTimeSeconds")


def _load_clocks(database: Database, catalog: CatalogSnapshot) -> None:
    """90 workloads whose phase clocks are stopped, open since before now, or open since after it (a
    clock ahead of the server's), with totals that tie in whole seconds but not in milliseconds, and
    many zeros; every eleventh deleted (its clock stopped, as deletion leaves it)."""
    rng = random.Random(21)
    base = at("2024-05-01T12:00:00Z")
    records = [
        workload(f"c{i:02d}", createdAt=base + timedelta(minutes=i // 3), phaseUpdatedAt=base)
        for i in range(90)
    ]

    def closed() -> int:
        return rng.choice([0, 0, 1000 * rng.randrange(4) + rng.randrange(1000)])

    def since(state: str) -> int | None:
        if state == "stopped":
            return None
        if state == "past":
            return NOW_MS - 1000 * rng.randrange(3) - rng.randrange(1000)
        return NOW_MS + rng.randrange(0, 3000)  # from now on: counts nothing yet

    with database.write() as conn:
        store.create_workloads(conn, records, catalog=catalog, tenant_id=1, now_ms=NOW_MS)
        for i in range(90):
            state = rng.choice(["stopped", "stopped", "past", "future"])
            pending, running = (state, "stopped") if i % 2 else ("stopped", state)
            if i % 11 == 0:
                pending = running = "stopped"
            conn.execute(
                workloads.update()
                .where(workloads.c.id == str(wid(f"c{i:02d}")))
                .values(
                    pending_closed_ms=closed(),
                    pending_since_ms=since(pending),
                    running_closed_ms=closed(),
                    running_since_ms=since(running),
                    deleted_at=NOW_MS - 1 if i % 11 == 0 else None,
                )
            )


CLOCK_TERMS = [
    f"{field}{op}{value}"
    for field in CLOCK_FIELDS
    for op, value in (
        (">=", 1),
        (">=", 2),
        ("<=", 0),
        ("<=", 2),
        ("==", 1),
        ("!=", 0),
        (">=", 2.5),
        ("<=", -3),
        ("!=", 1.5),  # holds on every row
        ("==", 1.5),  # on none
    )
]


@pytest.mark.no_cover
@pytest.mark.parametrize("deleted", [False, True])
def test_clock_fields_sort_filter_and_count_as_served(
    database: Database, catalog: CatalogSnapshot, deleted: bool
) -> None:
    """The clock totals are sorted, filtered and counted from three sets of rows, each by its own
    index (``Compiler.clock_streams``), and merged: the same pages and counts as the served values
    give, ties in whole seconds broken by id, clocks ahead of now counting nothing yet."""
    _load_clocks(database, catalog)
    rows = _values(database, catalog, deleted=deleted)
    assert len({r["totalRunningTimeSeconds"] for r in rows}) > 2
    _check_all_sorts(database, catalog, rows, deleted=deleted)
    for term in CLOCK_TERMS:
        selected = [r for r in rows if _holds(r, term)]
        with database.read() as conn:
            count = store.count_workloads(
                conn,
                WorkloadQuery(scope=EVERYTHING, deleted=deleted, terms=parse_filter([term])),
                catalog=catalog,
                now_ms=NOW_MS,
            )
        assert count == len(selected), term
        for field in ("createdAt", *CLOCK_FIELDS, "name"):
            for order in SortOrder:
                expected = _expected(selected, field, order is SortOrder.DESC)
                for offset, limit in ((0, 5), (3, 8), (0, 100)):
                    got, more = _page(
                        database,
                        catalog,
                        Sort(field, order),
                        offset=offset,
                        limit=limit,
                        terms=[term],
                        deleted=deleted,
                    )
                    assert got == expected[offset : offset + limit], (term, field, order, offset)
                    assert more == (len(expected) > offset + limit), (term, field, order, offset)


def test_clock_sorts_and_counts_read_the_clock_indexes(database: Database, catalog: CatalogSnapshot) -> None:
    """Every statement of a clock sort or count is answered by an index of migration 0020 or by id:
    none reads the whole table to compute the totals."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    _load_clocks(database, catalog)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        if " ".join(statement.split()).startswith(
            ("SELECT workloads.id", "SELECT count(*)", "SELECT (SELECT count(*)")
        ):
            statements.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        for field in CLOCK_FIELDS:
            for order in SortOrder:
                _page(database, catalog, Sort(field, order), offset=0, limit=10)
            with database.read() as conn:
                store.count_workloads(
                    conn,
                    WorkloadQuery(scope=EVERYTHING, terms=parse_filter([f"{field}>=2"])),
                    catalog=catalog,
                    now_ms=NOW_MS,
                )
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    assert statements
    # A clock term's count is one statement (one snapshot on PostgreSQL) summing its three sets'.
    summed = [s for s, _ in statements if " ".join(s.split()).startswith("SELECT (SELECT count(*)")]
    assert len(summed) == len(CLOCK_FIELDS)
    with database.read() as conn:
        for statement, parameters in statements:
            plan = " | ".join(
                str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            clock_index = any(f"ix_workloads_{c}_" in plan for c in ("pending", "running"))
            assert clock_index or "sqlite_autoindex_workloads_1 (id=?)" in plan, (statement, plan)
            if statement in summed:
                reads = [r for r in plan.split(" | ") if r.startswith(("SEARCH workloads", "SCAN workloads"))]
                assert len(reads) == 3, plan
                assert all("ix_workloads_" in r for r in reads), plan


@contextmanager
def _sent(database: Database) -> Iterator[list[str]]:
    """The statements sent within the block, each on one line."""
    statements: list[str] = []

    def capture(_c: Any, _cursor: Any, statement: str, _p: Any, _x: Any, _many: bool) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)


def _statements(sent: list[str]) -> list[str]:
    """The queries among ``sent``, without those that open the read transaction (SQLite's
    ``BEGIN``, PostgreSQL's ``SET TRANSACTION``)."""
    return [s for s in sent if s.startswith("SELECT")]


def test_a_range_on_no_row_sends_no_page_statement(database: Database, catalog: CatalogSnapshot) -> None:
    """A range whose index holds no row at all (``ranged_walk``'s count is 0) is an empty page: no
    statement sorts or walks for it. A clock term asks its three sets apart, and one or two of them
    usually hold nothing."""
    _load_ranges(database, catalog)
    _load_clocks(database, catalog)
    for term in (f"completedAt>={_iso(LATE + timedelta(days=1))}", "totalRunningTimeSeconds>=1000000000"):
        for order in SortOrder:
            with _sent(database) as sent:
                got = _page(database, catalog, Sort("createdAt", order), offset=0, limit=10, terms=[term])
            assert got == ([], False), term
            pages = [s for s in sent if s.startswith("SELECT workloads.id FROM workloads")]
            assert pages == [], (term, pages)


def _load_half_open(database: Database, catalog: CatalogSnapshot, *, open_last: bool = False) -> None:
    """60 workloads a minute apart whose Pending clocks are 0 s (stopped) or 1 s (open since before
    now): every other one, or (``open_last``) the newest 20. Two sets each past a walk's reach."""
    base = at("2024-05-01T12:00:00Z")
    records = [workload(f"e{i:02d}", createdAt=base + timedelta(minutes=i)) for i in range(60)]
    with database.write() as conn:
        store.create_workloads(conn, records, catalog=catalog, tenant_id=1, now_ms=NOW_MS)
        for i in range(60):
            opened = i >= 40 if open_last else i % 2 == 0
            conn.execute(
                workloads.update()
                .where(workloads.c.id == str(wid(f"e{i:02d}")))
                .values(pending_closed_ms=0, pending_since_ms=NOW_MS - 1000 if opened else None)
            )


def test_a_clock_terms_sets_walk_to_one_edge_asked_once(database: Database, catalog: CatalogSnapshot) -> None:
    """A clock term's three sets are each paged by ``ranged_walk``, whose edge (the creation time
    that far along the walk) depends on the order and the live or deleted rows only: it is asked once
    for the three, not once per set."""
    _load_half_open(database, catalog)
    for order in SortOrder:
        with _sent(database) as sent:
            _page(
                database,
                catalog,
                Sort("createdAt", order),
                offset=0,
                limit=1,
                terms=["totalPendingTimeSeconds<=2"],
            )
        edges = [s for s in sent if s.startswith("SELECT workloads.created_at FROM workloads WHERE")]
        assert len(edges) == 1, edges


def test_a_clock_range_page_is_four_statements(database: Database, catalog: CatalogSnapshot) -> None:
    """A clock term's page in the creation order is four statements, whatever its sets: the live
    total, every set's capped range count (one statement), the walk's edge, and the sets' walks,
    merged, with the page's rows (one statement); in another order, that last one alone. Each was
    a round trip of its own: the live total, a count, a walk or a sort per set, the merge and the
    rows (9 statements here)."""
    _load_half_open(database, catalog)
    rows = _values(database, catalog)
    for term in ("totalPendingTimeSeconds<=2", "totalPendingTimeSeconds>=1"):
        selected = [r for r in rows if _holds(r, term)]
        for field, statements in (("createdAt", 4), ("name", 1)):
            for order in SortOrder:
                expected = _expected(selected, field, order is SortOrder.DESC)
                for offset, limit in ((0, 1), (0, 10), (5, 3)):
                    with _sent(database) as sent:
                        got, more = _page(
                            database, catalog, Sort(field, order), offset=offset, limit=limit, terms=[term]
                        )
                    assert got == expected[offset : offset + limit], (term, field, order, offset)
                    assert more == (len(expected) > offset + limit), (term, field, order, offset)
                    assert len(_statements(sent)) <= statements, (term, field, order, offset, sent)
    # The walk's two sets, with ``>=1`` one (the open clocks), then the rows of the page.
    with _sent(database) as sent:
        _page(
            database,
            catalog,
            Sort("createdAt", SortOrder.ASC),
            offset=0,
            limit=1,
            terms=["totalPendingTimeSeconds<=2"],
        )
    assert len(_statements(sent)) == 4, sent


def test_a_clock_sets_walk_that_misses_its_rows_is_sorted(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """Where the newest 20 clocks are the open ones, the creation order's walk to its edge holds
    none of them from the oldest end (and none of the stopped ones from the newest): that set is
    then looked up and sorted, asked again with the other (one more statement), and the page is
    the same as the plain ``ORDER BY``'s."""
    _load_half_open(database, catalog, open_last=True)
    rows = _values(database, catalog)
    term = "totalPendingTimeSeconds<=2"
    selected = [r for r in rows if _holds(r, term)]
    for order in SortOrder:
        expected = _expected(selected, "createdAt", order is SortOrder.DESC)
        for offset, limit in ((0, 1), (0, 3), (2, 2), (19, 3), (39, 5)):
            with _sent(database) as sent:
                got, more = _page(
                    database, catalog, Sort("createdAt", order), offset=offset, limit=limit, terms=[term]
                )
            assert got == expected[offset : offset + limit], (order, offset, limit)
            assert more == (len(expected) > offset + limit), (order, offset, limit)
            assert len(_statements(sent)) <= 5, sent


def test_a_clock_range_page_reads_each_set_by_an_index(database: Database, catalog: CatalogSnapshot) -> None:
    """The one statement of a clock term's sets, their merge and the page's rows reads each set by
    an index (its walk along the creation order's, or its own clock index) and the rows by id: no
    statement of such a page scans the table."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans: PostgreSQL chooses by its statistics")
    _load_clocks(database, catalog)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        for term in (
            "totalRunningTimeSeconds>=1",
            "totalPendingTimeSeconds<=2",
            "totalRunningTimeSeconds!=0",
        ):
            for field, order in (
                ("createdAt", SortOrder.ASC),
                ("createdAt", SortOrder.DESC),
                ("name", SortOrder.ASC),
            ):
                _page(database, catalog, Sort(field, order), offset=0, limit=10, terms=[term])
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    pages = [(s, p) for s, p in statements if ") AS found" in s]
    assert len(pages) >= 9, statements
    with database.read() as conn:
        for statement, parameters in statements:
            plan = [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            reads = [
                r
                for r in plan
                if r.startswith(("SCAN workloads", "SEARCH workloads", "SCAN page", "SEARCH page"))
            ]
            assert all("INDEX" in r for r in reads), (statement, plan)
        for statement, parameters in pages:
            plan = [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            by_id = re.compile(r"SEARCH (workloads|page) USING INDEX sqlite_autoindex_workloads_1 \(id=\?\)")
            assert any(by_id.match(r) for r in plan), plan


def test_a_clock_sort_page_is_merged_with_its_rows(database: Database, catalog: CatalogSnapshot) -> None:
    """A sort by a clock field orders its candidates and reads the page's rows in one statement (the
    merge and the rows were two): the candidates' statement, the ties' where a set needs them, and
    the page."""
    _load_clocks(database, catalog)
    for field in CLOCK_FIELDS:
        for order in SortOrder:
            with _sent(database) as sent:
                _page(database, catalog, Sort(field, order), offset=0, limit=10)
            merged = "SELECT workloads.id FROM workloads WHERE workloads.id IN"
            assert not any(s.startswith(merged) for s in sent), sent
            # The last statement: the page's rows, in the sort's order, from the candidates.
            assert sent[-1].startswith("SELECT workloads.id, workloads.doc"), sent
            assert ") AS found" in sent[-1], sent
            assert "ORDER BY" in sent[-1], sent


def test_walks_and_open_clocks_keep_their_ranges_off_every_index(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """The bounded walk of the creation order (``ranged_walk``) and a clock's ``since < now`` beside
    its key's order hold their predicate in a form no index answers on either database
    (``SqlDialect.unordered``): PostgreSQL's statistics took the range and the walk's bound as
    independent and intersected their indexes (``list completedAt>= newest first``: 6,500 rows read
    for a page of 51 at 1M), and read the 30,000 open Pending clocks from the ``since`` index, then
    sorted them (``sort totalPendingTimeSeconds asc``: 18 ms of SQL for 0.3)."""
    _load_ranges(database, catalog)
    _load_clocks(database, catalog)
    plain_range = re.compile(r"(?:WHERE|AND) workloads\.completed_at >=")
    plain_since = re.compile(r"(?:WHERE|AND) workloads\.(pending|running)_since_ms <")
    # With a second term the range is walked (``ranged_walk``); alone, merged from its completion
    # days (``completed_days``), where it is tested on each day's entries: off its own index too.
    terms = [f"completedAt>={_iso(RANGE_BASE)}", "phase==Completed"]
    for order in SortOrder:
        with _sent(database) as sent:
            _page(database, catalog, Sort("createdAt", order), offset=0, limit=10, terms=terms)
        walks = [s for s in sent if "workloads.created_at <=" in s or "workloads.created_at >=" in s]
        assert walks, sent
        assert not any(plain_range.search(s) for s in walks), walks
        with _sent(database) as sent:
            _page(database, catalog, Sort("createdAt", order), offset=0, limit=10, terms=terms[:1])
        merged = [s for s in sent if ".completed_at / 86400000) =" in s]
        assert merged, sent
        assert not any(plain_range.search(s) for s in merged), merged
        for field in CLOCK_FIELDS:
            with _sent(database) as sent:
                _page(database, catalog, Sort(field, order), offset=0, limit=10)
            opened = [s for s in sent if "_since_ms IS NOT NULL" in s]
            assert opened, sent
            assert not any(plain_since.search(s) for s in opened), opened


DAY_BASE = at("2024-06-01T00:00:00Z")
DAY_MS = 86_400_000


def _load_completions(database: Database, catalog: CatalogSnapshot) -> None:
    """400 workloads created every 50 minutes, two at a time (ties on createdAt), over two weeks; four
    in five Completed, most within hours of their creation, every seventh after a long run (up to
    four weeks, so that the recently completed were created all along), some exactly on a day's
    first or last millisecond; the rest Running; every eleventh deleted. Each day of completion holds
    a few to a few dozen rows, so that a page reads some days in full and others up to a bound."""
    rng = random.Random(25)
    records = []
    for i in range(400):
        created = DAY_BASE + timedelta(minutes=50 * (i // 2))
        fields: dict[str, Any] = {"createdAt": created, "phaseUpdatedAt": created}
        if i % 5 == 4:
            fields |= {"phase": "Running"}
        else:
            if i % 7 == 0:
                done = created + timedelta(days=rng.randrange(3, 28), minutes=rng.randrange(0, 1440))
            else:
                done = created + timedelta(minutes=rng.randrange(1, 600))
            if i % 13 == 0:
                # On a day's first or last millisecond: the edges of the day index's days.
                day = done.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
                done = day if i % 2 else day - timedelta(milliseconds=1)
            fields |= {"phase": "Completed", "completedAt": done, "phaseUpdatedAt": done}
        records.append(workload(f"c{i:03d}", **fields))
    _create_deleting(database, catalog, records, every=11)


def _after(days: float, op: str = ">=") -> str:
    return f"completedAt{op}{_iso(DAY_BASE + timedelta(days=days))}"


COMPLETION_TERMS = [
    [_after(10)],  # the recent ones, created all along
    [_after(12.3)],  # from within a day
    [_after(0)],  # every completed one
    [f"completedAt<={_iso(DAY_BASE + timedelta(days=4) - timedelta(milliseconds=1))}"],  # a day's last ms
    [_after(3), _after(6, "<=")],
    [_after(2), _after(9)],
    [_after(5), _after(5, "<=")],  # the rows completed on a day's first millisecond
    [_after(90)],  # none
]
# The page statement of a range read day by day (``store.ordering.page_by_days``).
BY_DAYS = "WITH RECURSIVE days(day)"


def test_a_completed_range_in_creation_order_is_read_day_by_day(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """A range on completedAt in the creation order (``completed_days``): each day of completion's
    first rows along ``ix_workloads_completed_day``, merged, give exactly the plain ``ORDER BY``'s
    page, at every offset, in both directions, with ties on createdAt across and within days, days
    that hold fewer rows than wanted, and bounds on a day's edge; one statement for the page, beside
    the days' ends and the page's rows. Past ``COMPLETED_DAYS_MOST`` entries (a deep offset) the
    walk or the sort of ``ranged_walk`` answers, as exactly."""
    _load_completions(database, catalog)
    rows = _values(database, catalog)
    by_days = 0
    for terms in COMPLETION_TERMS:
        selected = [r for r in rows if all(_holds(r, t) for t in terms)]
        for order in SortOrder:
            expected = _expected(selected, "createdAt", order is SortOrder.DESC)
            for offset, limit in ((0, 10), (0, 50), (3, 1), (7, 5), (60, 20), (len(expected) - 3, 10)):
                offset = max(0, offset)
                with _sent(database) as sent:
                    got, more = _page(
                        database, catalog, Sort("createdAt", order), offset=offset, limit=limit, terms=terms
                    )
                assert got == expected[offset : offset + limit], (terms, order, offset, limit)
                assert more == (len(expected) > offset + limit), (terms, order, offset, limit)
                if offset + limit + 1 <= 100:
                    # At most 40 days of completion here, 100 rows from each: read day by day.
                    queries = [s for s in sent if s.startswith(("SELECT", "WITH"))]
                    pages = [s for s in queries if s.startswith(BY_DAYS)]
                    assert len(pages) == 1 or not expected, (terms, sent)
                    assert len(queries) <= 3, sent
                    by_days += len(pages)
    assert by_days > 50


def test_a_completed_range_page_reads_the_day_index_alone(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """The page statement of a range read day by day reads ``ix_workloads_completed_day`` twice (each
    day's bound, then its rows up to it) and nothing else: on SQLite, as it plans it (no statistics);
    on PostgreSQL, as it can (scans and joins that read the table ruled out), so that the day's
    expression is the index's. The completion-time index and a sort of the whole selection, main's
    plan, are not among them. So does the statement before it (the first and last day), each day one
    index probe at an end of it (no sort)."""
    _load_completions(database, catalog)
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        if "86400000" in statement and not statement.startswith("SELECT count"):
            captured.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        for order in SortOrder:
            _page(database, catalog, Sort("createdAt", order), offset=0, limit=10, terms=COMPLETION_TERMS[0])
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    assert len(captured) == 4, captured
    sqlite = database.engine.dialect.name == "sqlite"
    with database.read() as conn:
        for statement, parameters in captured:
            if sqlite:
                explained = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                plan = [str(r[3]) for r in explained]
                reads = [
                    r for r in plan if r.startswith(("SCAN", "SEARCH")) and "days" not in r and "ROW" not in r
                ]
            else:
                for setting in ("seqscan", "bitmapscan", "hashjoin", "mergejoin"):
                    conn.exec_driver_sql(f"SET LOCAL enable_{setting} = off")
                plan = [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
                reads = [r for r in plan if " Scan " in r and " on workloads" in r]
            by_day = [r for r in reads if "ix_workloads_completed_day" in r]
            assert len(by_day) == 2, "\n".join(plan)
            assert reads == by_day, plan
            if sqlite:
                assert all("COVERING INDEX ix_workloads_completed_day" in r for r in by_day), plan
            if not statement.startswith("WITH RECURSIVE"):
                assert not any("TEMP B-TREE" in r or r.lstrip().startswith("Sort") for r in plan), plan


def test_a_completed_range_count_reads_the_day_index_alone(
    database: Database, catalog: CatalogSnapshot
) -> None:
    """A range on completedAt also bounds the day of completion (``Compiler``): a count of live rows
    reads the range's entries of ``ix_workloads_completed_day`` and nothing else (its days by the
    index's leading key, the range on its entries), where SQLite read the completion-time index
    and each row for ``deleted_at``, and PostgreSQL (with the day index) the whole day index. The
    counts, of live and of deleted rows, are those of the rows in Python."""
    _load_completions(database, catalog)
    sqlite = database.engine.dialect.name == "sqlite"
    for deleted in (False, True):
        rows = _values(database, catalog, deleted=deleted)
        for terms in COMPLETION_TERMS:
            query = WorkloadQuery(scope=EVERYTHING, deleted=deleted, terms=parse_filter(terms))
            with _sent(database) as sent, database.read() as conn:
                count = store.count_workloads(conn, query, catalog=catalog, now_ms=NOW_MS)
            assert count == sum(1 for r in rows if all(_holds(r, t) for t in terms)), (terms, deleted)
            if deleted:
                continue
            (statement,) = [s for s in sent if s.startswith("SELECT count(*)")]
            assert re.search(r"\(workloads\.completed_at / 86400000\) [<>]=", statement), statement
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        if statement.startswith("SELECT count(*)"):
            captured.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.read() as conn:
            query = WorkloadQuery(scope=EVERYTHING, terms=parse_filter(COMPLETION_TERMS[0]))
            store.count_workloads(conn, query, catalog=catalog, now_ms=NOW_MS)
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    ((statement, parameters),) = captured
    with database.read() as conn:
        if sqlite:
            plan = [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert plan == ["SEARCH workloads USING COVERING INDEX ix_workloads_completed_day (<expr>>?)"], (
                plan
            )
        else:
            for setting in ("seqscan", "bitmapscan"):
                conn.exec_driver_sql(f"SET LOCAL enable_{setting} = off")
            plan = [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
            scans = [r for r in plan if " Scan " in r]
            assert len(scans) == 1, plan
            assert "ix_workloads_completed_day" in scans[0], plan
            conditions = [r for r in plan if "Index Cond" in r]
            assert len(conditions) == 1, plan
            assert "86400000)) >=" in conditions[0], plan
