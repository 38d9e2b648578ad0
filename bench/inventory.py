"""The benchmark inventory: Run:ai ``Training`` workloads built deterministically from the ITP trace.

How a trace job becomes a workload (every value below is either read from the trace or one of the
documented constants; nothing is random):

- The 69,351 jobs of the Microsoft ITP trace (``cluster01.csv`` … ``cluster10.csv``) are ordered by
  ``(submission_time, job_id)`` and replayed back to back: tile ``k`` is the whole trace shifted by
  ``k × 60 days``. The inventory of size N is the first N jobs of that endless replay (1,000,000 = 14
  whole tiles + the first 29,086 jobs of tile 14), i.e. what a cluster fleet had seen ``SNAPSHOT_DELAY_S``
  after the N-th submission. That instant is the snapshot: every phase is "as of the snapshot".
- Tile 0 starts at 2021-03-04T00:00:00Z, the first day of the trace.
- id: ``uuid5(NAMESPACE, "<tile>:<job_id>")``; name ``job-<first 12 hex digits of the id>``.
- Run:ai cluster: one per ITP cluster (``clusterId = uuid5(NAMESPACE, "itp-clusterNN")``).
- Project: one per (ITP cluster, tile): name ``itpNN-TT``, id ``"<tile+1><NN>"``; department by ITP
  cluster: 01–04 ``research``, 05–07 ``product``, 08–10 ``platform``, with an id per cluster (a department
  belongs to one cluster): group number and cluster number, e.g. ``1004`` (research, 04), ``2005``.
- type ``Training``; ``submittedBy`` null (the trace has no user); namespace ``runai-<project>``;
  images ``[IMAGE]``; requestedNodePools ``["default"]``.
- createdAt = submission. Phase as of the snapshot:
  * Pending (documented stand-in for never-scheduled jobs, which the trace does not have): the 3 % of
    jobs whose id hash (last 4 bytes of the id, mod 10,000) is below 300. Pending since createdAt,
    no allocation, no current node pool, no running pods.
  * Running: submission + duration is after the snapshot. allocatedResources.gpu = num_gpu,
    currentNodePools ``["default"]``, runningPods 1, running since createdAt.
  * Completed otherwise: completedAt = phaseUpdatedAt = submission + duration,
    totalRunningTimeSeconds = duration, currentNodePools ``["default"]``, no allocation.
- Deleted: Completed jobs whose id hash is in [300, 700) (4 %) and that completed at least
  ``DELETE_AFTER_S`` before the snapshot are deleted ``DELETE_AFTER_S`` after completing (through the
  store's ``delete_workload``).
- workloadRequestedResources = podsRequestedResources = ``{"gpu": {"request": num_gpu}}``;
  requestedPods ``{"number": 1}``.
"""

from __future__ import annotations

import csv
import io
import tarfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import workplane

NAMESPACE = uuid.UUID("6d8f3b8e-5a52-4b6c-9a0e-62656e636821")
TRACE_FILE = Path(workplane.__file__).parent / "data" / "traces" / "itp" / "raw-traces.tar.gz"
TRACE_JOBS = 69_351
ORIGIN_S = int(datetime(2021, 3, 4, tzinfo=UTC).timestamp())
TILE_SPAN_S = 60 * 86_400  # every job of the trace ends within 60 days of its start
SNAPSHOT_DELAY_S = 60
DELETE_AFTER_S = 86_400
PENDING_PER_10K = 300
DELETED_PER_10K = 400
IMAGE = "nvcr.io/nvidia/pytorch:21.03-py3"
DEFAULT_POOL = "default"
_DEPARTMENT_GROUPS = (
    dict.fromkeys((1, 2, 3, 4), ("10", "research"))
    | dict.fromkeys((5, 6, 7), ("20", "product"))
    | dict.fromkeys((8, 9, 10), ("30", "platform"))
)
# A department belongs to one Run:ai cluster (here one per ITP cluster), so its id joins the group's
# number and the cluster's: research of cluster 04 is "1004".
DEPARTMENTS = {cluster: (f"{gid}{cluster:02d}", name) for cluster, (gid, name) in _DEPARTMENT_GROUPS.items()}

PENDING, RUNNING, COMPLETED = "Pending", "Running", "Completed"


@dataclass(frozen=True, slots=True)
class TraceJob:
    submission_s: int
    job_id: str
    cluster: int
    duration_s: int
    num_gpu: int


@dataclass(frozen=True, slots=True)
class Planned:
    """One workload of the inventory, before it becomes a ``WorkloadIn``."""

    id: uuid.UUID
    tile: int
    job: TraceJob
    created_s: int
    phase: str
    completed_s: int | None
    deleted_s: int | None

    @property
    def name(self) -> str:
        return f"job-{self.id.hex[:12]}"

    @property
    def project_name(self) -> str:
        return project_name(self.job.cluster, self.tile)

    @property
    def department_id(self) -> str:
        return DEPARTMENTS[self.job.cluster][0]

    @property
    def department_name(self) -> str:
        return DEPARTMENTS[self.job.cluster][1]


def project_name(cluster: int, tile: int) -> str:
    return f"itp{cluster:02d}-{tile:02d}"


