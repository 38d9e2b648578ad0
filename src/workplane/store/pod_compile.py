"""SQL for the cluster-wide pod list and count (``query.pods.PodQuery``) over ``workload_pods``, with
the workload list's operator semantics (``compile.text_predicate`` / ``number_predicate``).

Scopes: a pod is inside the caller's scopes exactly when its workload is: it carries its workload's
cluster, department and project, and ``scopes.restrict`` applies to it in the same statement, so
paging and counts are over what the caller may see.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from workplane.domain.fields import Kind
from workplane.query.filters import Sort, SortOrder, Term
from workplane.query.pods import Completed, PodQuery
from workplane.store.compile import RANGE_OPERATORS, day_bound, text_predicate, time_predicate
from workplane.store.dialects.base import escape_like
from workplane.store.schema import workload_pods
from workplane.store.scopes import restrict

p = workload_pods.c

_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "clusterId": p.cluster_id,
    "workloadId": p.workload_id,
    "revisionId": p.revision_id,
    "nodeName": p.node_name,
    "currentNodepool": p.current_nodepool,
    "createdAt": p.created_at,
    "completedAt": p.completed_at,
    "deletedAt": p.deleted_at,
}
NOT_NULL = frozenset({"clusterId", "workloadId", "createdAt"})


def _term(term: Term) -> sa.ColumnElement[bool]:
    predicate = term_on(term, {})
    if term.field.name == "completedAt" and term.op in RANGE_OPERATORS:
        # The days of completion it implies (``compile.day_bound``): its live pods found by the
        # leading key of ``ix_workload_pods_completed_day``, which holds ``deleted_at`` too (a count
        # reads the range's entries alone, where it read each pod's row for ``deleted_at``). Not on
        # deletedAt: its own index over deleted pods gives their count alone already, and the
        # day's division on each entry cost SQLite 0.2 ms at 3,000 pods.
        return sa.and_(predicate, day_bound(p.completed_at, term.op, term.number))
    return predicate


def term_on(term: Term, columns: dict[str, sa.ColumnElement[Any]]) -> sa.ColumnElement[bool]:
    """A filter term, on ``columns`` where they name its field (another table's copy of a pod
    column, such as ``pod_counts.cluster_id``), else on the pod's own column."""
    column = columns.get(term.field.name, _COLUMNS[term.field.name])
    if term.field.kind is Kind.TEXT:
        return text_predicate(column, term.op, term.text)
    return time_predicate(column, term.op, term.number)


# Text operators a NULL never satisfies and that no index range answers (substrings).
SUBSTRING = frozenset({"=@", "=^", "=$"})


def _covering_hints(query: PodQuery) -> list[sa.ColumnElement[bool]]:
    """For a count: ``IS NOT NULL`` on the columns that substring terms and search words read. They
    change no answer (a NULL never satisfies those), but they are a condition on the first column of
    that column's live index, so a count reads that index alone instead of visiting every live pod's
    row (SQLite picks an index by its conditions: over 100k pods, a node-pool substring's count went
    from 0.16 s to 0.07 s, a search word's from 0.13 s to 0.04 s). A page keeps walking the order's
    index instead, stopping at the page's end."""
    columns = {_COLUMNS[t.field.name] for t in query.terms if t.op in SUBSTRING and t.field.kind is Kind.TEXT}
    if query.words:
        columns.add(p.search_text)
    return [c.is_not(None) for c in columns]


def search_words(words: list[str]) -> list[sa.ColumnElement[bool]]:
    """Every word occurs in the pod's search text, stored folded (``domain.pods.pod_search_text``) as
    the words are: no lower() per row."""
    return [p.search_text.like(f"%{escape_like(word)}%", escape="\\") for word in words]


def where(
    query: PodQuery, *, count: bool = False, words: list[sa.ColumnElement[bool]] | None = None
) -> list[sa.ColumnElement[bool]]:
    """The query's predicates; its search words as ``words`` where given (the same pods phrased for a
    database's text index, ``SqlDialect.live_pod_words``), else ``search_words``."""
    clauses: list[sa.ColumnElement[bool]] = [
        p.deleted_at.is_not(None) if query.deleted else p.deleted_at.is_(None)
    ]
    if not query.scope.tenant:
        # A pod carries its workload's cluster, department and project (``store.pods``).
        clauses.append(restrict(workload_pods, query.scope))
    if query.completed is Completed.TRUE:
        clauses.append(p.completed_at.is_not(None))
    elif query.completed is Completed.FALSE:
        clauses.append(p.completed_at.is_(None))
    clauses.extend(_term(t) for t in query.terms)
    clauses.extend(search_words(query.words) if words is None else words)
    if count:
        clauses.extend(_covering_hints(query))
    return clauses


def order_by(query: PodQuery, sort: Sort) -> list[sa.ColumnElement[Any]]:
    """Sorted by the field, ties broken by the id in the same direction; pods without a value last.
    Where the query itself leaves no pod without a value (``completed=true`` by completedAt,
    ``deleted=true`` by deletedAt) there is no NULLS LAST: the partial index on the field then gives
    the order in both directions."""
    key = _COLUMNS[sort.field]
    descending = sort.order is SortOrder.DESC
    ordered = key.desc() if descending else key.asc()
    tie = p.id.desc() if descending else p.id.asc()
    has_value = (
        sort.field in NOT_NULL
        or (sort.field == "completedAt" and query.completed is Completed.TRUE)
        or (sort.field == "deletedAt" and query.deleted)
    )
    return [ordered, tie] if has_value else [ordered.nulls_last(), tie]
