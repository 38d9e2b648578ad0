"""The telemetry request, typed (docs/contract.md §7); ``api.telemetry`` parses it from the query string.

The population filters become ordinary query terms (``clusterId==``, ``departmentId==``,
``nodepool==``) plus a set of phases, so telemetry selects workloads through the same compiled
predicates as the list and the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from workplane.domain.fields import FIELDS
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Term, WorkloadQuery

MAX_GROUP_BY = 2


class TelemetryType(Enum):
    WORKLOADS_COUNT = "WORKLOADS_COUNT"
    GPU_ALLOCATION = "GPU_ALLOCATION"
    PENDING_TIME_DISTRIBUTION = "PENDING_TIME_DISTRIBUTION"


class GroupKey(Enum):
    """A ``groupBy`` token; the value is what ``key`` echoes."""

    CLUSTER_ID = "ClusterId"
    DEPARTMENT_ID = "DepartmentId"
    PROJECT_ID = "ProjectId"
    TYPE = "Type"
    CURRENT_NODEPOOLS = "CurrentNodepools"
    PHASE = "Phase"
    CATEGORY = "Category"


# The group key of the pending-time buckets, and the buckets: label and lower bound (inclusive) of the
# time since the workload entered Pending, in milliseconds. A clock ahead of ours (a negative age)
# falls in the first bucket.
PENDING_TIME_KEY = "PendingTime"
PENDING_BUCKETS: tuple[tuple[str, int], ...] = (
    ("0-5m", 0),
    ("5m-1h", 5 * 60_000),
    ("1h-24h", 3_600_000),
    ("24h+", 86_400_000),
)


@dataclass(frozen=True, slots=True)
class TelemetryQuery:
    type: TelemetryType
    group_by: tuple[GroupKey, ...] = ()
    cluster_id: str | None = None
    department_id: str | None = None
    nodepool: str | None = None
    phases: frozenset[str] | None = None  # None: every phase

    @property
    def terms(self) -> list[Term]:
        """The population filters as the list's own terms (``clusterId==``, ``departmentId==``,
        ``nodepool==``)."""
        given = (
            ("clusterId", self.cluster_id),
            ("departmentId", self.department_id),
            ("nodepool", self.nodepool),
        )
        return [Term(FIELDS[name], "==", value) for name, value in given if value is not None]

    def selection(self) -> WorkloadQuery:
        """The workloads counted, before ``phases``: live ones, through the list's own terms. The
        caller's scopes are not part of it: the store's telemetry functions take them as their
        required ``restrict``."""
        return WorkloadQuery(terms=self.terms, scope=ScopeSet.everything())
