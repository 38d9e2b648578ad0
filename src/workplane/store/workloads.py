"""Data functions for workloads: write (create / update / delete / purge) and read (list / count / get).

Writers derive what Run:ai derives (phase clock, completedAt, deletedAt) in ``domain``; readers go
through the query layer. None of these functions commits: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from workplane.domain.catalog import CATEGORIES, CATEGORY_BY_NAME, PRIORITY_BY_NAME, CatalogSnapshot
from workplane.domain.fields import FIELDS, Kind
from workplane.domain.phases import Phase, PhaseClock
from workplane.domain.record import Previous, WorkloadIn, build_row, set_doc_fields, transition
from workplane.domain.scopes import ScopeSet
from workplane.domain.text import fold
from workplane.domain.timefmt import to_ms
from workplane.query.filters import Sort, SortOrder, WorkloadQuery, text_matches
from workplane.store.compile import SUBSTRING_OPERATORS, Compiler
from workplane.store.database import dialect_of, insert_rows, upsert
from workplane.store.dialects.base import SqlDialect, TextColumn
from workplane.store.ordering import (
    CLOCK_FIELDS,
    CLOCK_MERGE_MOST,
    COMPLETED_DAYS,
    Asked,
    Part,
    Rollup,
    Walk,
    clock_candidates,
    completed_days,
    dense,
    few_matches,
    page_by_days,
    page_by_parts,
    parts_for,
    ranged_walk,
    ranged_walks,
    ranges_lead,
    scope_rows,
    terms_lead,
)
from workplane.store.paging import page_ids
from workplane.store.schema import (
    LIVE_SCOPE_HELD,
    LIVE_TEXT_INDEXED,
    POOL_COUNTED_COLUMNS,
    SPARSE_INDEXED,
    clusters,
    departments,
    projects,
    workload_counts,
    workload_nodepools,
    workload_pool_counts,
    workloads,
)
from workplane.store.scopes import restrict

w = workloads.c

# Columns a reader needs besides ``doc`` to render the clock- and catalog-dependent fields.
RENDER_COLUMNS = (
    w.id,
    w.doc,
    w.type,
    w.own_category,
    w.own_priority,
    w.own_preemptible,
    w.pending_closed_ms,
    w.pending_since_ms,
    w.running_closed_ms,
    w.running_since_ms,
)


class InvalidWorkload(ValueError):
    pass


class WorkloadNotFound(LookupError):
    pass


def check_record(record: WorkloadIn, catalog: CatalogSnapshot) -> None:
    if record.type not in catalog.types:
        raise InvalidWorkload(f"unknown workload type {record.type!r}")
    if record.category is not None and record.category not in CATEGORY_BY_NAME:
        raise InvalidWorkload(f"unknown category {record.category!r}")
    if record.priority_class_name is not None and record.priority_class_name not in PRIORITY_BY_NAME:
        raise InvalidWorkload(f"unknown priority {record.priority_class_name!r}")


def upsert_organisation(connection: sa.Connection, records: Sequence[WorkloadIn]) -> None:
    # A batch names a few clusters, departments and projects thousands of times: collect the distinct
    # combinations first and build rows only for those. Walking the records backwards and keeping the
    # first row seen per id keeps what the last record says, as one row per record did.
    combinations = dict.fromkeys(
        (r.cluster_id, r.department_id, r.department_name, r.project_id, r.project_name)
        for r in reversed(records)
    )
    cluster_rows: dict[str, dict[str, Any]] = {}
    department_rows: dict[str, dict[str, Any]] = {}
    project_rows: dict[str, dict[str, Any]] = {}
    for cluster, department_id, department_name, project_id, project_name in combinations:
        cluster_id = str(cluster)
        cluster_rows.setdefault(cluster_id, {"id": cluster_id, "name": cluster_id})
        department_rows.setdefault(
            department_id, {"id": department_id, "name": department_name, "cluster_id": cluster_id}
        )
        project_rows.setdefault(
            project_id,
            {
                "id": project_id,
                "name": project_name,
                "department_id": department_id,
                "cluster_id": cluster_id,
            },
        )
    # In id order: on PostgreSQL an upsert locks the rows it updates, and two batches of one cluster
    # written at once (an agent keeps two on their way) must take them in the same order, or each
    # could wait for the other.
    upsert(connection, clusters, _by_id(cluster_rows), [])
    upsert(connection, departments, _by_id(department_rows), ["name"])
    upsert(connection, projects, _by_id(project_rows), ["name", "department_id"])
    _check_owners(connection, departments, "department", department_rows)
    _check_owners(connection, projects, "project", project_rows)


def _by_id(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[key] for key in sorted(rows)]


class ForeignOrganisation(ValueError):
    """A record names a project or department that belongs to another cluster."""


def _check_owners(
    connection: sa.Connection, table: sa.Table, kind: str, rows: dict[str, dict[str, Any]]
) -> None:
    """A project or department belongs to the cluster that first reported it, as in Run:ai, where
    each is created under one cluster: another cluster's agent cannot put workloads into it (and so
    before its viewers). Checked after the upsert, in the writer's transaction: a concurrent first
    report of the same id by two clusters is decided by whichever upsert took the row first."""
    by_cluster: dict[str, list[str]] = {}
    for row in rows.values():
        by_cluster.setdefault(row["cluster_id"], []).append(row["id"])
    for cluster_id, ids in by_cluster.items():
        # Rows from before ids were bound (no cluster) are claimed by their first reporter now.
        connection.execute(
            table.update()
            .where(table.c.id.in_(ids), table.c.cluster_id.is_(None))
            .values(cluster_id=cluster_id)
        )
        foreign = connection.execute(
            sa.select(table.c.id, table.c.cluster_id)
            .where(table.c.id.in_(ids), table.c.cluster_id != cluster_id)
            .limit(1)
        ).first()
        if foreign is not None:
            raise ForeignOrganisation(
                f"{kind} {foreign.id!r} belongs to cluster {foreign.cluster_id}, not to {cluster_id}: "
                f"a {kind} belongs to one cluster"
            )


def nodepool_rows(workload_id: str, pools: list[str]) -> list[dict[str, Any]]:
    return [{"workload_id": workload_id, "position": i, "name": p} for i, p in enumerate(pools)]


def create_workloads(
    connection: sa.Connection,
    records: list[WorkloadIn],
    *,
    catalog: CatalogSnapshot,
    tenant_id: int,
    now_ms: int,
) -> list[str]:
    """Insert new workloads in one batch; each one's phase clock starts at ``phaseUpdatedAt``
    (or ``createdAt``). Returns their ids, in order."""
    rows: list[dict[str, Any]] = []
    pools: list[dict[str, Any]] = []
    for record in records:
        check_record(record, catalog)
        workload_id = str(record.id or uuid.uuid4())
        new = transition(record, None, now_ms)
        rows.append(
            build_row(
                record,
                workload_id=workload_id,
                tenant_id=tenant_id,
                clock=new.clock,
                updated_at_ms=to_ms(record.updated_at) if record.updated_at else now_ms,
                deleted_at_ms=None,
                completed_at_ms=new.completed_at_ms,
            )
        )
        pools.extend(nodepool_rows(workload_id, record.current_node_pools))
    if not rows:
        return []
    upsert_organisation(connection, records)
    # One statement per table for the whole batch (see ``insert_rows``): on PostgreSQL the
    # statement-level triggers that keep the live counts then run once per batch, not once per row.
    insert_rows(connection, workloads, rows)
    insert_rows(connection, workload_nodepools, pools)
    return [r["id"] for r in rows]


def phase_facts(connection: sa.Connection, workload_id: str) -> tuple[Previous, int | None]:
    """The stored phase facts of a workload, and when it was deleted (None: live)."""
    row = connection.execute(
        sa.select(
            w.phase,
            w.phase_updated_at,
            w.pending_closed_ms,
            w.pending_since_ms,
            w.running_closed_ms,
            w.running_since_ms,
            w.completed_at,
            w.deleted_at,
        ).where(w.id == workload_id)
    ).first()
    if row is None:
        raise WorkloadNotFound(workload_id)
    clock = PhaseClock(
        row.pending_closed_ms, row.pending_since_ms, row.running_closed_ms, row.running_since_ms
    )
    return Previous(row.phase, row.phase_updated_at, clock, row.completed_at), row.deleted_at


def mark_deleted(connection: sa.Connection, where: sa.ColumnElement[bool], *, deleted_at_ms: int) -> int:
    """Mark the live workloads matching ``where`` deleted at ``deleted_at_ms``: each keeps its last
    phase, its clock stops, ``deletedAt`` is set. Returns how many there were."""
    rows = connection.execute(
        sa.select(
            w.id, w.doc, w.pending_closed_ms, w.pending_since_ms, w.running_closed_ms, w.running_since_ms
        ).where(w.deleted_at.is_(None), where)
    ).all()
    updates = []
    for r in rows:
        clock = PhaseClock(
            r.pending_closed_ms, r.pending_since_ms, r.running_closed_ms, r.running_since_ms
        ).stop(deleted_at_ms)
        updates.append(
            {
                "b_id": r.id,
                "v_pending_closed_ms": clock.pending_closed_ms,
                "v_pending_since_ms": clock.pending_since_ms,
                "v_running_closed_ms": clock.running_closed_ms,
                "v_running_since_ms": clock.running_since_ms,
                "v_doc": set_doc_fields(r.doc, deletedAt=deleted_at_ms, updatedAt=deleted_at_ms),
            }
        )
    if updates:
        statement = (
            workloads.update()
            .where(w.id == sa.bindparam("b_id"))
            .values(
                {
                    **{k[2:]: sa.bindparam(k) for k in updates[0] if k != "b_id"},
                    "deleted_at": deleted_at_ms,
                    "updated_at": deleted_at_ms,
                }
            )
        )
        connection.execute(statement, updates)
    return len(updates)


def delete_workload(connection: sa.Connection, workload_id: str, *, deleted_at_ms: int) -> None:
    """Mark one workload deleted (see ``mark_deleted``); deleting it again changes nothing."""
    if not mark_deleted(connection, w.id == workload_id, deleted_at_ms=deleted_at_ms):
        phase_facts(connection, workload_id)  # raises WorkloadNotFound for an unknown id


def purge_deleted(connection: sa.Connection, *, older_than_ms: int) -> int:
    """Remove workloads deleted before ``older_than_ms`` (the retention period has passed)."""
    result = connection.execute(workloads.delete().where(w.deleted_at < older_than_ms))
    return int(result.rowcount or 0)


# --- reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]  # rows of RENDER_COLUMNS, as ``domain.record.render`` reads them
    has_more: bool


def _where(
    connection: sa.Connection, query: WorkloadQuery, compiler: Compiler
) -> list[sa.ColumnElement[bool]]:
    """The compiled selection, plus — where a selective substring allows — a list of candidate rows
    from a text index asked before the query (``SqlDialect.narrowing``: SQLite's FTS5 table); the
    compiled predicates still decide every row.

    The caller's scopes are among the compiled predicates, not part of the index look-up: the
    candidates are found tenant-wide (at most a few thousand of them, else no narrowing) and the
    scope clause then keeps those the caller may see. So narrowing never widens what a scoped caller
    gets, and a needle common elsewhere but rare in the caller's projects falls back to the plain
    predicate over the scope's rows (the project/department indexes), never to a wrong answer."""
    return [*compiler.where(query), *_narrowing(connection, query, compiler)]


def _narrowing(
    connection: sa.Connection, query: WorkloadQuery, compiler: Compiler
) -> list[sa.ColumnElement[bool]]:
    """The candidate rows from a text index that ``_where`` adds (none, or one clause)."""
    lookups: list[tuple[TextColumn, str]] = [
        ("name", fold(t.text)) for t in query.terms if t.field.name == "name" and t.op in SUBSTRING_OPERATORS
    ]
    # A search word also matches the category and the phase, which the text index does not hold: the
    # index can narrow a word only when it is in no category's and no phase's name.
    names = [fold(c.name) for c in CATEGORIES] + [fold(p.value) for p in Phase]
    lookups += [("search_text", word) for word in query.words if not any(word in n for n in names)]
    narrowing = compiler.dialect.narrowing(connection, lookups)
    return [] if narrowing is None else [narrowing]


# The most distinct values a substring term is turned into (``few_values``).
FEW_VALUES = 1000


def few_values(connection: sa.Connection, query: WorkloadQuery) -> dict[str, list[str]]:
    """Every value that rows may have in the text columns of few values that the query's substring
    terms name (``Compiler``'s ``values``): for a column the live-count rollup holds, its rows' values
    (live rows only: nothing for ``deleted=true``); for a sparse indexed column, the distinct values
    its index holds, one index probe each, unless there are more than ``FEW_VALUES``."""
    out: dict[str, list[str]] = {}
    for term in query.terms:
        column = term.field.column
        if column is None or term.op not in SUBSTRING_OPERATORS or column in out:
            continue
        if term.field.countable and not query.deleted:
            out[column] = list(connection.execute(sa.select(workload_counts.c[column]).distinct()).scalars())
        elif column in SPARSE_INDEXED:
            values = _distinct_values(connection, w[column], FEW_VALUES)
            if values is not None:
                out[column] = values
    return out


def _distinct_values(connection: sa.Connection, column: sa.Column[Any], most: int) -> list[str] | None:
    """The distinct non-NULL values of an indexed ``column`` in order, by a walk that asks its
    index for the next value after each one (neither database skips through an index by itself);
    None when there are more than ``most``."""
    first = sa.select(sa.func.min(column)).where(column.is_not(None)).scalar_subquery()
    walk = sa.select(first.label("v")).cte("walk", recursive=True)
    after = sa.select(column).where(column > walk.c.v).order_by(column).limit(1).scalar_subquery()
    walk = walk.union_all(sa.select(after).where(walk.c.v.is_not(None)))
    statement = sa.select(walk.c.v).where(walk.c.v.is_not(None)).limit(most + 1)
    values = list(connection.execute(statement).scalars())
    return values if len(values) <= most else None


def list_workloads(
    connection: sa.Connection,
    query: WorkloadQuery,
    *,
    sort: Sort,
    offset: int,
    limit: int,
    catalog: CatalogSnapshot,
    now_ms: int,
) -> Page:
    dialect = dialect_of(connection)
    # What the plans ask of the live-count rollup, once per request (``ordering.Rollup``).
    asked = Asked()
    compiler = Compiler(
        catalog,
        now_ms,
        dialect,
        values=few_values(connection, query),
        scope_unindexed=_broad_scope(connection, query, sort, dialect, asked, need=offset + limit + 1),
    )
    narrowing = _narrowing(connection, query, compiler)
    split = _clock_split(query)
    if split is not None and offset + limit + 1 <= CLOCK_MERGE_MOST:
        return _split_page(
            connection, query, compiler, narrowing, split, sort, asked, offset=offset, limit=limit
        )
    found = _page_ids(connection, query, compiler, narrowing, sort, asked, offset=offset, limit=limit)
    if isinstance(found, Among):
        parts = [found.select()] if found.ids else []
        return _ordered_page(connection, parts, compiler, sort, offset=offset, limit=limit).page
    ids, has_more = found
    if not ids:
        return Page([], has_more)
    by_id = {r.id: r for r in connection.execute(sa.select(*RENDER_COLUMNS).where(w.id.in_(ids)))}
    return Page([by_id[i] for i in ids if i in by_id], has_more)


def _broad_scope(
    connection: sa.Connection,
    query: WorkloadQuery,
    sort: Sort,
    dialect: SqlDialect,
    asked: Asked,
    *,
    need: int,
) -> bool:
    """Whether a caller's scope holds so many of the live rows that a page in ``sort``'s order is
    better read along that order's index, the scope checked on each row, than by the scope's own
    index and a sort (``ordering.dense``, as for a sort's parts). SQLite, which keeps no statistics,
    takes an equality on an indexed column as selective whatever it holds: a project viewer's first
    page by name was its project's 15,000 rows read and sorted (20 ms at 100,000 workloads). Not in
    the creation order, which the scopes' own indexes hold (``(project_id, created_at, id)``): there
    they are the walk. Nor in another time's order: a scope's rows gather in time (a project's
    workloads are those of its life), so the walk may pass most other rows before it reaches them (a
    viewer's ``completedAt`` desc 41 -> 69 ms). Asked only where the dialect can rule an index out
    (PostgreSQL chooses by its statistics), and for live rows (the rollup counts those). The live
    total it reads on the way is kept in ``asked`` for the plans that weigh it."""
    spec = FIELDS.get(sort.field)
    if query.scope.tenant or query.deleted or spec is None or spec.kind is Kind.TIME:
        return False
    if not dialect.rules_out_indexes:
        return False
    inside = scope_rows(connection, query, asked)
    return dense(inside, asked.live_total or 0, need, _scoped_walk_cost(query, spec.column, dialect))


def _scoped_walk_cost(query: WorkloadQuery, column: str | None, dialect: SqlDialect) -> float:
    """What a scoped walk along ``column``'s index costs a row visited, in rows of the scope looked
    up by its own index and sorted (``ordering.dense``). Where that index holds the scopes' columns
    (``LIVE_SCOPE_HELD``) and nothing else is asked, the walk reads index entries alone while the
    look-up reads each of its rows from the table for the sort key: no dearer than one of those (at
    1,000,000 on SQLite, about a tenth). Otherwise the walk reads each row it visits from the table
    (``SqlDialect.walk_cost``)."""
    if column in LIVE_SCOPE_HELD and not query.terms and not query.words:
        return 1.0
    return dialect.walk_cost


def _clock_split(query: WorkloadQuery) -> str | None:
    """The clock field that a term of the query names (the first such), if any: its selection is
    then read as three, one per ``Compiler.clock_streams`` set, each by that set's index."""
    for term in query.terms:
        if term.field.name in CLOCK_FIELDS:
            return term.field.name
    return None


@dataclass(frozen=True, slots=True)
class Among:
    """Ids among which the first rows of a selection are, in no order: the page is theirs in the
    plain ``ORDER BY`` (``_ordered_page``)."""

    ids: list[str]

    def select(self) -> sa.Select[Any]:
        return sa.select(w.id).where(w.id.in_(self.ids))


# The page's rows in ``_ordered_page``, looked up by id beside the same table's rows that order them
# (made once: an alias builds its columns when first asked).
_PAGE_ROWS = workloads.alias("page")
_PAGE_COLUMNS = tuple(_PAGE_ROWS.c[c.name] for c in RENDER_COLUMNS)


@dataclass(frozen=True, slots=True)
class Ordered:
    """A page statement's rows, and how many ids each counted part gave (``_ordered_page``)."""

    page: Page
    given: dict[int, int]


def _ordered_page(
    connection: sa.Connection,
    parts: list[sa.Select[Any]],
    compiler: Compiler,
    sort: Sort,
    *,
    offset: int,
    limit: int,
    counted: Sequence[int] = (),
) -> Ordered:
    """The page of the rows that ``parts`` (selects of the id column, each ordered and limited or a
    list of ids, of disjoint rows) select together, in the plain ``ORDER BY`` (whatever found them,
    the same order as without them), with the page's rows, in one statement: the parts' rows in that
    order, paged. ``counted``: the parts (by position) whose number of ids the caller needs: then
    the ids are numbered in that order with those numbers beside them, and the rows of the ids
    numbered inside the page are looked up by id. The numbers are known only where the page has a
    row (a part whose ids reach past the offset puts one on it)."""
    if not parts:
        return Ordered(Page([], False), {})
    tagged = []
    for number, part in enumerate(parts):
        ids = part.subquery()
        tagged.append(sa.select(ids.c.id, sa.literal(number).label("part")))
    found = (sa.union_all(*tagged) if len(tagged) > 1 else tagged[0]).subquery("found")
    among = found.join(workloads, workloads.c.id == found.c.id)
    if not counted:
        # The rows themselves in that order (a sort that keeps the first ``offset + limit + 1``).
        page = sa.select(*RENDER_COLUMNS).select_from(among).order_by(*compiler.order_by(sort))
        got = connection.execute(page.offset(offset).limit(limit + 1)).all()
        return Ordered(Page(list(got[:limit]), len(got) > limit), {})
    # Numbered, with the counts asked beside (a window over all of them), then the page's rows
    # looked up by id.
    sizes = [
        sa.func.sum(sa.case((found.c.part == number, 1), else_=0)).over().label(f"given{number}")
        for number in counted
    ]
    ranked = (
        sa.select(found.c.id, sa.func.row_number().over(order_by=compiler.order_by(sort)).label("n"), *sizes)
        .select_from(among)
        .subquery("ranked")
    )
    statement = (
        sa.select(*_PAGE_COLUMNS, *(ranked.c[s.name] for s in sizes))
        .select_from(ranked.join(_PAGE_ROWS, _PAGE_ROWS.c.id == ranked.c.id))
        .where(ranked.c.n > offset, ranked.c.n <= offset + limit + 1)
        .order_by(ranked.c.n)
    )
    got = connection.execute(statement).all()
    given = {number: int(got[0]._mapping[f"given{number}"]) for number in counted} if got else {}
    return Ordered(Page(list(got[:limit]), len(got) > limit), given)


def _split_page(
    connection: sa.Connection,
    query: WorkloadQuery,
    compiler: Compiler,
    narrowing: list[sa.ColumnElement[bool]],
    split: str,
    sort: Sort,
    asked: Asked,
    *,
    offset: int,
    limit: int,
) -> Page:
    """The page of a query with a term on the clock field ``split``: its rows are those of three
    sets, each of which its own index answers (``Compiler.clock_streams``), and the page is among
    the first ``offset + limit + 1`` rows of each. Each set is read by the plan that ``_page_ids``
    would choose for it alone, but the plans are decided together (every set's range counts in one
    statement, ``ranged_walks``; the walk's edge once), and the sets' walks or sorts, their merge
    and the page's rows are one statement (``_ordered_page``): four statements in the creation
    order, one in another, where each set took two and the merge and the rows two more."""
    want = offset + limit + 1
    # The three sets' plans weigh the same live total and walk to the same edge: asked once.
    shared = Rollup(connection, query, compiler, asked)
    views = [shared.with_compiler(compiler.varied(streams={split: stream})) for stream in range(3)]
    parts: dict[int, sa.Select[Any]] = {}
    statements: dict[int, sa.Select[Any]] = {}
    walked: list[int] = []
    looked_up: list[int] = []
    for number, view in enumerate(views):
        part = view.compiler
        statement = statements[number] = sa.select(w.id).where(*part.where(query), *narrowing)
        # Each set's plan as ``_page_ids`` chooses it for ``want`` rows (and one more).
        first = _first_plan(connection, statement, view, sort, need=want + 1, clock_merge=True)
        few, ids = first.few, first.among
        if first.parts is not None:
            ids, _more = page_by_parts(connection, statement, first.parts, offset=0, limit=want)
        if ids is not None and len(ids) > 3 * (want + 1):
            # Many candidates (a sort by the other clock field: its three sets within this one): this
            # set's first rows alone, so that the page statement's list of ids stays short.
            among = Among(ids).select().order_by(*compiler.order_by(sort))
            ids, _more = page_ids(connection, among, offset=0, limit=want)
        if ids is not None:
            if ids:
                parts[number] = Among(ids).select()
            continue
        if few:
            looked_up.append(number)
        else:
            walked.append(number)
    walks: dict[int, Walk | None] = dict.fromkeys(looked_up)
    walks.update(zip(walked, ranged_walks([views[n] for n in walked], sort, need=want + 1), strict=True))
    sorted_parts: dict[int, sa.Select[Any]] = {}
    counted: list[int] = []
    for number, walk in walks.items():
        part = views[number].compiler
        if walk is not None and walk.empty:
            continue
        # A small selection, or (a range's) one the walk may not reach: found by the terms'
        # indexes, then sorted.
        order = part.order_by(sort, unindexed=number in looked_up, unordered=walk is not None)
        statement = statements[number]
        if terms_lead(views[number], few=number in looked_up, walk=walk, need=want + 1):
            statement = sa.select(w.id).where(*part.varied(scope_unindexed=True).where(query), *narrowing)
        sorted_parts[number] = statement.order_by(*order).limit(want)
        if walk is None or walk.bound is None:
            parts[number] = sorted_parts[number]
            continue
        # The same selection with its ranges off their indexes, along the order's index, one row
        # more than needed: a row after the set's first ``want`` inside the bound means every row
        # before it is inside too.
        along = _along(query, part, narrowing, walk.bound)
        parts[number] = along.order_by(*part.order_by(sort)).limit(want + 1)
        if not walk.whole:
            counted.append(number)
    numbers = sorted(parts)
    ordered = _ordered_page(
        connection,
        [parts[n] for n in numbers],
        compiler,
        sort,
        offset=offset,
        limit=limit,
        counted=[numbers.index(n) for n in counted],
    )
    short = [n for n in counted if ordered.given.get(numbers.index(n), 0) <= want]
    if not short:
        return ordered.page
    # A set whose walk did not reach its first rows: those are away from that end, found by its
    # terms' indexes and sorted (asked again with the others).
    parts.update((n, sorted_parts[n]) for n in short)
    return _ordered_page(
        connection, [parts[n] for n in numbers], compiler, sort, offset=offset, limit=limit
    ).page


@dataclass(frozen=True, slots=True)
class _FirstPlan:
    """The plans weighed before any walk or range (``_first_plan``), in this order: ``few``, so few
    rows match that they are looked up by the terms' indexes and sorted whatever the order; else
    ``among``, for a clock field's order, the ids among which the first rows are
    (``ordering.clock_candidates``); else ``parts``, for an order no index gives, the parts that one
    does, walked one after another (``ordering.parts_for``). None of these: the order's own index."""

    few: bool
    among: list[str] | None = None
    parts: list[Part] | None = None


def _first_plan(
    connection: sa.Connection,
    statement: sa.Select[Any],
    rollup: Rollup,
    sort: Sort,
    *,
    need: int,
    clock_merge: bool,
) -> _FirstPlan:
    """``_FirstPlan`` for the first ``need`` rows of ``statement`` (a select of the id column) in
    ``sort``'s order; ``clock_merge``: whether a clock field's order may be answered by its
    candidates (not past ``CLOCK_MERGE_MOST`` rows). One place for ``_page_ids`` and for each of a
    clock term's sets in ``_split_page``."""
    if few_matches(rollup, need=need):
        return _FirstPlan(few=True)
    if clock_merge and sort.field in CLOCK_FIELDS:
        return _FirstPlan(
            False, among=clock_candidates(connection, statement, rollup.compiler, sort, need=need)
        )
    return _FirstPlan(False, parts=parts_for(rollup, sort, need=need))


def _page_ids(
    connection: sa.Connection,
    query: WorkloadQuery,
    compiler: Compiler,
    narrowing: list[sa.ColumnElement[bool]],
    sort: Sort,
    asked: Asked,
    *,
    offset: int,
    limit: int,
) -> tuple[list[str], bool] | Among:
    """The ids of the page (``paging.page_ids``), by the plan that suits the query and the order;
    or, for a sort by a clock field, the ids among which the page is (``Among``)."""
    # Page through ids first (an index-only walk where an index covers the order), then fetch the
    # page's rows: deep offsets then skip index entries, not documents.
    statement = sa.select(w.id).where(*compiler.where(query), *narrowing)
    need = offset + limit + 1
    rollup = Rollup(connection, query, compiler, asked)
    first = _first_plan(connection, statement, rollup, sort, need=need, clock_merge=need <= CLOCK_MERGE_MOST)
    if first.among is not None:
        return Among(first.among)
    if first.parts is not None:
        return page_by_parts(connection, statement, first.parts, offset=offset, limit=limit)
    few = first.few
    days = None if few else completed_days(connection, query, sort, need=need)
    if days is not None:
        descending = sort.order is SortOrder.DESC
        return page_by_days(
            connection,
            COMPLETED_DAYS,
            query.terms,
            compiler.dialect,
            days,
            descending=descending,
            offset=offset,
            limit=limit,
        )
    walk = None if few else ranged_walk(rollup, sort, need=need)
    if walk is not None and walk.empty:
        return [], False
    if walk is not None and walk.bound is not None:
        along = _along(query, compiler, narrowing, walk.bound).order_by(*compiler.order_by(sort))
        ids, has_more = page_ids(connection, along, offset=offset, limit=limit)
        # A row after the page inside the bound: every row before it is inside too.
        if walk.whole or has_more:
            return ids, has_more
    if compiler.scope_unindexed and not few and walk is None:
        # A broad scope along the order's index, as far as its rows' spread says; past that, its first
        # rows are found by the scope's own index and sorted.
        walked = _bounded_walk(rollup, narrowing, sort, offset=offset, limit=limit)
        if walked is not None:
            return walked
        statement = sa.select(w.id).where(*compiler.varied(scope_unindexed=False).where(query), *narrowing)
    elif terms_lead(rollup, few=few, walk=walk, need=need):
        statement = sa.select(w.id).where(*compiler.varied(scope_unindexed=True).where(query), *narrowing)
    # A small selection, or (a range's) one the walk did not reach: found by the terms' indexes,
    # then sorted.
    unindexed = few and not _held_in_creation_order(query, sort)
    unordered = walk is not None or _gathered_in_time(connection, query, sort, compiler.dialect, asked)
    order = compiler.order_by(sort, unindexed=unindexed, unordered=unordered)
    return page_ids(connection, statement.order_by(*order), offset=offset, limit=limit)


# The most live rows a scope may hold for a page in another time's order to be read by looking them
# up and sorting them (``_gathered_in_time``): about 45 ms on PostgreSQL at a million workloads.
GATHERED_LOOKUP_MOST = 50_000


def _gathered_in_time(
    connection: sa.Connection, query: WorkloadQuery, sort: Sort, dialect: SqlDialect, asked: Asked
) -> bool:
    """Whether a scoped page in the order of a time that the scope's index is not ordered by (not the
    creation time; the others that reach this plan are read by parts) is read by looking the scope's
    rows up and sorting them, the order kept off its index (``SqlDialect.unordered``). A scope's rows
    gather in time (a project's workloads are those of its life) where PostgreSQL's statistics take
    them as spread along the order: a project viewer's page by phaseUpdatedAt at a million workloads
    walked the time's index from its start through half the table (0.35-0.58 s) where the project's
    15,000 rows looked up and sorted take 12-13 ms. Not for a scope of more than
    ``GATHERED_LOOKUP_MOST`` rows (a department's 220,000: 0.38 s to sort). SQLite keeps such a scope
    on its own index already (``_broad_scope``)."""
    spec = FIELDS.get(sort.field)
    if query.scope.tenant or query.deleted or spec is None or spec.kind is not Kind.TIME:
        return False
    if sort.field == "createdAt" or dialect.rules_out_indexes:
        return False
    return scope_rows(connection, query, asked) <= GATHERED_LOOKUP_MOST


# A broad scope's walk along an order's index (``_bounded_walk``) visits at most this many times the
# rows that an even spread of the scope's rows would need; past that, the scope's own index is asked.
WALK_SLACK = 4


def _bounded_walk(
    rollup: Rollup, narrowing: list[sa.ColumnElement[bool]], sort: Sort, *, offset: int, limit: int
) -> tuple[list[str], bool] | None:
    """The page of a broad scope (``_broad_scope``) along ``sort``'s own index, the scope checked on
    each row, no further than ``WALK_SLACK`` times the live rows that an even spread of the scope's
    rows would take; None where that walk does not fill the page. A scope's rows may gather at one
    end of an order (a project's names sharing a prefix, its few submitters), and an unbounded walk
    would then pass every other row first. The bound is the order's value that far along its index
    over the live rows (ties on it included, as ``ranged_walk``'s), found by an index probe."""
    connection, query, compiler = rollup.connection, rollup.query, rollup.compiler
    need = offset + limit + 1
    total = rollup.live_total()
    visits = WALK_SLACK * -(-need * total // max(scope_rows(connection, query, rollup.asked), 1))
    key, order = compiler.sort_key(sort.field), compiler.order_by(sort)
    bound: list[sa.ColumnElement[bool]] = []
    if visits < total:
        # The page's own order on the key alone (rows without a value last), over the live rows.
        probe = sa.select(key).where(w.deleted_at.is_(None)).order_by(order[0])
        edge = connection.execute(probe.offset(visits - 1).limit(1)).first()
        if edge is not None and edge[0] is not None:
            bound.append(key >= edge[0] if sort.order is SortOrder.DESC else key <= edge[0])
    statement = sa.select(w.id).where(*compiler.where(query), *narrowing, *bound)
    ids, has_more = page_ids(connection, statement.order_by(*order), offset=offset, limit=limit)
    # A row after the page inside the bound: every row before it is inside too.
    return (ids, has_more) if has_more or not bound else None


def _held_in_creation_order(query: WorkloadQuery, sort: Sort) -> bool:
    """Whether a page of few live rows in the creation order is better walked along its terms' own
    index than looked up by it and sorted: every term is an equality on a column whose live rows'
    index is ``(column, created_at, id)``, as a scope's are, so whichever of them the planner takes
    gives the rows in that order, and the walk stops at the page, never reading more of the index
    than the look-up (a project viewer's ``phase==Pending``: the page's 51 rows within the first
    2,000 entries of the status's or the project's index, against all of them read and sorted)."""
    return (
        sort.field == "createdAt"
        and not query.deleted
        and bool(query.terms)
        and all(t.op == "==" and t.field.column in LIVE_TEXT_INDEXED for t in query.terms)
    )


def _along(
    query: WorkloadQuery,
    compiler: Compiler,
    narrowing: list[sa.ColumnElement[bool]],
    bound: sa.ColumnElement[bool],
) -> sa.Select[Any]:
    """The selection inside a walk's ``bound`` with its ranges off their indexes (``ranged_walk``),
    to be read along the order's index."""
    walker = compiler.varied(ranges_unindexed=True)
    return sa.select(w.id).where(*walker.where(query), *narrowing, bound)


def count_from_aggregate(
    connection: sa.Connection, query: WorkloadQuery, *, catalog: CatalogSnapshot, now_ms: int
) -> int:
    """Count live workloads by summing the trigger-maintained ``workload_counts`` rows that satisfy
    the terms: the same compiled predicates, over a table with the same column names."""
    compiler = Compiler(catalog, now_ms, dialect_of(connection), table=workload_counts)
    total = sa.func.coalesce(sa.func.sum(workload_counts.c.n), 0)
    # The rollup keeps cluster, department and project apart, so the caller's scopes apply to it as
    # they do to the workloads themselves.
    statement = sa.select(total).where(
        restrict(workload_counts, query.scope), *(compiler.term(t) for t in query.terms)
    )
    return int(connection.execute(statement).scalar_one())


def count_in_pool(
    connection: sa.Connection, query: WorkloadQuery, *, catalog: CatalogSnapshot, now_ms: int
) -> int | None:
    """The count of live workloads in one node pool (``nodepool==``, or a ``=@ =^ =$`` that only one
    pool's name satisfies), from the per-pool rollup, where its other terms are on what that rollup
    holds; None otherwise. A workload is counted once in each pool it uses, so one pool's rows count
    each of its workloads once (with two pools matching, one using both would be counted twice)."""
    pools = [t for t in query.terms if t.field.name == "nodepool"]
    if query.deleted or query.words or len(pools) != 1:
        return None
    (pool,) = pools
    if pool.op in SUBSTRING_OPERATORS:
        # The live pool names are the rollup's; ``text_matches`` is the predicate in Python.
        names = workload_pool_counts.c.nodepool
        matching = [
            n
            for n in connection.execute(sa.select(names).distinct()).scalars()
            if text_matches(pool.op, pool.text, n)
        ]
        if len(matching) > 1:
            return None
        if not matching:
            return 0
        query = replace(
            query, terms=[replace(t, op="==", text=matching[0]) if t is pool else t for t in query.terms]
        )
    elif pool.op != "==":
        return None
    if not all(
        t.field.name in ("nodepool", "category")
        or (t.field.countable and t.field.column in POOL_COUNTED_COLUMNS)
        for t in query.terms
    ):
        return None
    compiler = Compiler(catalog, now_ms, dialect_of(connection), table=workload_pool_counts)
    total = sa.func.coalesce(sa.func.sum(workload_pool_counts.c.n), 0)
    statement = sa.select(total).where(
        restrict(workload_pool_counts, query.scope), *(compiler.term(t) for t in query.terms)
    )
    return int(connection.execute(statement).scalar_one())


def count_workloads(
    connection: sa.Connection, query: WorkloadQuery, *, catalog: CatalogSnapshot, now_ms: int
) -> int:
    if not query.deleted and not query.words and all(t.field.countable for t in query.terms):
        return count_from_aggregate(connection, query, catalog=catalog, now_ms=now_ms)
    in_pool = count_in_pool(connection, query, catalog=catalog, now_ms=now_ms)
    if in_pool is not None:
        return in_pool
    dialect, values = dialect_of(connection), few_values(connection, query)
    asked = Asked()

    def counted(streams: dict[str, int]) -> sa.Select[Any]:
        compiler = Compiler(catalog, now_ms, dialect, values=values, streams=streams)
        if ranges_lead(Rollup(connection, query, compiler, asked)):
            compiler = compiler.varied(scope_unindexed=True)
        return sa.select(sa.func.count()).select_from(workloads).where(*_where(connection, query, compiler))

    split = _clock_split(query)
    if split is None:
        return int(connection.execute(counted({})).scalar_one())
    # A term on a clock field: the sum over its three sets of rows, each counted by its own index, in
    # one statement (one round trip; the read transaction's one snapshot keeps a clock that stops
    # meanwhile from being counted in two sets or in none).
    first, second, third = (counted({split: s}).scalar_subquery() for s in range(3))
    return int(connection.execute(sa.select(first + second + third)).scalar_one())


def get_workload(connection: sa.Connection, workload_id: str, *, scope: ScopeSet | None = None) -> Any:
    """The workload, or None when there is none — or none inside ``scope`` (the same answer, so that
    a caller cannot tell a workload outside its scopes from one that does not exist)."""
    statement = sa.select(*RENDER_COLUMNS, w.pending_messages).where(w.id == workload_id)
    if scope is not None:
        statement = statement.where(restrict(workloads, scope))
    return connection.execute(statement).first()
