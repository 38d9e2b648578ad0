"""The cluster-wide pod list's query (``GET /workloads/pods`` and its count): its filter and sort
fields, parsed with the workload list's grammar and caps (``filters``). ``store.pod_compile`` turns it
into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from workplane.domain.fields import FieldSpec, Kind
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import QueryError, Term

# Run:ai's pod filter and sort fields (its ``PodsFilter`` / ``PodsSort``), spelled as it spells them
# (``currentNodepool``, while the served field is ``currentNodePool``).
POD_FIELDS: dict[str, FieldSpec] = {
    **{
        n: FieldSpec(n, Kind.TEXT)
        for n in ("clusterId", "workloadId", "revisionId", "nodeName", "currentNodepool")
    },
    **{n: FieldSpec(n, Kind.TIME) for n in ("createdAt", "completedAt", "deletedAt")},
}


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
