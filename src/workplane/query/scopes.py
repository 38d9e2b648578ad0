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

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa


class ScopeType(StrEnum):
    TENANT = "tenant"
    CLUSTER = "cluster"
    DEPARTMENT = "department"
    PROJECT = "project"


@dataclass(frozen=True, slots=True)
class Scope:
    type: ScopeType
    id: str


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """A union of scopes. ``tenant`` covers everything (the server serves one tenant)."""

    tenant: bool = False
    clusters: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()
    projects: frozenset[str] = frozenset()

    @classmethod
    def everything(cls) -> ScopeSet:
        return cls(tenant=True)

    @classmethod
    def of(cls, scopes: Iterable[Scope]) -> ScopeSet:
        by_type: dict[ScopeType, set[str]] = {t: set() for t in ScopeType}
        for scope in scopes:
            by_type[scope.type].add(scope.id)
        return cls(
            tenant=bool(by_type[ScopeType.TENANT]),
            clusters=frozenset(by_type[ScopeType.CLUSTER]),
            departments=frozenset(by_type[ScopeType.DEPARTMENT]),
            projects=frozenset(by_type[ScopeType.PROJECT]),
        )

    @property
    def is_empty(self) -> bool:
        return not (self.tenant or self.clusters or self.departments or self.projects)

    def covers(self, cluster_id: str, department_id: str, project_id: str) -> bool:
        """Whether a workload with these ids is inside: ``restrict`` in Python (tests hold them equal)."""
        return (
            self.tenant
            or cluster_id in self.clusters
            or department_id in self.departments
            or project_id in self.projects
        )

    def covers_cluster(self, cluster_id: str) -> bool:
        """Whether the whole cluster is inside (a department or project scope is not enough)."""
        return self.tenant or cluster_id in self.clusters


def restrict(table: sa.FromClause, scopes: ScopeSet) -> sa.ColumnElement[bool]:
    """The rows of ``table`` (any table or subquery with ``cluster_id``, ``department_id`` and
    ``project_id`` columns) inside ``scopes``: TRUE for the tenant scope, FALSE for no scope at all."""
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
            clauses.append(column.in_(sorted(ids)))
    return sa.or_(*clauses) if clauses else sa.false()
