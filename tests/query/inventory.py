"""A hand-made inventory that exercises every filter, search and sort case.

Every derived value a filter can read is written out next to its workload (``EXPECTED``), so the
expected answers of ``test_filter_cases`` can be checked by reading this file alone. Labels are
single letters A..R; ``wid(label)`` is each one's id.

Time accounting is chosen so that answers do not depend on when the test runs: a closed interval has
an exact value; an open one started in May 2024, so at ``NOW_MS`` (2024-06-01) and at any later
wall-clock time it is more than 1 500 000 s, far above every threshold used on it ("open" below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.factories import CLUSTER, at, wid, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.record import WorkloadIn
from workplane.domain.timefmt import to_ms
from workplane.store import workloads as store
from workplane.store.database import Database

NOW_MS = to_ms(at("2024-06-01T00:00:00Z"))
OPEN = None  # an open Pending/Running interval: > 1 500 000 s at NOW_MS and ever after

PROJECT = {
    "1": {"projectId": "1", "projectName": "proj-a", "departmentId": "10", "departmentName": "dept-x"},
    "2": {"projectId": "2", "projectName": "proj-b", "departmentId": "20", "departmentName": "dept-y"},
    "3": {"projectId": "3", "projectName": "Proj-C", "departmentId": "30", "departmentName": "Dept-Z"},
}


def _w(label: str, project: str, **fields: Any) -> WorkloadIn:
    return workload(label, **PROJECT[project], **fields)


RECORDS: dict[str, WorkloadIn] = {
    # Training → category Train, priority low (40).
    "A": _w(
        "A",
        "1",
        name="alpha",
        type="Training",
        phase="Running",
        createdAt=at("2024-05-01T10:00:00Z"),
        phaseUpdatedAt=at("2024-05-01T10:10:00Z"),
        totalPendingTimeSeconds=600,
        allocatedResources={"gpu": 1},
        currentNodePools=["default"],
        submittedBy="alice@example.com",
        images=["nvcr.io/nvidia/pytorch:24.01-py3"],
    ),
    # Workspace → Build, high (125). Created with an offset: 14:00+02:00 is 12:00Z.
    "B": _w(
        "B",
        "2",
        name="Bravo-Run",
        type="Workspace",
        phase="Pending",
        createdAt="2024-05-01T14:00:00+02:00",
        namespace="team-b",
        images=["jupyter/base-notebook"],
    ),
    # Inference → Deploy; own priority medium (80).
    "C": _w(
        "C",
        "1",
        name="50%_off",
        type="Inference",
        priorityClassName="medium",
        phase="Running",
        createdAt=at("2024-05-02T00:00:00Z"),
        phaseUpdatedAt=at("2024-05-02T00:05:00Z"),
        totalPendingTimeSeconds=300,
        allocatedResources={"gpu": 0.5},
        currentNodePools=["pool-a", "pool-b"],
        submittedBy="bob",
        images=["vllm/vllm-openai:latest"],
    ),
    # PyTorchJob → Train, low. Completed: completedAt = phaseUpdatedAt.
    "D": _w(
        "D",
        "2",
        name="back\\slash",
        type="PyTorchJob",
        phase="Completed",
        createdAt=at("2024-05-02T08:00:00.250Z"),
        phaseUpdatedAt=at("2024-05-03T08:00:00Z"),
        totalPendingTimeSeconds=120,
        totalRunningTimeSeconds=3600,
        allocatedResources={"gpu": 8},
        currentNodePools=["pool-b"],
        submittedBy="Carol",
        distributedFramework="PyTorch",
    ),
    # Training with own category Deploy; priority stays the type's default (low, 40).
    "E": _w(
        "E",
        "1",
        name="a,b",
        type="Training",
        category="Deploy",
        phase="Failed",
        createdAt="2024-05-03T00:00:00+05:30",
        phaseUpdatedAt=at("2024-05-02T20:00:00Z"),
        completedAt=at("2024-05-02T20:00:00.500Z"),
        totalRunningTimeSeconds=5400,
        allocatedResources={"gpu": 0},
        idleGpus=0,
        idleAllocatedGpus=0.0,
        currentNodePools=["default"],
        submittedBy="alice@example.com",
        distributedFramework="MPI",
        images=["busybox"],
    ),
    # Job → Build; own priority very-low (25).
    "F": _w(
        "F",
        "3",
        name="FOXTROT",
        type="Job",
        priorityClassName="very-low",
        phase="Stopped",
        createdAt=at("2024-05-04T00:00:00Z"),
        phaseUpdatedAt=at("2024-05-04T06:00:00Z"),
        totalRunningTimeSeconds=7200,
        allocatedResources={"gpu": 2},
        idleGpus=2,
        idleAllocatedGpus=1.5,
        currentNodePools=["Pool-A"],
        submittedBy="dave",
        images=["ubuntu:22.04"],
    ),
    # Distributed → Train, low.
    "G": _w(
        "G",
        "1",
        name="golf_1",
        type="Distributed",
        phase="Running",
        createdAt=at("2024-05-05T00:00:00Z"),
        allocatedResources={"gpu": 4},
        idleGpus=1,
        idleAllocatedGpus=0.5,
        currentNodePools=["pool-a"],
        submittedBy="eve",
        distributedFramework="PyTorch",
        aiApplicationId="app-1",
        aiApplicationName="chat",
        guaranteedRuntimeEndsAt=at("2024-05-06T00:00:00Z"),
        images=["nvcr.io/nvidia/pytorch:24.01-py3"],
    ),
    # Same createdAt as G (a sort tie). "golfX1" vs "golf_1": `_` is literal.
    "H": _w(
        "H",
        "2",
        name="golfX1",
        type="Training",
        phase="Pending",
        createdAt=at("2024-05-05T00:00:00Z"),
    ),
    # Workspace with own category Train and own priority medium-high (90).
    "I": _w(
        "I",
        "1",
        name="ind%ia",
        type="Workspace",
        category="Train",
        priorityClassName="medium-high",
        phase="Running",
        createdAt=at("2024-05-06T00:00:00Z"),
        allocatedResources={"gpu": 1},
        currentNodePools=["default", "pool-a"],
        submittedBy="Alice",
        images=["Jupyter/Scipy"],
    ),
    # Non-ASCII name and submitter (case folding is ASCII-only; code-point order puts É after z).
    "J": _w(
        "J",
        "3",
        name="Émile",
        type="Training",
        phase="Completed",
        createdAt=at("2024-05-07T00:00:00Z"),
        phaseUpdatedAt=at("2024-05-07T01:00:00Z"),
        totalPendingTimeSeconds=60,
        totalRunningTimeSeconds=3540,
        allocatedResources={"gpu": 1},
        currentNodePools=["default"],
        submittedBy="émile",
    ),
    # Inference → Deploy, very-high (150). Creating: no clock runs.
    "K": _w(
        "K",
        "1",
        name="kilo",
        type="Inference",
        phase="Creating",
        createdAt=at("2024-05-08T00:00:00Z"),
        submittedBy="bob",
        images=["nginx"],
    ),
    # RayService (Deploy by default) with own category Build and own priority high (125).
    "L": _w(
        "L",
        "2",
        name="lima",
        type="RayService",
        category="Build",
        priorityClassName="high",
        phase="Running",
        createdAt=at("2024-05-09T00:00:00Z"),
        allocatedResources={"gpu": 2.5},
        currentNodePools=["pool-b", "default"],
        submittedBy="ray-bot",
        distributedFramework="Ray",
        aiApplicationId="app-2",
        aiApplicationName="Chat-Bot",
        guaranteedRuntimeEndsAt=at("2024-05-10T00:00:00Z"),
        images=["rayproject/ray:2.9"],
    ),
    # Degraded: no clock runs; closed totals only.
    "M": _w(
        "M",
        "1",
        name="Mike",
        type="Training",
        phase="Degraded",
        createdAt=at("2024-05-10T00:00:00.999Z"),
        totalPendingTimeSeconds=30,
        totalRunningTimeSeconds=100,
        allocatedResources={"gpu": 1},
        currentNodePools=["default"],
        submittedBy="mallory",
    ),
    # Training with own priority very-high (150).
    "N": _w(
        "N",
        "3",
        name="zeta",
        type="Training",
        priorityClassName="very-high",
        phase="Running",
        createdAt=at("2024-05-11T00:00:00Z"),
        allocatedResources={"gpu": 16},
        currentNodePools=["pool-z"],
        submittedBy="zed",
        distributedFramework="TF",
    ),
    # Workspace → Build, high. Upper-case twin of A's name.
    "O": _w(
        "O",
        "1",
        name="ALPHA",
        type="Workspace",
        phase="Running",
        createdAt=at("2024-05-12T00:00:00Z"),
        allocatedResources={"gpu": 1},
        currentNodePools=["default"],
        submittedBy="oscar",
    ),
    # --- deleted ---------------------------------------------------------------------------
    # Running from creation until deleted one day later: running 86 400 s.
    "P": _w(
        "P",
        "1",
        name="alpha-old",
        type="Training",
        phase="Running",
        createdAt=at("2024-04-01T00:00:00Z"),
        allocatedResources={"gpu": 1},
        currentNodePools=["default"],
        submittedBy="alice@example.com",
    ),
    # Pending for 10 minutes, then deleted: pending 600 s.
    "Q": _w(
        "Q",
        "2",
        name="Bravo-old",
        type="Workspace",
        phase="Pending",
        createdAt=at("2024-04-10T00:00:00Z"),
    ),
    "R": _w(
        "R",
        "1",
        name="romeo",
        type="Inference",
        phase="Completed",
        createdAt=at("2024-04-15T00:00:00Z"),
        phaseUpdatedAt=at("2024-04-16T00:00:00Z"),
        allocatedResources={"gpu": 2},
    ),
}

DELETED_AT = {
    "P": to_ms(at("2024-04-02T00:00:00Z")),
    "Q": to_ms(at("2024-04-10T00:10:00Z")),
    "R": to_ms(at("2024-04-20T00:00:00Z")),
}

LIVE = frozenset("ABCDEFGHIJKLMNO")
DELETED = frozenset("PQR")
ALL_LIVE = "ABCDEFGHIJKLMNO"


@dataclass(frozen=True)
class Derived:
    """What the record reports for the fields that are derived (catalog, clock, completion)."""

    category: str
    priority_class_name: str
    priority: int
    pending: int | None  # seconds; None = open interval (huge)
    running: int | None
    completed_at: str | None


# Worked out by hand from RECORDS and the catalog (docs/contract.md §6).
EXPECTED: dict[str, Derived] = {
    "A": Derived("Train", "low", 40, 600, OPEN, None),
    "B": Derived("Build", "high", 125, OPEN, 0, None),
    "C": Derived("Deploy", "medium", 80, 300, OPEN, None),
    "D": Derived("Train", "low", 40, 120, 3600, "2024-05-03T08:00:00.000Z"),
    "E": Derived("Deploy", "low", 40, 0, 5400, "2024-05-02T20:00:00.500Z"),
    "F": Derived("Build", "very-low", 25, 0, 7200, None),
    "G": Derived("Train", "low", 40, 0, OPEN, None),
    "H": Derived("Train", "low", 40, OPEN, 0, None),
    "I": Derived("Train", "medium-high", 90, 0, OPEN, None),
    "J": Derived("Train", "low", 40, 60, 3540, "2024-05-07T01:00:00.000Z"),
    "K": Derived("Deploy", "very-high", 150, 0, 0, None),
    "L": Derived("Build", "high", 125, 0, OPEN, None),
    "M": Derived("Train", "low", 40, 30, 100, None),
    "N": Derived("Train", "very-high", 150, 0, OPEN, None),
    "O": Derived("Build", "high", 125, 0, OPEN, None),
    "P": Derived("Train", "low", 40, 0, 86_400, None),
    "Q": Derived("Build", "high", 125, 600, 0, None),
    "R": Derived("Deploy", "very-high", 150, 0, 0, "2024-04-16T00:00:00.000Z"),
}


def load_inventory(database: Database, catalog: CatalogSnapshot) -> None:
    """Create every workload (one batch) and delete P, Q, R, all at fixed instants."""
    with database.write() as conn:
        store.create_workloads(conn, list(RECORDS.values()), catalog=catalog, tenant_id=1, now_ms=NOW_MS)
        for label, deleted_ms in DELETED_AT.items():
            store.delete_workload(conn, str(wid(label)), deleted_at_ms=deleted_ms)


def label_of(workload_id: str) -> str:
    return LABEL_BY_ID[workload_id]


LABEL_BY_ID = {str(wid(label)): label for label in RECORDS}

__all__ = ["CLUSTER", "DELETED", "EXPECTED", "LIVE", "NOW_MS", "RECORDS", "label_of", "load_inventory"]