def read_trace(path: Path = TRACE_FILE) -> list[TraceJob]:
    """All jobs of the ITP trace, ordered by (submission time, job id)."""
    jobs: list[TraceJob] = []
    with tarfile.open(path, "r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            base = Path(member.name).name
            if not (base.startswith("cluster") and base.endswith(".csv")):
                continue
            cluster = int(base[len("cluster") : -len(".csv")])
            handle = archive.extractfile(member)
            if handle is None:
                continue
            for row in csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8")):
                jobs.append(
                    TraceJob(
                        int(row["submission_time"]),
                        row["job_id"],
                        cluster,
                        int(row["duration"]),
                        int(row["num_gpu"]),
                    )
                )
    jobs.sort(key=lambda j: (j.submission_s, j.job_id))
    if len(jobs) != TRACE_JOBS:
        raise ValueError(f"{path}: expected {TRACE_JOBS} jobs, found {len(jobs)}")
    return jobs


def _hash(workload_id: uuid.UUID) -> int:
    return int.from_bytes(workload_id.bytes[-4:], "big") % 10_000


@dataclass
class Plan:
    """The whole inventory of one size, plus what the measurements need to know about it."""

    size: int
    snapshot_s: int
    items: list[Planned]

    @property
    def tiles(self) -> int:
        return self.items[-1].tile + 1

    def phase_counts(self, *, live: bool = True) -> Counter[str]:
        return Counter(p.phase for p in self.items if (p.deleted_s is None) == live)

    def count(self, predicate: Callable[[Planned], bool], *, deleted: bool = False) -> int:
        return sum(1 for p in self.items if (p.deleted_s is not None) == deleted and predicate(p))


def build_plan(size: int, trace: list[TraceJob] | None = None) -> Plan:
    if size < 1:
        raise ValueError("the inventory needs at least one workload")
    jobs = trace if trace is not None else read_trace()
    whole, rest = divmod(size, len(jobs))
    last_tile, last_index = (whole, rest - 1) if rest else (whole - 1, len(jobs) - 1)
    snapshot = ORIGIN_S + last_tile * TILE_SPAN_S + jobs[last_index].submission_s + SNAPSHOT_DELAY_S
    items: list[Planned] = []
    for n in range(size):
        tile, index = divmod(n, len(jobs))
        job = jobs[index]
        workload_id = uuid.uuid5(NAMESPACE, f"{tile}:{job.job_id}")
        created = ORIGIN_S + tile * TILE_SPAN_S + job.submission_s
        ends = created + job.duration_s
        h = _hash(workload_id)
        completed: int | None = None
        deleted: int | None = None
        if h < PENDING_PER_10K:
            phase = PENDING
        elif ends > snapshot:
            phase = RUNNING
        else:
            phase = COMPLETED
            completed = ends
            if h < PENDING_PER_10K + DELETED_PER_10K and ends + DELETE_AFTER_S <= snapshot:
                deleted = ends + DELETE_AFTER_S
        items.append(Planned(workload_id, tile, job, created, phase, completed, deleted))
    return Plan(size, snapshot, items)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def workload_fields(p: Planned) -> dict[str, Any]:
    """The ``WorkloadIn`` fields (Run:ai names) of one planned workload."""
    job = p.job
    department_id, department_name = DEPARTMENTS[job.cluster]
    tile_project = p.project_name
    requested = {"gpu": {"request": job.num_gpu}}
    fields: dict[str, Any] = {
        "id": p.id,
        "clusterId": uuid.uuid5(NAMESPACE, f"itp-cluster{job.cluster:02d}"),
        "name": p.name,
        "projectId": f"{p.tile + 1}{job.cluster:02d}",
        "projectName": tile_project,
        "departmentId": department_id,
        "departmentName": department_name,
        "type": "Training",
        "phase": p.phase,
        "createdAt": _at(p.created_s),
        "requestedPods": {"number": 1},
        "workloadRequestedResources": requested,
        "podsRequestedResources": requested,
        "requestedNodePools": [DEFAULT_POOL],
        "images": [IMAGE],
    }
    if p.phase == RUNNING:
        fields |= {
            "phaseUpdatedAt": _at(p.created_s),
            "updatedAt": _at(p.created_s),
            "allocatedResources": {"gpu": job.num_gpu},
            "currentNodePools": [DEFAULT_POOL],
            "runningPods": 1,
        }
    elif p.phase == COMPLETED:
        assert p.completed_s is not None
        fields |= {
            "phaseUpdatedAt": _at(p.completed_s),
            "updatedAt": _at(p.completed_s),
            "completedAt": _at(p.completed_s),
            "currentNodePools": [DEFAULT_POOL],
            "totalRunningTimeSeconds": job.duration_s,
        }
    else:
        fields |= {"phaseUpdatedAt": _at(p.created_s), "updatedAt": _at(p.created_s)}
    return fields


def batches(items: list[Planned], size: int) -> Iterator[list[Planned]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Progress:
    """Prints rows loaded, rate and ETA at most every ``every_s`` seconds."""

    def __init__(self, label: str, total: int, every_s: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.every_s = every_s
        self.started = time.perf_counter()
        self.last = self.started
        self.done = 0

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            elapsed = now - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            print(
                f"  [{self.label}] {self.done:>9,}/{self.total:,} rows  {rate:>8,.0f} rows/s  "
                f"elapsed {elapsed:6.1f} s  eta {eta:6.1f} s",
                flush=True,
            )

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
