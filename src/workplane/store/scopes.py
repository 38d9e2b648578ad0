"""Scopes as SQL: the one function that restricts any table to the workloads inside a caller's scopes.

Run:ai's scopes nest tenant → cluster → department → project, and an access rule on a scope covers
everything under it. A workload (or a rollup row) carries its cluster, department and project ids, so
"inside one of these scopes" is a disjunction of equalities on those three columns. Every reader of
workloads — list, count, get, the live-count rollup, telemetry rollups — applies ``restrict`` to its
own table inside the same statement, so paging, ``next`` and counts are computed over what the caller
may see, never filtered afterwards.

Department and project ids are unique within a tenant (as in Run:ai), so a department or project scope
needs no cluster qualifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from workplane.domain.scopes import ScopeSet


def restrict(
    table: sa.FromClause,
    scopes: ScopeSet,
    unindexed: Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]] | None = None,
) -> sa.ColumnElement[bool]:
    """The rows of ``table`` (any table or subquery with ``cluster_id``, ``department_id`` and
    ``project_id`` columns) inside ``scopes``: TRUE for the tenant scope, FALSE for no scope at all.
    ``unindexed``: the form of a column that keeps its index out of the plan
    (``SqlDialect.unindexed``), for scopes that hold so many rows that another index should lead."""
    if scopes.tenant:
        return sa.true()
    columns: Any = table.c
    clauses: list[sa.ColumnElement[bool]] = []
    # Sorted: the same scopes give the same SQL text (statement caches, readable logs).
    for column, ids in (
        (columns.cluster_id, scopes.clusters),
        (columns.department_id, scopes.departments),
        (columns.project_id, scopes.projects),
    ):
        if ids:
            clauses.append((column if unindexed is None else unindexed(column)).in_(sorted(ids)))
    return sa.or_(*clauses) if clauses else sa.false()
