"""The workload fields that ``filterBy``, ``sortBy`` and ``search`` name: one entry each.

Every reader of a field's traits takes them from here: the parser (kind), the compiler (stored
column, whether a stored value can be missing), the count path (whether the live-count rollup holds
it) and the sort parameter (whether it can be sorted). A new field is one entry here, plus its stored
column (``store.schema`` and a migration) and, for a computed one, its expression in the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    TEXT = "text"
    TIME = "time"
    NUMBER = "number"
    TEXT_LIST = "text list"


class Source(Enum):
    """Where a field's value comes from, which decides how a sort by it is answered
    (``store.ordering``)."""

    STORED = "stored"  # a column of the workload
    CATALOG = "catalog"  # the workload's own value, else its type's default
    CLOCK = "clock"  # the phase clock at the moment of the query
    POOLS = "pools"  # the current node pools (sorted by the first)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field a query can name. Only ``name`` and ``kind`` matter to the parser; the other traits
    are the workload's (a filter of another resource, e.g. workload types, leaves them as they are)."""

    name: str
    kind: Kind
    # The stored column holding the value; None: computed (from the catalog, the clock or the pools).
    column: str | None = None
    # Whether a workload can lack a value: such rows come last in either sort direction (NULLS LAST,
    # which a never-NULL column does not need, keeping its index usable both ways).
    nullable: bool = True
    # Whether the live-count rollup (``workload_counts``) can answer a term on the field.
    countable: bool = False
    sortable: bool = True
    # Whether ``search`` words are matched against the field's values.
    searchable: bool = False
    source: Source = Source.STORED


def _text(
    name: str, column: str, *, nullable: bool = True, countable: bool = False, searchable: bool = False
) -> FieldSpec:
    return FieldSpec(name, Kind.TEXT, column, nullable, countable, searchable=searchable)


WORKLOAD_FIELDS: tuple[FieldSpec, ...] = (
    _text("type", "type", nullable=False, countable=True, searchable=True),
    _text("name", "name", nullable=False, searchable=True),
    _text("clusterId", "cluster_id", nullable=False, countable=True),
    _text("projectId", "project_id", nullable=False, countable=True),
    _text("projectName", "project_name", nullable=False, countable=True, searchable=True),
    _text("departmentId", "department_id", nullable=False, countable=True),
    _text("departmentName", "department_name", nullable=False, countable=True, searchable=True),
    _text("submittedBy", "submitted_by", searchable=True),
    _text("phase", "phase", nullable=False, countable=True, searchable=True),
    _text("distributedFramework", "distributed_framework"),
    # Resolved through the catalog: the workload's own value, else its type's default.
    FieldSpec("category", Kind.TEXT, countable=True, searchable=True, source=Source.CATALOG),
    FieldSpec("priorityClassName", Kind.TEXT, countable=True, source=Source.CATALOG),
    _text("aiApplicationId", "ai_application_id"),
    _text("aiApplicationName", "ai_application_name"),
    FieldSpec("createdAt", Kind.TIME, "created_at", nullable=False),
    FieldSpec("deletedAt", Kind.TIME, "deleted_at"),
    FieldSpec("completedAt", Kind.TIME, "completed_at"),
    FieldSpec("phaseUpdatedAt", Kind.TIME, "phase_updated_at", nullable=False),
    FieldSpec("guaranteedRuntimeEndsAt", Kind.TIME, "guaranteed_runtime_ends_at"),
    FieldSpec("allocatedGPU", Kind.NUMBER, "allocated_gpu"),
    FieldSpec("idleGpus", Kind.NUMBER, "idle_gpus"),
    FieldSpec("idleAllocatedGpus", Kind.NUMBER, "idle_allocated_gpus"),
    # Computed from the phase clock at the moment of the query.
    FieldSpec("totalPendingTimeSeconds", Kind.NUMBER, nullable=False, source=Source.CLOCK),
    FieldSpec("totalRunningTimeSeconds", Kind.NUMBER, nullable=False, source=Source.CLOCK),
    FieldSpec("priority", Kind.NUMBER, countable=True, source=Source.CATALOG),
    # Any of the current node pools; sorted by the first.
    FieldSpec("nodepool", Kind.TEXT_LIST, source=Source.POOLS),
)

FIELDS: dict[str, FieldSpec] = {f.name: f for f in WORKLOAD_FIELDS}
