"""Sorting by a field that no index orders: the page from ordered parts, asked one after another.

A sort by such a field (the catalog-resolved ``category``, ``priorityClassName`` and ``priority``; a
column of few values such as ``phase`` or ``projectName``, whose index is ordered by creation time
within a value, not by id; a sparse column, whose index holds only the rows with a value) would read
and sort every matching row. Instead the matching rows are split into parts whose sort keys do not
overlap and that follow each other in the sort's order, and each part is one that an index walks in
order:

- a column with values only on some rows (``domain.fields``: nullable, with a sparse index in
  ``store.schema``): the rows with a value, along that index by (value, id), then those without, by
  id (NULLs last in both directions);
- a field of few values that the live-count rollup holds (stored, or resolved through the catalog):
  one part per value present, in the sort's order, each by id. The rollup says which values are
  present and how many rows each has, so an absent value costs nothing; a part with many rows is
  walked along the id index with its own predicate kept off its index (``SqlDialect.unindexed``),
  since it holds on most rows visited, and a small one is looked up by its index and sorted.

Parts are asked in order, each for as many ids as the page still needs (plus what the offset still
skips), until the page is full: usually one statement. The clock fields and the rest keep the plain
``ORDER BY``.

A range term (``<=``, ``>=``) on a column with an index of its own, in the creation-time order, has
two plans: walk the order's index testing the range on each row (a few rows where the selected ones
spread along the walk; the whole table where they lie at its far end, as the recently completed do in
ascending order), or look the rows up by the range's index and sort them (cheap for a small
selection only). SQLite has no statistics to choose by, and PostgreSQL's take the selected rows as
spread evenly. ``ranged_walk`` chooses: a range whose index holds fewer than ``√(need · N)`` rows
(counted along it, no further) is looked up and sorted; else the walk goes at most that far, the
range kept off its index, and if the page is among the rows visited it is the page; if not, the
selection lies away from that end, and is looked up and sorted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import sqlalchemy as sa

from workplane.domain.catalog import PRIORITIES
from workplane.domain.fields import FIELDS, Source
from workplane.query.filters import Sort, SortOrder, Term, WorkloadQuery
from workplane.store.compile import (
    RANGE_OPERATORS,
    Compiler,
    day_of,
    range_bound,
    range_day,
)
from workplane.store.dialects.base import SqlDialect
from workplane.store.schema import SCOPE_HELD_VALUES, SPARSE_INDEXED, workload_counts, workloads
from workplane.store.scopes import restrict

w = workloads.c
PRIORITY_VALUE = {p.name: p.value for p in PRIORITIES}


@dataclass(frozen=True, slots=True)
class Part:
    """Rows satisfying ``where``, in the order ``order`` (one an index walks). ``where`` may be given
    as a function that makes it (``condition``): a sort by a field of many values (``projectId``: a
    part for each of some 150 projects at a million workloads) has a part per value, a page is mostly
    read from the first, and building every part's predicate was half of such a request's time."""

    where: sa.ColumnElement[bool] | Callable[[], sa.ColumnElement[bool]]
    order: Sequence[sa.ColumnElement[Any]]

    def condition(self) -> sa.ColumnElement[bool]:
        return self.where if isinstance(self.where, sa.ColumnElement) else self.where()


@dataclass(slots=True)
class Asked:
    """What one list request has read already, whichever compiler asked: the live total, the live
    rows inside the caller's scope (``scope_rows``), and the walks' edges by (descending, deleted,
    reach) (``ranged_walk``)."""

    live_total: int | None = None
    scope_rows: int | None = None
    edges: dict[tuple[bool, bool, int], Any] = field(default_factory=dict)


class Rollup:
    """The live-count rollup (``workload_counts``) as one list request reads it: the live total (and
    a walk's edge, ``ranged_walk``) is asked once however many of the decisions below need it, also
    across the ``with_compiler`` views of one request (a clock term's three sets)."""

    def __init__(
        self, connection: sa.Connection, query: WorkloadQuery, compiler: Compiler, asked: Asked | None = None
    ) -> None:
        self.connection = connection
        self.query = query
        self.compiler = compiler
        self.asked = Asked() if asked is None else asked

    def with_compiler(self, compiler: Compiler) -> Rollup:
        """The same request read through another compiler, sharing what has been asked."""
        return Rollup(self.connection, self.query, compiler, self.asked)

    def live_total(self) -> int:
        """The live workloads: about the rows a walk of the whole id index visits."""
        if self.asked.live_total is None:
            total = sa.select(sa.func.coalesce(sa.func.sum(workload_counts.c.n), 0))
            self.asked.live_total = int(self.connection.execute(total).scalar_one())
        return self.asked.live_total

    def counts(self, *columns: sa.ColumnElement[Any], tenant_wide: bool = False) -> Counter[Any]:
        """Live workloads matching the query's terms inside its scope, per value of ``columns`` (one
        column: keyed by its value; several: by the tuple). ``tenant_wide``: every live workload,
        whatever the query asks (the rows a value's index holds)."""
        asked = [] if tenant_wide else [restrict(workload_counts, self.query.scope), *self._terms()]
        statement = sa.select(*columns, sa.func.sum(workload_counts.c.n)).where(*asked).group_by(*columns)
        counts: Counter[Any] = Counter()
        for row in self.connection.execute(statement):
            key = row[0] if len(columns) == 1 else tuple(row[: len(columns)])
            if row[-1]:
                counts[key] += int(row[-1])
        return counts

    def term_rows(self) -> list[int]:
        """Live workloads matching each of the query's terms alone, tenant-wide (one statement)."""
        rows = workload_counts.c.n
        each = [sa.func.coalesce(sa.func.sum(rows).filter(term), 0) for term in self._terms()]
        return [int(n) for n in self.connection.execute(sa.select(*each)).one()]

    def _terms(self) -> list[sa.ColumnElement[bool]]:
        """The query's terms on the rollup (whose columns share the workloads' names)."""
        compiler = self.compiler
        rollup = Compiler(compiler.catalog, compiler.now_ms, compiler.dialect, table=workload_counts)
        return [rollup.term(t) for t in self.query.terms]


def scope_rows(connection: sa.Connection, query: WorkloadQuery, asked: Asked) -> int:
    """The live workloads inside ``query``'s scope, read from the rollup (with the live total, where
    not yet asked, in the same statement; both kept in ``asked``)."""
    if asked.scope_rows is None:
        rows = workload_counts.c.n
        scoped = sa.func.coalesce(sa.func.sum(rows).filter(restrict(workload_counts, query.scope)), 0)
        if asked.live_total is not None:
            asked.scope_rows = int(connection.execute(sa.select(scoped)).scalar_one())
        else:
            total = sa.func.coalesce(sa.func.sum(rows), 0)
            inside, everything = connection.execute(sa.select(scoped, total)).one()
            asked.scope_rows, asked.live_total = int(inside), int(everything)
    return asked.scope_rows


def _scope_may_yield(rollup: Rollup) -> bool:
    """Whether a read of live rows is restricted by a scope that is on its index, on a dialect that
    can rule an index out (``SqlDialect.rules_out_indexes``; not where ``_broad_scope`` of
    ``store.workloads`` has already taken it off)."""
    query, compiler = rollup.query, rollup.compiler
    if query.scope.tenant or query.deleted or compiler.scope_unindexed:
        return False
    return compiler.dialect.rules_out_indexes


def terms_lead(rollup: Rollup, *, few: bool, walk: Walk | None, need: int) -> bool:
    """Whether a scoped selection that is looked up by its terms' indexes and sorted (``few``, or a
    range whose walk has no bound: it holds fewer rows than the walk's reach) is better read by
    those indexes, the scope checked on each row, than by the scope's own index: the scope holds
    more live rows than the terms select tenant-wide. Asked only where the dialect can rule an index
    out: SQLite, which keeps no statistics, takes the scope's equality as selective whatever it holds
    (a project viewer's page of ``phase==Pending`` was its project's 15,000 rows read and sorted,
    ``allocatedGPU>=8`` the same for none). A ``few`` selection's terms must each be an equality the
    rollup counts (what the page then reads: the largest of their selections, whichever index SQLite
    takes); a range's selection is under the reach, the rows a walk would visit."""
    query = rollup.query
    if not _scope_may_yield(rollup):
        return False
    if few:
        if not all(t.op == "==" for t in query.terms):
            return False
        return max(rollup.term_rows()) < scope_rows(rollup.connection, query, rollup.asked)
    if walk is None or walk.bound is not None or walk.empty:
        return False
    return scope_rows(rollup.connection, query, rollup.asked) > walk_reach(need, rollup.live_total())


def ranges_lead(rollup: Rollup) -> bool:
    """``terms_lead`` for a count: whether one of the query's range terms on a column with an index
    of its own (or on the clock field whose set ``rollup.compiler`` reads) holds on fewer rows than
    the caller's scope holds live ones, counted along its index up to that many in one statement (an
    index-only read no longer than the scope's). SQLite counted a project viewer's ``allocatedGPU>=8``
    by the project's 15,000 rows where the term's index holds 56."""
    query, compiler = rollup.query, rollup.compiler
    if not _scope_may_yield(rollup):
        return False
    streams = compiler.streams
    clauses = [
        compiler.term(t)
        for t in query.terms
        if t.op in RANGE_OPERATORS and (t.field.column in RANGE_INDEXED or t.field.name in streams)
    ]
    if not clauses:
        return False
    inside = scope_rows(rollup.connection, query, rollup.asked)
    capped = [
        sa.select(sa.func.count())
        .select_from(sa.select(sa.literal(1)).select_from(workloads).where(clause).limit(inside).subquery())
        .scalar_subquery()
        for clause in clauses
    ]
    return min(int(n) for n in rollup.connection.execute(sa.select(*capped)).one()) < inside


def parts_for(
    rollup: Rollup,
    sort: Sort,
    *,
    need: int,
) -> list[Part] | None:
    """The parts a sort by ``sort.field`` is answered from, or None where the plain ``ORDER BY`` is
    the better plan. ``need``: how many ids the walk must yield (offset plus the page and one)."""
    query, compiler = rollup.query, rollup.compiler
    cost = compiler.dialect.walk_cost
    spec = FIELDS[sort.field]
    descending = sort.order is SortOrder.DESC
    by_id = [w.id.desc() if descending else w.id.asc()]
    column_name = "first_nodepool" if spec.source is Source.POOLS else spec.column
    if column_name == "deleted_at":
        # The selection decides it: live rows have no value (all ties: by id), deleted ones all have
        # one (along the index of deleted rows).
        key = w.deleted_at.desc() if descending else w.deleted_at.asc()
        return [Part(sa.true(), [key, *by_id] if query.deleted else by_id)]
    if column_name in SPARSE_INDEXED:
        column = w[column_name]
        key = column.desc() if descending else column.asc()
        return [Part(column.is_not(None), [key, *by_id]), Part(column.is_(None), by_id)]
    # The rollup knows the live rows only, and only the terms it can answer: anything else is a
    # selection whose size it cannot tell (a selective one is best answered by its own index).
    if query.deleted or query.words or not all(t.field.countable for t in query.terms):
        return None
    if spec.source is Source.CATALOG:
        field = "category" if sort.field == "category" else "priorityClassName"
        groups = _catalog_groups(rollup, field)
        values = sorted(
            (v for v in groups if v is not None), key=_catalog_key(sort.field), reverse=descending
        )
        ordered = [*values, None] if None in groups else values
        total = rollup.live_total()

        def resolved_is(value: str | None) -> sa.ColumnElement[bool]:
            return compiler.resolved_is(field, value, unindexed=dense(groups[value], total, need, cost))

        return [Part(partial(resolved_is, value), by_id) for value in ordered]
    if spec.source is Source.STORED and spec.countable and spec.column is not None:
        counts = rollup.counts(workload_counts.c[spec.column])
        total = rollup.live_total()
        column = w[spec.column]
        unindexed = compiler.dialect.unindexed(column)
        broader = _broader_than_scope(rollup, spec.column)

        def value_is(value: Any) -> sa.ColumnElement[bool]:
            off = dense(counts[value], total, need, cost) or value in broader
            subject = unindexed if off else column
            condition: sa.ColumnElement[bool] = subject == value
            return condition

        return [Part(partial(value_is, value), by_id) for value in sorted(counts, reverse=descending)]
    return None


def _broader_than_scope(rollup: Rollup, column: str) -> set[Any]:
    """The values of ``column`` whose index would cost more to read than the caller's scope's, where
    the scope is read by its own index (``_scope_may_yield``): a part of such a value is looked up by
    the scope's index, its value kept off its own. SQLite, which keeps no statistics, took either
    index: a project viewer's page by type at a million workloads read every live row of the type
    (930,000) and sorted them, 0.8 s. A value's index gives rows each read from the table for the
    scope's test; a project's or department's index holds the parts' columns (``PART_COLUMNS``,
    migration 0029: the rollup's columns, every column parts are read by), so its entries cost
    ``walk_cost`` times less (a cluster's reads rows as the value's does). Not a value whose index
    holds the scopes (``SCOPE_HELD_VALUES``: the live Pending rows), whose entries are checked without
    the table."""
    if not _scope_may_yield(rollup):
        return set()
    inside = scope_rows(rollup.connection, rollup.query, rollup.asked)
    weight = 1.0 if rollup.query.scope.clusters else rollup.compiler.dialect.walk_cost
    return {
        value
        for value, rows in rollup.counts(workload_counts.c[column], tenant_wide=True).items()
        if rows * weight > inside and (column, value) not in SCOPE_HELD_VALUES
    }


def few_matches(rollup: Rollup, *, need: int) -> bool:
    """Whether the rollup says that the query's terms select so few live rows that looking them up
    by the terms' own indexes and sorting them beats walking any ordered index (which, for a rare
    selection, visits most of the table before the page is full: a term on a catalog-resolved
    field, an absent value)."""
    query = rollup.query
    if query.deleted or query.words or not query.terms or not all(t.field.countable for t in query.terms):
        return False
    matching = sum(rollup.counts(workload_counts.c.phase).values())
    return not dense(matching, rollup.live_total(), need)


# The creation-time index, on live rows and on deleted ones, is ordered by (createdAt, id): a walk of it
# needs no sort. Columns whose own index a range term would be answered by (``ranges_unindexed``).
WALKED_FIELDS = frozenset({"createdAt"})
RANGE_INDEXED = frozenset({*SPARSE_INDEXED, "phase_updated_at"})


@dataclass(frozen=True, slots=True)
class Walk:
    """How a page in the creation-time order with a range term on an indexed column is read: along
    the order's index as far as ``bound`` (None: not at all, the range selects few rows), then, where
    the page is not all inside, the selection found by the range's index and sorted. ``whole``: the
    bound holds on every row (the table has no more rows than the walk may visit). ``empty``: a
    range holds on no row at all, so neither is needed."""

    bound: sa.ColumnElement[bool] | None
    whole: bool = False
    empty: bool = False


def ranged_walk(rollup: Rollup, sort: Sort, *, need: int) -> Walk | None:
    """The ``Walk`` for a query with a range term on a column that has an index of its own, in an
    order whose index a walk follows (see the module's docstring); None where that does not apply.
    ``need``: how many ids the walk must yield (offset plus the page and one)."""
    return ranged_walks([rollup], sort, need=need)[0]


def ranged_walks(rollups: Sequence[Rollup], sort: Sort, *, need: int) -> list[Walk | None]:
    """``ranged_walk`` for each of ``rollups``, views of one request through different compilers (a
    clock term's three sets, ``Compiler.clock_streams``): every range's capped count, for every view,
    in one statement, and the walk's edge once, where a view walks."""
    if not rollups or sort.field not in WALKED_FIELDS:
        return [None] * len(rollups)
    first = rollups[0]
    query, connection = first.query, first.connection
    # Each view's range terms, each keyed by the term and, for a clock term, the view's set of rows
    # (a term compiles alike in every view but that one): a count asked once for all views it is in.
    ranges: list[list[tuple[int, int | None]]] = []
    clauses: dict[tuple[int, int | None], sa.ColumnElement[bool]] = {}
    for rollup in rollups:
        streams = rollup.compiler.streams
        keys = []
        for number, term in enumerate(query.terms):
            name = term.field.name
            if term.op in RANGE_OPERATORS and (term.field.column in RANGE_INDEXED or name in streams):
                key = (number, streams.get(name))
                if key not in clauses:
                    clauses[key] = rollup.compiler.term(term)
                keys.append(key)
        ranges.append(keys)
    if not clauses:
        return [None] * len(rollups)
    reach = walk_reach(need, first.live_total())
    # Each range's rows, counted along its own index up to ``reach`` (deleted rows and the other terms
    # included: an upper bound on the selection), each in a scalar subquery of one statement.
    capped = [
        sa.select(sa.func.count())
        .select_from(sa.select(sa.literal(1)).select_from(workloads).where(clause).limit(reach).subquery())
        .scalar_subquery()
        for clause in clauses.values()
    ]
    counted = dict(zip(clauses, connection.execute(sa.select(*capped)).one(), strict=True))
    walks: list[Walk | None] = []
    for keys in ranges:
        walks.append(None if not keys else _walk_of([counted[k] for k in keys], first, sort, reach))
    return walks


def _walk_of(selected: Sequence[int], rollup: Rollup, sort: Sort, reach: int) -> Walk:
    """The ``Walk`` of a view whose range terms hold on ``selected`` rows each (capped at ``reach``)."""
    for rows in selected:
        if rows == 0:
            # No row at all: the page is empty, no page statement (a clock term's sets are read
            # apart, and usually one or two of the three hold nothing).
            return Walk(None, empty=True)
        if rows < reach:
            # Fewer than the walk would visit: looking them up and sorting is cheap.
            return Walk(None)
    query, connection = rollup.query, rollup.connection
    key = w.created_at
    descending = sort.order is SortOrder.DESC
    kept = w.deleted_at.is_not(None) if query.deleted else w.deleted_at.is_(None)
    # The key of the ``reach``-th row along the index (an index-only walk): ties on it are all kept,
    # since the bound only has to hold on every row up to there. The same for each of a clock term's
    # sets (it depends on the order and the live or deleted rows only): asked once.
    edges = rollup.asked.edges
    asked = (descending, bool(query.deleted), reach)
    if asked not in edges:
        edges[asked] = connection.execute(
            sa.select(key).where(kept).order_by(key.desc() if descending else key).offset(reach - 1).limit(1)
        ).scalar()
    edge = edges[asked]
    if edge is None:
        return Walk(sa.true(), whole=True)
    return Walk(key >= edge if descending else key <= edge)


# A range on a time in the creation order, read day by day (``days_spanned``): at most this many
# index entries read (the days times the rows wanted from each), else ``ranged_walk`` (or the pods'
# ``_ranged_page``).
COMPLETED_DAYS_MOST = 8000
# Above and below every creation time: a day's bound where the day holds fewer rows than wanted.
_LATEST = 2**62


@dataclass(frozen=True, slots=True)
class DayIndex:
    """An index of a table's rows that have a time, by the time's day (``day_of``), then by
    ``(created_at, id)``, holding the time itself (the range is tested on each entry) and
    ``deleted_at``: ``ix_workloads_completed_day`` (migration 0025), ``ix_workload_pods_completed_day``
    and ``ix_workload_pods_deleted_day`` (0026). ``live``: it holds the live rows only (else the
    deleted ones, whose time is ``deleted_at``). Made by ``day_index``."""

    name: str  # the index's, which also keys the statements built for it
    table: sa.Table
    time: str  # the time column's name
    live: bool
    rows: sa.FromClause  # the table again: the rows whose ``need``-th creation time a day's subquery reads

    def held(self, table: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        """The index's condition, on ``table`` (the table or ``rows``)."""
        kept = [table.c.deleted_at.is_(None)] if self.live else []
        return [*kept, table.c[self.time].is_not(None)]


def day_index(name: str, table: sa.Table, time: str, *, live: bool) -> DayIndex:
    return DayIndex(name, table, time, live, table.alias("day_rows"))


COMPLETED_DAYS = day_index("ix_workloads_completed_day", workloads, "completed_at", live=True)


@dataclass(frozen=True, slots=True)
class Days:
    """The days (``day_of``) that a range on a time spans, both included (none where ``first >
    last``)."""

    first: int
    last: int


def completed_days(connection: sa.Connection, query: WorkloadQuery, sort: Sort, *, need: int) -> Days | None:
    """The days of completion a page of live workloads in the creation order is read from, where
    the query's terms are ranges on completedAt (``page_by_days``; ``need``: offset plus the page
    and one); None where this does not apply, or ``days_spanned`` finds it too costly.

    The recently completed were created all along the newest end of the creation order, so a walk
    from its oldest end finds them only there, and no other index gave them in that order: they
    were looked up by the range's index and sorted (31,000 rows at 1M). Other terms, search words
    and a caller's scopes keep ``ranged_walk``: a predicate the day index does not hold would be
    tested on each day's rows, found through the table, or could lead the planner to walk its own
    index once a day."""
    if (
        sort.field not in WALKED_FIELDS
        or query.deleted
        or query.words
        or not query.scope.tenant
        or not query.terms
        or not all(t.field.name == "completedAt" and t.op in RANGE_OPERATORS for t in query.terms)
    ):
        return None
    return days_spanned(connection, COMPLETED_DAYS, query.terms, need=need)


def days_spanned(
    connection: sa.Connection, index: DayIndex, terms: Sequence[Term], *, need: int
) -> Days | None:
    """The days of ``index`` that a page of the rows it holds, in the creation order, with the range
    ``terms`` (``>=``, ``<=``) on its time, is read from (``page_by_days``; ``need``: offset plus the
    page and one); None where the range spans so many days that reading ``need`` rows of each costs
    more than ``COMPLETED_DAYS_MOST`` entries."""
    # The first and last day of any row the index holds, one index probe each.
    table = index.table
    day = day_of(table.c[index.time])
    ends = [
        sa.select(day).where(*index.held(table)).order_by(order).limit(1).scalar_subquery()
        for order in (day.asc(), day.desc())
    ]
    first, last = connection.execute(sa.select(*ends)).one()
    if first is None:
        return Days(1, 0)
    for term in terms:
        # The day of the range's bound: every row in the range is on that day or after (before, for
        # ``<=``).
        bound_day = range_day(term.op, term.number)
        if term.op == ">=":
            first = max(first, bound_day)
        else:
            last = min(last, bound_day)
    if (last - first + 1) * need > COMPLETED_DAYS_MOST:
        return None
    return Days(first, last)


def page_by_days(
    connection: sa.Connection,
    index: DayIndex,
    terms: Sequence[Term],
    dialect: SqlDialect,
    days: Days,
    *,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[list[str], bool]:
    """The page, in the creation order, of the rows ``index`` holds with the range ``terms`` on its
    time, all within ``days`` (``days_spanned``); and whether more rows follow it. One statement: for
    each day, the ``need``-th row's creation time along the day index (the day's rows by
    ``(created_at, id)``), then the day's rows up to it, read from that index alone, and their first
    ``need`` in the order: a row among the page's first ``need`` is among its own day's first
    ``need``. About ``need`` entries twice per day, however many rows the range holds; planned once
    whatever the number of days (a correlated subquery, not a subquery per day)."""
    if days.first > days.last:
        return [], False
    ops = tuple(t.op for t in terms)
    # Whole-millisecond bounds, as ``time_predicate`` takes them.
    bounds = {f"bound{n}": range_bound(t.op, t.number) for n, t in enumerate(terms)}
    statement = _days_page(index, dialect, descending, ops)
    parameters = {"first": days.first, "last": days.last, "skip": offset + limit, "offset": offset}
    ids = list(connection.execute(statement, {**parameters, **bounds, "limit": limit + 1}).scalars())
    return ids[:limit], len(ids) > limit


# ``page_by_days``'s statement, by index, database, direction and range operators: built once
# (SQLAlchemy builds and keys a statement of this size in about a millisecond), its values bound.
_DAYS_PAGES: dict[tuple[str, str, bool, tuple[str, ...]], sa.Select[Any]] = {}


def _days_page(
    index: DayIndex, dialect: SqlDialect, descending: bool, ops: tuple[str, ...]
) -> sa.Select[Any]:
    key = (index.name, dialect.name, descending, ops)
    if key in _DAYS_PAGES:
        return _DAYS_PAGES[key]

    def value(name: str) -> sa.BindParameter[int]:
        return sa.bindparam(name, type_=sa.BigInteger)

    numbers = sa.select(value("first").label("day")).cte("days", recursive=True)
    numbers = numbers.union_all(sa.select(numbers.c.day + 1).where(numbers.c.day < value("last")))

    def selected(table: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        # The range off the time's own index, tested on the day index's entries.
        time = dialect.unordered(table.c[index.time])
        ranges = (
            time >= value(f"bound{n}") if op == ">=" else time <= value(f"bound{n}")
            for n, op in enumerate(ops)
        )
        return [*index.held(table), *ranges]

    def ordered(key: sa.ColumnElement[Any], tie: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
        return [key.desc(), tie.desc()] if descending else [key.asc(), tie.asc()]

    table, rows = index.table, index.rows
    # The day's ``need``-th row's creation time (none: the day holds fewer, all of them wanted).
    edge = (
        sa.select(rows.c.created_at)
        .where(*selected(rows), day_of(rows.c[index.time]) == numbers.c.day)
        .order_by(*ordered(rows.c.created_at, rows.c.id))
        .offset(sa.bindparam("skip", type_=sa.Integer))
        .limit(1)
        .scalar_subquery()
    )
    created = table.c.created_at
    inside = (
        created >= sa.func.coalesce(edge, -_LATEST)
        if descending
        else created <= sa.func.coalesce(edge, _LATEST)
    )
    statement = _DAYS_PAGES[key] = (
        sa.select(table.c.id)
        .select_from(numbers.join(table, day_of(table.c[index.time]) == numbers.c.day))
        .where(*selected(table), inside)
        # The days' rows sorted (about ``need`` a day), never the creation order's own index walked
        # (a planner without statistics of the day, or with a few rows, might).
        .order_by(*ordered(dialect.unordered(created), table.c.id))
        .offset(sa.bindparam("offset", type_=sa.Integer))
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    return statement


# The clock fields (``Compiler.clock_streams``): a sort by one merges the three sets' own orders.
CLOCK_FIELDS = frozenset({"totalPendingTimeSeconds", "totalRunningTimeSeconds"})
# Beyond this many rows into a sort (offset plus page), the merge's candidates would make too long a
# list of ids: the plain ``ORDER BY``.
CLOCK_MERGE_MOST = 2000


def clock_candidates(
    connection: sa.Connection, statement: sa.Select[Any], compiler: Compiler, sort: Sort, *, need: int
) -> list[str]:
    """Ids among which the first ``need`` rows of ``statement`` (a select of the id column) in the
    order of the clock field ``sort.field`` are: from each of the field's three sets of rows, its
    first ``need`` along its key's index, and, where the key is in milliseconds, the first ``need``
    by id of the whole second that the last of them is in (the order is by whole seconds, then id,
    so a row later in the key's order within that second can come earlier). The caller orders them
    with the plain ``ORDER BY``."""
    descending = sort.order is SortOrder.DESC
    by_id = w.id.desc() if descending else w.id.asc()
    streams = compiler.clock_streams(sort.field)
    # The first rows of each set in one statement (each its own ordered, limited subquery).
    firsts = []
    for number, stream in enumerate(streams):
        key = stream.key
        first = (
            statement.add_columns(key.label("key"), sa.literal(number).label("stream"))
            .where(stream.where)
            .order_by(key.desc() if descending else key.asc(), by_id)
            .limit(need)
            .subquery()
        )
        firsts.append(sa.select(first.c.id, first.c.key, first.c.stream))
    rows = connection.execute(sa.union_all(*firsts)).all()
    ids = dict.fromkeys(row[0] for row in rows)
    for number, stream in enumerate(streams):
        keys = [row[1] for row in rows if row[2] == number]
        if len(keys) < need or stream.scale == 1000:
            continue
        last = min(keys) if descending else max(keys)
        low = stream.key_bound(stream.seconds(last) * 1000)
        # By id, but found by the key's index (ordering along the id index would walk the table).
        unindexed = compiler.dialect.unindexed(w.id)
        tied = (
            statement.where(stream.where, stream.key >= low, stream.key < low + 1000)
            .order_by(unindexed.desc() if descending else unindexed.asc())
            .limit(need)
        )
        ids.update(dict.fromkeys(connection.execute(tied).scalars()))
    return list(ids)


def page_by_parts(
    connection: sa.Connection, statement: sa.Select[Any], parts: list[Part], *, offset: int, limit: int
) -> tuple[list[str], bool]:
    """The page of ``statement`` (a select of the id column, unordered) ordered as ``parts`` follow
    each other, and whether more rows follow it (``paging.page_ids`` for parts)."""
    ids: list[str] = []
    skip = offset
    for part in parts:
        want = skip + limit + 1 - len(ids)
        got = list(
            connection.execute(statement.where(part.condition()).order_by(*part.order).limit(want)).scalars()
        )
        if len(got) <= skip:
            skip -= len(got)
            continue
        ids.extend(got[skip:])
        skip = 0
        if len(ids) > limit:
            break
    return ids[:limit], len(ids) > limit


def page_by_merge(
    connection: sa.Connection,
    statement: sa.Select[Any],
    parts: list[Part],
    keys: Sequence[sa.ColumnElement[Any]],
    *,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[list[str], bool]:
    """The page of ``statement`` (a select of the id column, unordered) in the order of ``keys`` (the
    id last), where the parts' rows interleave in that order but each part alone is one an index walks
    in it (``part.order``: ``keys`` in the same direction): each part's first ``offset + limit + 1``
    rows, merged, in one statement (a ``UNION ALL`` of the parts' ``LIMIT``-ed walks, sorted). The
    rows read are at most that many per part, however many the parts hold; and whether more rows
    follow the page."""
    want = offset + limit + 1
    walks = [
        statement.with_only_columns(*keys)
        .where(part.condition())
        .order_by(*part.order)
        .limit(want)
        .subquery()
        for part in parts
    ]
    merged = sa.union_all(*(sa.select(*walk.c) for walk in walks)).subquery()
    columns = list(merged.c)
    order = [c.desc() if descending else c.asc() for c in columns]
    page = sa.select(columns[-1]).order_by(*order).offset(offset).limit(limit + 1)
    ids = list(connection.execute(page).scalars())
    return ids[:limit], len(ids) > limit


def walk_reach(need: int, total: int) -> int:
    """How far a walk along an ordered index may go for ``need`` rows of ``total``: ``√(need · N)``,
    where walking as many rows costs what looking up as many and sorting them does (``dense``), and
    at least ``need``."""
    return max(need, math.ceil(math.sqrt(need * max(total, 1))))


def dense(rows: int, total: int, need: int, cost: float = 1.0) -> bool:
    """Whether walking the id index for ``need`` rows of a part of ``rows`` rows (visiting about
    ``need * total / rows``, each ``cost`` times a row looked up: ``SqlDialect.walk_cost``) costs
    less than looking all of them up and sorting them."""
    return rows >= math.sqrt(cost * need * max(total, 1))


def _catalog_groups(rollup: Rollup, field: str) -> Counter[str | None]:
    """Live matching workloads per resolved value of a catalog field (None: no value), from the
    rollup's (type, own value) counts resolved with the compiler's catalog defaults."""
    own = workload_counts.c.own_category if field == "category" else workload_counts.c.own_priority
    defaults = rollup.compiler.catalog_defaults(field)
    groups: Counter[str | None] = Counter()
    for (type_name, own_value), n in rollup.counts(workload_counts.c.type, own).items():
        groups[own_value if own_value is not None else defaults.get(type_name)] += n
    return groups


def _catalog_key(field: str) -> Any:
    """The order of a catalog field's values: by name, or for ``priority`` by the number it stands for."""
    if field == "priority":
        return lambda name: (PRIORITY_VALUE[name], name)
    return lambda name: name
