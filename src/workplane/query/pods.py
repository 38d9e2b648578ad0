"""The cluster-wide pod list's query (``GET /workloads/pods`` and its count): its filter and sort
fields, parsed with the workload list's grammar and caps (``filters``), and compiled to SQL over
``workload_pods`` with the same operator semantics (``compile.text_predicate`` / ``number_predicate``).

Scopes: a pod is inside the caller's scopes exactly when its workload is: it carries its workload's
cluster, department and project, and ``scopes.restrict`` applies to it in the same statement, so
paging and counts are over what the caller may see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import sqlalchemy as sa

from workplane.query.compile import escape_like, number_predicate, text_predicate
from workplane.query.filters import FieldSpec, Kind, QueryError, Sort, SortOrder, Term
from workplane.query.scopes import ScopeSet, restrict
from workplane.store.schema import workload_pods

p = workload_pods.c

# Run:ai's pod filter and sort fields (its ``PodsFilter`` / ``PodsSort``), spelled as it spells them
# (``currentNodepool``, while the served field is ``currentNodePool``).
POD_FIELDS: dict[str, FieldSpec] = {
    **{
        n: FieldSpec(n, Kind.TEXT)
        for n in ("clusterId", "workloadId", "revisionId", "nodeName", "currentNodepool")
    },
    **{n: FieldSpec(n, Kind.TIME) for n in ("createdAt", "completedAt", "deletedAt")},
}

# Agents report no workload revision with a pod, so ``revisionId`` has no value on any pod: as a NULL
# it satisfies only ``!=`` and ``!@``, and sorting by it orders by the id alone.
_NO_VALUE: sa.ColumnElement[Any] = sa.cast(sa.null(), sa.String)
_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "clusterId": p.cluster_id,
    "workloadId": p.workload_id,
    "revisionId": _NO_VALUE,
    "nodeName": p.node_name,
    "currentNodepool": p.current_nodepool,
    "createdAt": p.created_at,
    "completedAt": p.completed_at,
    "deletedAt": p.deleted_at,
}
_NOT_NULL = frozenset({"clusterId", "workloadId", "createdAt"})


class Completed(Enum):
    """Run:ai's ``completed``: only completed pods, only the others, or all (absent or empty)."""

    ALL = "all"
    TRUE = "true"
    FALSE = "false"


class Verbosity(Enum):
    """Run:ai's ``PodVerbosity``: ``full`` adds the workload's and the project's names."""

    BRIEF = "brief"
    FULL = "full"


@dataclass(frozen=True, slots=True, kw_only=True)
class PodQuery:
    """Everything that selects pods: shared by the list and the count. ``scope`` has no default, as
    ``WorkloadQuery``'s has none: a reader that forgets it reads nothing."""

    scope: ScopeSet
    deleted: bool = False
    completed: Completed = Completed.ALL
    terms: list[Term] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def sort_field(name: str) -> str:
    if name not in POD_FIELDS:
        raise QueryError("sortBy", f"{name!r} is not one of {', '.join(POD_FIELDS)}")
    return name


def time_predicate(column: sa.ColumnElement[Any], op: str, at_ms: float) -> sa.ColumnElement[bool]:
    """``number_predicate`` on a column of whole milliseconds, with whole-millisecond bounds: a time
    with a fraction of a millisecond (``to_ms_exact``) bound as a float makes PostgreSQL compare the
    column as ``numeric``, which no index answers. Equivalent: ``>= 1.5`` is ``>= 2``, ``<= 1.5`` is
    ``<= 1``, and no whole number equals 1.5."""
    whole = at_ms.is_integer()
    match op:
        case ">=":
            return column >= math.ceil(at_ms)
        case "<=":
            return column <= math.floor(at_ms)
        case "==":
            return column == int(at_ms) if whole else sa.false()
        case _:
            return number_predicate(column, op, int(at_ms)) if whole else sa.true()


def _term(term: Term) -> sa.ColumnElement[bool]:
    column = _COLUMNS[term.field.name]
    if term.field.kind is Kind.TEXT:
        return text_predicate(column, term.op, term.text)
    return time_predicate(column, term.op, term.number)


# Text operators a NULL never satisfies and that no index range answers (substrings).
_SUBSTRING = frozenset({"=@", "=^", "=$"})


def _covering_hints(query: PodQuery) -> list[sa.ColumnElement[bool]]:
    """For a count: ``IS NOT NULL`` on the columns that substring terms and search words read. They
    change no answer (a NULL never satisfies those), but they are a condition on the first column of
    that column's live index, so a count reads that index alone instead of visiting every live pod's
    row (SQLite picks an index by its conditions: over 100k pods, a node-pool substring's count went
    from 0.16 s to 0.07 s, a search word's from 0.13 s to 0.04 s). A page keeps walking the order's
    index instead, stopping at the page's end."""
    columns = {
        _COLUMNS[t.field.name] for t in query.terms if t.op in _SUBSTRING and t.field.kind is Kind.TEXT
    }
    if query.words:
        columns.add(p.search_text)
    return [c.is_not(None) for c in columns if c is not _NO_VALUE]


def search_words(words: list[str]) -> list[sa.ColumnElement[bool]]:
    """Every word occurs in the pod's search text, stored folded (``domain.pods.pod_search_text``) as
    the words are: no lower() per row."""
    return [p.search_text.like(f"%{escape_like(word)}%", escape="\\") for word in words]


def where(query: PodQuery, *, count: bool = False) -> list[sa.ColumnElement[bool]]:
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
    clauses.extend(search_words(query.words))
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
        sort.field in _NOT_NULL
        or (sort.field == "completedAt" and query.completed is Completed.TRUE)
        or (sort.field == "deletedAt" and query.deleted)
    )
    return [ordered, tie] if has_value else [ordered.nulls_last(), tie]
