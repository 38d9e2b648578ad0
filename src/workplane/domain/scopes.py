"""Scopes as values: where in Run:ai's hierarchy an access rule applies, and the union a caller holds.

Run:ai's scopes nest tenant → cluster → department → project, and an access rule on a scope covers
everything under it. Department and project ids are unique within a tenant (as in Run:ai), so a
department or project scope needs no cluster qualifier. The same rule as SQL, applied by every reader
of workloads inside its own statement, is ``store.scopes.restrict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


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
        """Whether a workload with these ids is inside: ``store.scopes.restrict`` in Python (tests hold
        them equal)."""
        return (
            self.tenant
            or cluster_id in self.clusters
            or department_id in self.departments
            or project_id in self.projects
        )

    def covers_cluster(self, cluster_id: str) -> bool:
        """Whether the whole cluster is inside (a department or project scope is not enough)."""
        return self.tenant or cluster_id in self.clusters
