"""Writing the pods of a sync batch, and reading a workload's pods."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any, Protocol, TypeVar

import orjson
import sqlalchemy as sa

from workplane.domain.pods import PodObservation, pod_completed_ms, pod_document, pod_search_text
from workplane.domain.scopes import ScopeSet
from workplane.domain.timefmt import format_ms, to_ms
from workplane.query.filters import Sort, SortOrder, Term, text_matches
from workplane.query.pods import Completed, PodQuery
from workplane.store import pod_compile as pod_query
from workplane.store.compile import RANGE_OPERATORS, like_pattern
from workplane.store.database import chunked, rows_by_key, update_rows, upsert
from workplane.store.dialects import dialect_of
from workplane.store.ordering import (
    DayIndex,
    Part,
    day_index,
    days_spanned,
    dense,
    page_by_days,
    page_by_merge,
    page_by_parts,
    walk_reach,
)
from workplane.store.paging import page_ids
from workplane.store.rollups import deferred_triggers
from workplane.store.schema import pod_counts, workload_pods, workloads
from workplane.store.scopes import restrict

p = workload_pods.c
_UPDATED = [
    "workload_id",
    "revision",
    "k8s_phase",
    "k8s_phase_updated_at",
    "updated_at",
    "deleted_at",
    "resync_id",
    "document",
    "project_id",
    "department_id",
    "node_name",
    "current_nodepool",
    "completed_at",
    "search_text",
    "revision_id",
]


# What planning a pod's write reads of its stored row where the write does not compare columns.
_PLANNED = ("id", "cluster_id", "revision", "k8s_phase", "k8s_phase_updated_at", "deleted_at")


class PodError(ValueError):
    """A pod or event item that cannot be applied (its workload is not this cluster's): the batch is
    refused."""


class Reported(Protocol):
    id: uuid.UUID
    revision: int


R = TypeVar("R", bound=Reported)


def newest_by_id(items: list[R]) -> dict[str, tuple[int, R]]:
    """Each item's newest observation in the batch (the highest revision), with its index there."""
    latest: dict[str, tuple[int, R]] = {}
    for index, item in enumerate(items):
        key = str(item.id)
        if key not in latest or item.revision > latest[key][1].revision:
            latest[key] = (index, item)
    return latest


@dataclass(frozen=True, slots=True)
class Owner:
    project_id: str
    department_id: str
    name: str


def cluster_workloads(connection: sa.Connection, cluster_id: str, ids: set[str]) -> dict[str, Owner]:
    """Which of ``ids`` are workloads of the cluster, with their projects, departments and names (one
    statement on PostgreSQL, as ``_stored_pods``)."""
    sql = dialect_of(connection)
    rows = sql.select_where_key_in(
        connection,
        "SELECT id, project_id, department_id, name FROM workloads",
        "id",
        sorted(ids),
        (f" AND cluster_id = {sql.marker}", (cluster_id,)),
    )
    return {row[0]: Owner(row[1], row[2], row[3]) for row in rows}


def follow_workloads(connection: sa.Connection, changes: list[tuple[str, dict[str, Any]]]) -> None:
    """A workload that moved to another project or department takes its pods with it: they are
    scoped by the workload's project and department (``ingest`` calls this with the workloads' changed
    columns)."""
    for workload_id, changed in changes:
        moved = {k: changed[k] for k in ("project_id", "department_id") if k in changed}
        if moved:
            connection.execute(workload_pods.update().where(p.workload_id == workload_id).values(**moved))


def apply_pods(
    connection: sa.Connection,
    *,
    cluster_id: str,
    pods: list[PodObservation],
    resync_id: str | None,
    tenant_id: int,
    now_ms: int,
) -> int:
    """Upsert the batch's pods that are newer than the stored ones (the highest revision of each pod in
    the batch wins); the number applied. Runs in the batch's write transaction, after its workloads."""
    latest = newest_by_id(pods)
    if not latest:
        return 0
    owners = cluster_workloads(connection, cluster_id, {str(pod.workload_id) for _, pod in latest.values()})
    stored = _stored_pods(connection, list(latest))
    changes = []
    for key, (index, pod) in latest.items():
        workload_id = str(pod.workload_id)
        owner = owners.get(workload_id)
        if owner is None:
            raise PodError(f"pods[{index}]: workload {workload_id} is not a workload of cluster {cluster_id}")
        before = stored.get(key)
        if before is not None and before["cluster_id"] != cluster_id:
            raise PodError(f"pods[{index}]: pod {key} belongs to another cluster")
        if before is not None and before["revision"] >= pod.revision:
            continue
        phase_at = (
            now_ms
            if before is None or before["k8s_phase"] != pod.k8s_phase
            else before["k8s_phase_updated_at"]
        )
        deleted_at = before["deleted_at"] if before is not None else None
        if deleted_at is None and pod.deleted_at is not None:
            deleted_at = to_ms(pod.deleted_at)
        document = {**pod_document(pod, cluster_id, owner.project_id), "tenantId": tenant_id}
        changes.append(
            {
                "id": key,
                "workload_id": workload_id,
                "cluster_id": cluster_id,
                "revision": pod.revision,
                "created_at": to_ms(pod.created_at),
                "k8s_phase": pod.k8s_phase,
                "k8s_phase_updated_at": phase_at,
                "updated_at": now_ms,
                "deleted_at": deleted_at,
                "resync_id": resync_id,
                "document": orjson.dumps(document).decode(),
                "project_id": owner.project_id,
                "department_id": owner.department_id,
                "node_name": pod.node_name,
                "current_nodepool": pod.current_node_pool,
                "completed_at": pod_completed_ms(pod, phase_at),
                "search_text": pod_search_text(pod, owner.name),
                "revision_id": None if pod.revision_id is None else str(pod.revision_id),
            }
        )
    if changes:
        _write_pods(connection, changes, stored)
    if resync_id is not None:
        written = {c["id"] for c in changes}
        seen = [key for key in latest if key not in written]
        for part in chunked(seen):
            connection.execute(workload_pods.update().where(p.id.in_(part)).values(resync_id=resync_id))
    return len(changes)


def _stored_pods(connection: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored rows of these pods: where an update writes only the columns that changed
    (``_write_pods``), every column but the document; elsewhere the few the plan reads (PostgreSQL
    gains nothing from the others, and the two runs of the agent's benchmark that read them all had
    a slower steady state, p50 2.2–2.8 s against 0.6–0.8: not shown to be the cause). Read as the
    dialect reads keys (``rows_by_key``): on PostgreSQL one statement with the ids as one array, where
    an ``IN`` list per 500 ids was twenty statements, each planned anew, for a batch of 10,000 pods."""
    if dialect_of(connection).updates_follow_set_list:
        unread: tuple[str, ...] = ("document",)
    else:
        unread = tuple(c.name for c in workload_pods.columns if c.name not in _PLANNED)
    return {row["id"]: row for row in rows_by_key(connection, workload_pods, ids, without=unread)}


def _write_pods(connection: sa.Connection, changes: list[dict[str, Any]], stored: dict[str, Any]) -> None:
    """Write the changed pods. Where an UPDATE maintains every index and runs every trigger that
    names a column in SET, changed or not (SQLite: the counters' on ``deleted_at`` and the scopes, the
    text index's on ``search_text``; ``updates_follow_set_list``), the stored pods are updated in
    groups by the columns that changed, so that a pod that only changed phase does not rewrite its
    entries in all fourteen indexes; the document, in no index, is written with every change. Every
    other pod is upserted whole: on PostgreSQL, which compares the values itself, that also keeps
    two sync workers' batches of one cluster from leaving a row half one report, half the other."""
    # In the order of the primary key: each row then lands next to the last one in the key's index
    # instead of on a page of its own (a fifth of the upsert's CPU time at 100,000 pods on SQLite).
    changes.sort(key=itemgetter("id"))
    sql = dialect_of(connection)
    whole: list[dict[str, Any]] = []
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in changes:
        before = stored.get(row["id"])
        if before is None or not sql.updates_follow_set_list:
            whole.append(row)
            continue
        changed = tuple(c for c in _UPDATED if c == "document" or row[c] != before[c])
        groups.setdefault(changed, []).append({"id": row["id"], **{c: row[c] for c in changed}})
    with deferred_triggers(connection):
        for rows in groups.values():
            update_rows(connection, workload_pods, rows)
        if whole:
            # The new pods go in the text index in one statement after the upsert, not one trigger
            # run each (migration 0018); a pod whose text changed is re-indexed by its update trigger.
            before_insert = sql.last_rowid(connection, workload_pods)
            upsert(connection, workload_pods, whole, _UPDATED)
            sql.index_rows_after(connection, workload_pods, before_insert)


def delete_unseen_pods(connection: sa.Connection, cluster_id: str, resync_id: str, now_ms: int) -> None:
    """End of a full resync: live pods of the cluster that no batch of it reported are gone."""
    unseen = sa.or_(p.resync_id.is_(None), p.resync_id != resync_id)
    connection.execute(
        workload_pods.update()
        .where(p.cluster_id == cluster_id, p.deleted_at.is_(None), unseen)
        .values(deleted_at=now_ms, updated_at=now_ms)
    )


@dataclass(frozen=True, slots=True)
class PodsPage:
    pods: list[str]  # each a served record's JSON text
    has_more: bool


def workload_pods_page(
    connection: sa.Connection,
    workload_id: str,
    *,
    deleted: bool | None,
    offset: int,
    limit: int,
    words: list[str] | None = None,
) -> PodsPage:
    """A workload's pods in creation order (live ones; ``deleted=True``: the deleted ones), with every
    one of ``words`` in their search text when given. Read along ``ix_workload_pods_workload``, the
    workload's own pods in that order, whatever the statistics say: the liveness term is kept off the
    partial indexes over every live (or deleted) pod (``SqlDialect.unordered``), which a planner
    without statistics took to walk (PostgreSQL before its first ANALYZE: the whole live-pods index
    for each page, 42 ms at 100,000 pods against 0.07 ms)."""
    gone = dialect_of(connection).unordered(p.deleted_at)
    statement = sa.select(*_RENDERED).where(
        p.workload_id == workload_id,
        gone.is_not(None) if deleted else gone.is_(None),
        *pod_query.search_words(words or []),
    )
    rows = connection.execute(statement.order_by(p.created_at, p.id).offset(offset).limit(limit + 1)).all()
    pods = [_render(row) for row in rows[:limit]]
    return PodsPage(pods, len(rows) > limit)


def revision_pods_page(
    connection: sa.Connection,
    revision_id: str,
    *,
    scope: ScopeSet,
    deleted: bool | None,
    offset: int,
    limit: int,
) -> PodsPage | None:
    """A workload revision's pods inside ``scope``, in creation order (live ones; ``deleted=True``: the
    deleted ones). None when no pod of the revision, live or deleted, is inside ``scope``: a revision is
    known by its pods, and one outside the caller's scopes does not exist for it (the same answer)."""
    mine = (p.revision_id == revision_id, restrict(workload_pods, scope))
    live = p.deleted_at.is_(None)
    statement = sa.select(*_RENDERED).where(*mine, p.deleted_at.is_not(None) if deleted else live)
    rows = connection.execute(statement.order_by(p.created_at, p.id).offset(offset).limit(limit + 1)).all()
    if not rows and not any(
        # Live and deleted asked apart: each is a look-up on its own partial index (0017, 0019).
        connection.execute(sa.select(p.id).where(*mine, kind).limit(1)).first()
        for kind in (live, p.deleted_at.is_not(None))
    ):
        return None
    return PodsPage([_render(row) for row in rows[:limit]], len(rows) > limit)


# Text fields with few distinct values among live pods (clusters, nodes, node pools), each the first
# column of a live pods' index (migration 0013).
_FEW_VALUES: dict[str, sa.Column[Any]] = {
    "clusterId": p.cluster_id,
    "nodeName": p.node_name,
    "currentNodepool": p.current_nodepool,
}
_MOST_VALUES = 2_000  # past this many distinct values, a substring term is left as it is
# Fields a sort may answer in parts (``sort_parts``): each the first column of an index over live pods.
_SORTED_IN_PARTS: dict[str, sa.Column[Any]] = {
    **_FEW_VALUES,
    "revisionId": p.revision_id,
    "completedAt": p.completed_at,
}

# The distinct values of a column among live pods, in order: one index seek per value (its live index
# starts with it), not a walk of every live pod. {column} is one of ``_FEW_VALUES``.
_DISTINCT_LIVE = (
    "WITH RECURSIVE v(x) AS ("
    "SELECT min({column}) FROM workload_pods WHERE deleted_at IS NULL "
    "UNION ALL "
    "SELECT (SELECT min({column}) FROM workload_pods WHERE deleted_at IS NULL AND {column} > v.x) "
    "FROM v WHERE v.x IS NOT NULL"
    ") SELECT x FROM v WHERE x IS NOT NULL LIMIT :most"
)


def _live_values(
    connection: sa.Connection, column: sa.Column[Any], most: int | None = None
) -> list[str] | None:
    """The distinct values of ``column`` among live pods; None when there are more than ``most``
    (``_MOST_VALUES``)."""
    most = _MOST_VALUES if most is None else most
    distinct = sa.text(_DISTINCT_LIVE.format(column=column.name))
    found = list(connection.execute(distinct, {"most": most + 1}).scalars())
    return None if len(found) > most else found


def _workload_ids(connection: sa.Connection, term: Term) -> list[str] | None:
    """The ids of the workloads that satisfy a substring ``term`` on workloadId (where the dialect
    keeps them, ``SqlDialect.workload_ids``: a fifth of the pods' rows or fewer); None when over
    ``_MOST_VALUES``."""
    matching = dialect_of(connection).workload_ids(like_pattern(term.op, term.text))
    found = list(connection.execute(matching.limit(_MOST_VALUES + 1)).scalars())
    return None if len(found) > _MOST_VALUES else found


@dataclass(frozen=True, slots=True)
class Narrowed:
    """What the look-ups before a query found (``narrowed``)."""

    clauses: list[sa.ColumnElement[bool]]
    # A substring term's field of few values and the live values satisfying it (the fewest, where
    # several terms have some): a page in creation order may be walked one value at a time
    # (``list_pods``).
    split: tuple[sa.Column[Any], list[str]] | None = None
    # The search words phrased for the database's text index (``SqlDialect.live_pod_words``), in place
    # of ``pod_compile.search_words``; None: those.
    words: list[sa.ColumnElement[bool]] | None = None
    # Whether the words' candidates were looked up before the query (``SqlDialect.pod_narrowing``): a
    # list of row ids, which the plan looks up and sorts.
    looked_up: bool = False

    def where(self, query: PodQuery, *, count: bool = False) -> list[sa.ColumnElement[bool]]:
        """The query's predicates (``pod_compile.where``), its words as phrased here, then these
        clauses."""
        return [*pod_query.where(query, count=count, words=self.words), *self.clauses]


def narrowing(connection: sa.Connection, query: PodQuery) -> list[sa.ColumnElement[bool]]:
    """Clauses that only narrow what ``pod_query.where`` selects (``narrowed``; the words are not
    phrased, which on PostgreSQL would read the live phases for nothing)."""
    return narrowed(connection, query, phrased=False).clauses


def narrowed(connection: sa.Connection, query: PodQuery, *, phrased: bool = True) -> Narrowed:
    """Clauses that only narrow what ``pod_query.where`` selects, from look-ups before the query, so
    that no substring is answered by walking every live pod; the compiled predicates still decide
    every row, so no answer changes. The words phrased for the text index too, unless not
    ``phrased`` (``phrase_words``).

    - A substring term (``=@ =^ =$``) on a field with few distinct values (``_FEW_VALUES``), over live
      pods: the values that satisfy it, as an ``IN`` list on the field's live index.
    - A substring term on workloadId: the workloads whose ids satisfy it (a pod's workload is always
      stored), when there are few, as an ``IN`` list on the workload's pods index.
    - Search words: the pods a text index finds them in (``SqlDialect.pod_narrowing``: SQLite's FTS5
      table, when the words are selective; PostgreSQL's planner uses its trigram index itself, on
      the words as ``SqlDialect.live_pod_words`` phrases them for live pods: ``Narrowed.words``).

    Values and candidates are read over the whole tenant; the caller's scopes still apply."""
    clauses: list[sa.ColumnElement[bool]] = []
    split: tuple[sa.Column[Any], list[str]] | None = None
    for term in query.terms:
        if term.op not in pod_query.SUBSTRING:
            continue
        if term.field.name == "workloadId":
            ids = _workload_ids(connection, term)
            if ids is not None:
                clauses.append(p.workload_id.in_(ids) if ids else sa.false())
            continue
        column = _FEW_VALUES.get(term.field.name)
        values = _live_values(connection, column) if column is not None and not query.deleted else None
        if column is not None and values is not None:
            matched = [v for v in values if text_matches(term.op, term.text, v)]
            clauses.append(column.in_(matched) if matched else sa.false())
            if split is None or len(matched) < len(split[1]):
                split = (column, matched)
    found = dialect_of(connection).pod_narrowing(connection, query.words) if query.words else None
    if found is not None:
        clauses.append(found)
    narrow = Narrowed(clauses, split, looked_up=found is not None)
    return phrase_words(connection, query, narrow) if phrased else narrow


def phrase_words(connection: sa.Connection, query: PodQuery, narrow: Narrowed) -> Narrowed:
    """``narrow`` with the query's words over live pods phrased for the database's text index
    (``SqlDialect.live_pod_words``: on PostgreSQL, a look-up of the live phases)."""
    if not query.words or query.deleted:
        return narrow
    return replace(narrow, words=dialect_of(connection).live_pod_words(connection, query.words))


def _live_total(connection: sa.Connection) -> int:
    """The live pods (``pod_counts``): about the rows a walk of the whole id index visits."""
    total = sa.select(sa.func.coalesce(sa.func.sum(pod_counts.c.live), 0))
    return int(connection.execute(total).scalar_one())


# A sort by one of these fields is answered in one part per value where it has at most this many
# distinct live values (a cluster, a node pool: large parts, which the value's index would have to read
# whole and sort); with more (nodes), each value's pods are few, and its index in value order, with
# each value's few pods sorted by id on the way, serves.
_FEW_PARTS = 64


def sort_parts(connection: sa.Connection, query: PodQuery, sort: Sort, *, need: int) -> list[Part] | None:
    """The parts a sort that no index orders is answered from (``store.ordering``, as for workloads),
    or None where the plain ``ORDER BY`` serves. The live indexes on a cluster, node, node pool or
    revision are ordered by (value, createdAt, id), not (value, id), and hold NULLs where the sort
    puts them last only in one direction; completedAt's holds only the pods that have one.

    - A field of few distinct live values (``_FEW_PARTS``: clusters, node pools): one part per value,
      in the sort's order, then the pods without one; each by id. A part as large as an even share of
      the live pods (``ordering.dense``) is walked along the id index with its value kept off its own
      index; a smaller one is looked up by that index and sorted.
    - Any other field that a pod may lack (completedAt, nodeName, revisionId): the pods that have a
      value, along its index, then those without, by id.

    Only for live pods selected by the caller's scope alone: terms and words select a set whose size
    no look-up here tells, and the plain order is left to the planner there."""
    if query.deleted or query.terms or query.words:
        return None
    if sort.field == "completedAt" and query.completed is Completed.TRUE:
        return None  # every selected pod has one: its index gives the order
    descending = sort.order is SortOrder.DESC
    by_id = [p.id.desc() if descending else p.id.asc()]
    column = _SORTED_IN_PARTS.get(sort.field)
    if column is None:
        return None
    values = _live_values(connection, column, _FEW_PARTS) if sort.field in _FEW_VALUES else None
    if values is not None:
        subject: sa.ColumnElement[Any] = column
        dialect = dialect_of(connection)
        if dialect.rules_out_indexes:
            # A planner without statistics (SQLite) is told which parts to walk along the id index.
            # Each part is sized as an even share of the live pods: counting each value's pods would
            # read them. (PostgreSQL chooses by its statistics, and is spared the sum: ``pod_counts``
            # has a row per revision.)
            total = _live_total(connection)
            if dense(total // max(len(values), 1), total, need):
                subject = dialect.unindexed(column)
        parts = [Part(subject == value, by_id) for value in (reversed(values) if descending else values)]
    elif sort.field in pod_query.NOT_NULL:
        return None
    else:
        key = column.desc() if descending else column.asc()
        parts = [Part(column.is_not(None), [key, *by_id])]
    if sort.field not in pod_query.NOT_NULL:
        parts.append(Part(column.is_(None), by_id))
    return parts


# At most this many values of a substring term are walked one at a time (``_merged_parts``).
_MOST_MERGED = 64


def _merged_parts(narrow: Narrowed, sort: Sort) -> list[Part] | None:
    """For a page in creation order of live pods whose substring term on a node, node pool or cluster
    matched a few values (``Narrowed.split``): a part per value, along that value's live index, which is
    ordered by (value, createdAt, id), merged (``ordering.page_by_merge``). The plain plan reads every
    matching pod from the ``IN`` list's index and sorts them all (the 19,000 pods of ten nodes at a
    million pods), or walks the creation-time index past every pod on other nodes; this reads a page's
    worth per value. None where it does not apply: another order, deleted pods (no value look-up),
    one value (its index walk is the plain plan), or too many values."""
    if sort.field != "createdAt" or narrow.split is None:
        return None
    column, values = narrow.split
    if not 1 < len(values) <= _MOST_MERGED:
        return None
    order = [p.created_at.desc(), p.id.desc()] if sort.order is SortOrder.DESC else [p.created_at, p.id]
    return [Part(column == value, order) for value in values]


# Columns with an index of their own (``ix_workload_pods_completed_at``, ``ix_workload_pods_deleted_at``)
# that a range term would be answered by (``_ranged_page``).
_RANGE_INDEXED: dict[str, sa.Column[Any]] = {"completedAt": p.completed_at, "deletedAt": p.deleted_at}


def _table_size(connection: sa.Connection) -> int:
    """About how many pods are stored, as the database estimates it at once (else the live pods): a
    scale for ``_ranged_page``'s choice. Summing ``pod_counts`` (a row per live revision) took 5–60 ms
    at a million pods, more than the rest of that plan."""
    estimated = dialect_of(connection).estimated_rows(connection, workload_pods)
    return _live_total(connection) if estimated is None else estimated


def _reach(connection: sa.Connection, need: int) -> int:
    """How far a walk along the creation-time index may go for a page that needs ``need`` pods
    (``ordering.walk_reach``, the store's size estimated)."""
    return walk_reach(need, _table_size(connection))


# The day indexes of migration 0026 (``ordering.page_by_days``), by the time field a range is on.
_DAY_INDEXES: dict[str, DayIndex] = {
    "completedAt": day_index("ix_workload_pods_completed_day", workload_pods, "completed_at", live=True),
    "deletedAt": day_index("ix_workload_pods_deleted_day", workload_pods, "deleted_at", live=False),
}


def _page_by_days(
    connection: sa.Connection, query: PodQuery, sort: Sort, *, offset: int, limit: int
) -> tuple[list[str], bool] | None:
    """A page in creation order of the live pods with ranges on completedAt, or of the deleted pods
    with ranges on deletedAt, and nothing else (no other term, no words, the whole tenant), read day
    by day along the time's day index (``ordering.days_spanned``, ``page_by_days``), as the
    workloads' completedAt ranges are: the pods completed (deleted) recently were created all along
    the newest end of the creation order, so a walk from its oldest end finds them only there, and
    ``_ranged_page`` looked them up and sorted them (10,000 at a million pods). None where that does
    not apply or the range spans too many days for the page."""
    if sort.field != "createdAt" or query.words or not query.scope.tenant or not query.terms:
        return None
    fields = {t.field.name for t in query.terms}
    index = _DAY_INDEXES.get(fields.pop()) if len(fields) == 1 else None
    if index is None or index.live == query.deleted or not all(t.op in RANGE_OPERATORS for t in query.terms):
        return None
    # A completedAt range selects completed pods only; the deleted pods' index holds no completion.
    if query.completed not in ((Completed.ALL, Completed.TRUE) if index.live else (Completed.ALL,)):
        return None
    days = days_spanned(connection, index, query.terms, need=offset + limit + 1)
    if days is None:
        return None
    descending = sort.order is SortOrder.DESC
    sql = dialect_of(connection)
    return page_by_days(
        connection, index, query.terms, sql, days, descending=descending, offset=offset, limit=limit
    )


def _ranged_page(
    connection: sa.Connection, query: PodQuery, narrow: Narrowed, sort: Sort, *, offset: int, limit: int
) -> tuple[list[str], bool] | None:
    """A page in creation order of a query with a range term (``<=``, ``>=``) on completedAt or
    deletedAt, read as ``ordering.ranged_walk`` reads the workloads': a range whose index holds fewer
    than ``√(need · N)`` pods (counted along it, no further) is looked up by it and sorted; else the
    creation-time index is walked at most that far, the range kept off its own index, and if the page
    is among the pods visited it is the page; if not, the selection lies away from that end (pods
    completed recently, in the oldest-first order: the whole table walked before the first one), and
    is looked up and sorted. None where that does not apply (another order, no such term, a store of
    fewer live pods than the walk may visit)."""
    ranges = [t for t in query.terms if t.op in RANGE_OPERATORS and t.field.name in _RANGE_INDEXED]
    if sort.field != "createdAt" or not ranges:
        return None
    need = offset + limit + 1
    sql = dialect_of(connection)
    reach = _reach(connection, need)
    descending = sort.order is SortOrder.DESC
    looked_up = sa.select(p.id).where(*narrow.where(query))
    key = sql.unordered(p.created_at)
    sorted_order = [key.desc(), p.id.desc()] if descending else [key.asc(), p.id.asc()]
    few = False
    for term in ranges:
        # Its pods along its own index, up to ``reach`` (other terms and liveness aside: an upper bound).
        capped = sa.select(sa.literal(1)).select_from(workload_pods).where(pod_query.term_on(term, {}))
        counted = sa.select(sa.func.count()).select_from(capped.limit(reach).subquery())
        few = few or connection.execute(counted).scalar_one() < reach
    if not few:
        kept = p.deleted_at.is_not(None) if query.deleted else p.deleted_at.is_(None)
        along = p.created_at.desc() if descending else p.created_at.asc()
        edge = connection.execute(
            sa.select(p.created_at).where(kept).order_by(along).offset(reach - 1).limit(1)
        ).scalar()
        if edge is None:
            return None  # fewer live pods than ``reach``: the plain walk is bounded anyway
        off_index = {t.field.name: sql.unindexed(_RANGE_INDEXED[t.field.name]) for t in ranges}
        walked = [
            *narrow.where(replace(query, terms=[t for t in query.terms if t not in ranges])),
            *(pod_query.term_on(t, off_index) for t in ranges),
            p.created_at >= edge if descending else p.created_at <= edge,
        ]
        walk = sa.select(p.id).where(*walked).order_by(*pod_query.order_by(query, sort))
        ids, has_more = page_ids(connection, walk, offset=offset, limit=limit)
        if has_more:
            # A pod after the page inside the bound: every pod before it is inside too.
            return ids, has_more
    return page_ids(connection, looked_up.order_by(*sorted_order), offset=offset, limit=limit)


def _searched_page(
    connection: sa.Connection,
    query: PodQuery,
    narrow: Narrowed,
    plain: sa.Select[Any],
    sort: Sort,
    *,
    offset: int,
    limit: int,
) -> tuple[list[str], bool] | None:
    """A page in creation order of live pods with search words, where the planner would walk the
    creation-time index for ``plain`` (the query's statement in ``sort`` order, as ``list_pods``
    would run it, ``narrow`` its look-ups; ``SqlDialect.reads_in_order``). The planner takes a word's
    pods as spread evenly over that order, and its count of them is a guess from a sample of a
    hundred texts; but the pods of a hundred workloads' names were created together, and at a
    million pods it took the 485 of ``train-1000`` for 9,802 and walked half the table before the
    first (1.45 s); a word of a twentieth of the pods, all of them old, is walked past the other
    nineteen twentieths newest first (SQLite, which has no estimate to go by, walks every word too
    broad for ``pod_narrowing``). So the walk is bounded to the first ``_reach`` live pods along that
    index (the edge found in the same statement); if the page is among them it is the page
    (``succeeded``, a tenth of the pods, fills it in a few hundred rows), and if not, the selection
    lies beyond that edge and is looked up by the text index (``SqlDialect.pod_words_look_up``) and
    sorted, the order kept off the creation-time index (``SqlDialect.unordered``). Where the plan
    looks the pods up by the text index and sorts them, it is left as it is: it reads the word's
    pods once. A word's pods are not counted first, as ``_ranged_page`` counts a range's: a trigram
    index gives them all at once, so even a capped count reads a broad word's whole posting lists
    and rows (73 ms for ``succeeded`` at 200,000 pods, against 7 ms for its page). None where the
    plain statement serves (another order, no words, deleted pods, which no text index holds,
    candidates already looked up, or a plan that sorts)."""
    if sort.field != "createdAt" or not query.words or query.deleted or narrow.looked_up:
        return None
    sql = dialect_of(connection)
    if not sql.reads_in_order(connection, plain.offset(offset).limit(limit + 1)):
        return None
    need = offset + limit + 1
    descending = sort.order is SortOrder.DESC
    along = p.created_at.desc() if descending else p.created_at.asc()
    edge = (
        sa.select(p.created_at)
        .where(p.deleted_at.is_(None))
        .order_by(along)
        .offset(_reach(connection, need) - 1)
        .limit(1)
        .scalar_subquery()
    )
    # Inside the edge, ties on it included: a prefix of the order, so its first pods are the page's.
    # No edge (fewer live pods than the reach): nothing inside, and the look-up below answers.
    bounded = plain.where(p.created_at >= edge if descending else p.created_at <= edge)
    ids, has_more = page_ids(connection, bounded, offset=offset, limit=limit)
    if has_more:
        return ids, has_more
    key = sql.unordered(p.created_at)
    order = [key.desc(), p.id.desc()] if descending else [key.asc(), p.id.asc()]
    looked_up = sql.pod_words_look_up(connection, plain.order_by(None).order_by(*order), query.words)
    # None: no index holds the words (each under three characters, on SQLite), and the walk is the plan.
    return page_ids(connection, plain if looked_up is None else looked_up, offset=offset, limit=limit)


def list_pods(
    connection: sa.Connection, query: PodQuery, *, sort: Sort, offset: int, limit: int, full: bool
) -> PodsPage:
    """A page of the pods that ``query`` selects, in ``sort`` order; ``full`` adds each pod's workload
    and project names (Run:ai's ``verbosity=full``). Paged through ids first (``paging``), in ordered
    parts where no index gives the order (``sort_parts``)."""
    narrow = narrowed(connection, query)
    selected = narrow.where(query)
    parts = sort_parts(connection, query, sort, need=offset + limit + 1)
    merged = _merged_parts(narrow, sort) if dialect_of(connection).merges_value_walks else None
    if parts is not None:
        ids, has_more = page_by_parts(
            connection, sa.select(p.id).where(*selected), parts, offset=offset, limit=limit
        )
    elif merged is not None:
        ids, has_more = page_by_merge(
            connection,
            sa.select(p.id).where(*selected),
            merged,
            [p.created_at, p.id],
            descending=sort.order is SortOrder.DESC,
            offset=offset,
            limit=limit,
        )
    else:
        statement = sa.select(p.id).where(*selected).order_by(*pod_query.order_by(query, sort))
        ranged = _page_by_days(connection, query, sort, offset=offset, limit=limit)
        if ranged is None:
            ranged = _ranged_page(connection, query, narrow, sort, offset=offset, limit=limit)
        if ranged is None:
            ranged = _searched_page(connection, query, narrow, statement, sort, offset=offset, limit=limit)
        if ranged is not None:
            ids, has_more = ranged
        else:
            ids, has_more = page_ids(connection, statement, offset=offset, limit=limit)
    if not ids:
        return PodsPage([], has_more)
    rows = sa.select(*_RENDERED, p.id).where(p.id.in_(ids))
    if full:
        rows = rows.add_columns(workloads.c.name.label("workload_name"), workloads.c.project_name).join_from(
            workload_pods, workloads, workloads.c.id == p.workload_id
        )
    by_id = {row.id: row for row in connection.execute(rows)}
    return PodsPage([_render(by_id[i], full=full) for i in ids if i in by_id], has_more)


# Fields whose terms a count can decide on ``pod_counts``' rows: both are part of their key. The revision
# is in the key (0017) because a count by revisionId is a revision's pods (a Knative Service's traffic
# split), and ``revisionId!=`` would otherwise visit every live pod (the revision index holds only the
# pods that have one). The price is a row per (cluster, department, project, revision) with live pods,
# which a count with no filter sums too: a few per Knative Service. A revision's row is deleted when its
# last live pod goes (the triggers of 0017), so replaced and scaled-to-zero revisions leave none.
_REVISION = "revisionId"
_ROLLED_UP = frozenset({"clusterId", _REVISION})


def count_pods(connection: sa.Connection, query: PodQuery) -> int:
    """The live pods of a query with no search words and no terms but on the cluster or the revision
    are summed from ``pod_counts`` (migrations 0016, 0017), whose rows carry the cluster, department
    and project that scope a pod and its revision: a few rows instead of a million index entries.
    A query that would be so but for one negated term (``!=``, ``!@``) is that sum less the count of
    the same query with the term's positive (``==``, ``=@``): a negated term holds on exactly the pods
    its positive does not hold on, those without a value included, and the positive is answered by
    its field's index where the negation would visit every live pod (``currentNodepool!=default``: the
    250,000 pods of one pool counted instead of the 750,000 of the others checked one by one). Both in
    one statement, so that they read one snapshot on PostgreSQL too. A tenant-wide count of search
    words alone that are too broad for the candidate look-up is read from a text index where the
    database has one that counts exactly (``_words_alone``). Anything else counts the pods themselves."""
    if _rolled_up(query):
        return int(connection.execute(_summed(query)).scalar_one())
    if _words_alone(query):
        # The words' candidates first (``narrowing``): a few pods are counted by their row ids at
        # once, where the text index's count would still read every deleted pod's row id.
        narrow = narrowed(connection, query, phrased=False)
        sql = dialect_of(connection)
        counted = None if narrow.clauses else sql.live_pod_text_count(connection, query.words)
        if counted is not None:
            return int(connection.execute(sa.select(counted)).scalar_one())
        narrow = phrase_words(connection, query, narrow)
        return int(connection.execute(_counted(connection, query, narrow)).scalar_one())
    for n, term in enumerate(query.terms):
        positive = _POSITIVE.get(term.op)
        rest = replace(query, terms=[t for i, t in enumerate(query.terms) if i != n])
        if positive is not None and _rolled_up(rest):
            held = replace(rest, terms=[*rest.terms, replace(term, op=positive)])
            difference = _summed(rest).scalar_subquery() - _counted(connection, held).scalar_subquery()
            return int(connection.execute(sa.select(difference)).scalar_one())
    return int(connection.execute(_counted(connection, query)).scalar_one())


# The positive of each negated operator: ``a!=x`` holds exactly where ``a==x`` does not (a pod without
# a value included), and ``a!@x`` where ``a=@x`` does not (``compile.text_predicate``).
_POSITIVE = {"!=": "==", "!@": "=@"}


def _rolled_up(query: PodQuery) -> bool:
    """Whether ``pod_counts`` answers the query's count (``count_pods``)."""
    return (
        all(t.field.name in _ROLLED_UP for t in query.terms)
        and not query.deleted
        and not query.words
        and query.completed is Completed.ALL
    )


def _words_alone(query: PodQuery) -> bool:
    """Whether ``query`` counts the live pods with search words and nothing else (no term, no scope
    but the tenant, any completion): where their number may come from a text index alone
    (``SqlDialect.live_pod_text_count``), if the words are too broad for the candidate look-up
    (``narrowing``). A broad word's live pods (``succeeded``, a tenth of them) are otherwise each
    read and matched."""
    return (
        bool(query.words)
        and not query.terms
        and not query.deleted
        and query.completed is Completed.ALL
        and query.scope.tenant
    )


def _summed(query: PodQuery) -> sa.Select[Any]:
    """The count of a ``_rolled_up`` query, from ``pod_counts``."""
    c = pod_counts.c
    # A missing revision is an empty text in the key: NULL again, so that every operator treats it as
    # the pods' own column does (``!=`` and ``!@`` hold, the others do not).
    counted = {"clusterId": c.cluster_id, _REVISION: sa.func.nullif(c.revision_id, "")}
    terms = [pod_query.term_on(t, counted) for t in query.terms]
    scoped = [] if query.scope.tenant else [restrict(pod_counts, query.scope)]
    return sa.select(sa.func.coalesce(sa.func.sum(c.live), 0)).where(*scoped, *terms)


def _counted(connection: sa.Connection, query: PodQuery, narrow: Narrowed | None = None) -> sa.Select[Any]:
    """The count of the pods themselves that ``query`` selects (``narrow``: its ``narrowed``, where
    the caller has it)."""
    selected = (narrowed(connection, query) if narrow is None else narrow).where(query, count=True)
    return sa.select(sa.func.count()).select_from(workload_pods).where(*selected)


# The stored document and the columns whose values the server keeps up to date beside it.
_RENDERED = (p.document, p.k8s_phase_updated_at, p.updated_at, p.deleted_at, p.completed_at)


def _render(row: Any, *, full: bool = False) -> str:
    document = orjson.loads(row.document)
    document["k8sPhaseUpdatedAt"] = format_ms(row.k8s_phase_updated_at)
    document["updatedAt"] = format_ms(row.updated_at)
    document["deletedAt"] = format_ms(row.deleted_at)
    document["completedAt"] = format_ms(row.completed_at)
    if full:
        document["workloadName"] = row.workload_name
        document["projectName"] = row.project_name
    return orjson.dumps(document).decode()
