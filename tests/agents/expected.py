"""What the API must report, computed straight from the raw trace files with ``csv``.

Deliberately independent of ``workplane.agents``: the mapping rules of the README ("Traces") are
re-stated here in the simplest form, row by row, and the replay is checked against them.
"""

from __future__ import annotations

import csv
import io
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import workplane

DATA = Path(workplane.__file__).parent / "data" / "traces"
ITP_TAR = DATA / "itp" / "raw-traces.tar.gz"
OPENB_CSV = DATA / "openb" / "openb_pod_list_default.csv"
DLRM_CSV = DATA / "dlrm" / "disaggregated_DLRM_trace.csv"


# ---------------------------------------------------------------------------------------- ITP


@dataclass(frozen=True)
class Job:
    cluster: str  # "01"
    job_id: str
    submitted: int
    duration: int
    gpus: int

    @property
    def name(self) -> str:
        return "job-" + self.job_id.replace("-", "")[:12]

    def phase_at(self, t: int) -> str | None:
        if self.submitted > t:
            return None
        return "Running" if t < self.submitted + self.duration else "Completed"


def itp_jobs() -> Iterator[Job]:
    with tarfile.open(ITP_TAR, "r:gz") as archive:
        for member in archive.getmembers():
            name = Path(member.name).name
            if not (name.startswith("cluster") and name.endswith(".csv")):
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            for row in csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8")):
                yield Job(
                    name[7:9],
                    row["job_id"],
                    int(row["submission_time"]),
                    int(row["duration"]),
                    int(row["num_gpu"]),
                )


# -------------------------------------------------------------------------------------- openb


@dataclass(frozen=True)
class Pod:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    qos: str
    last_phase: str
    created: int
    scheduled: int | None
    deleted: int

    def state_at(self, t: int) -> tuple[str, bool] | None:
        """(phase, deleted) at trace second ``t``; None before creation."""
        if self.created > t:
            return None
        if self.deleted <= t:
            if self.scheduled is None:
                return "Pending", True
            final = {"Succeeded": "Completed", "Failed": "Failed", "Running": "Running"}[self.last_phase]
            return final, True
        if self.scheduled is not None and self.scheduled <= t:
            return "Running", False
        return "Pending", False

    @property
    def gpu_request(self) -> float:
        if self.num_gpu == 1 and self.gpu_milli < 1000:
            return self.gpu_milli / 1000
        return float(self.num_gpu)

    @property
    def gpu_allocated_when_running(self) -> float:
        return self.num_gpu * self.gpu_milli / 1000


def openb_pods() -> list[Pod]:
    with OPENB_CSV.open(newline="") as handle:
        return [
            Pod(
                row["name"],
                int(row["cpu_milli"]),
                int(row["memory_mib"]),
                int(row["num_gpu"]),
                int(row["gpu_milli"]),
                row["qos"],
                row["pod_phase"],
                int(row["creation_time"]),
                int(row["scheduled_time"]) if row["scheduled_time"] else None,
                int(row["deletion_time"]),
            )
            for row in csv.DictReader(handle)
        ]


QOS_PROJECT = {
    "LS": "openb-latency-sensitive",
    "BE": "openb-best-effort",
    "Burstable": "openb-burstable",
    "Guaranteed": "openb-guaranteed",
}


# --------------------------------------------------------------------------------------- DLRM


@dataclass(frozen=True)
class Instance:
    sn: str
    app: str
    role: str
    gpu: int
    created: float  # -inf: before the trace
    scheduled: float
    deleted: float  # inf: after the trace


def dlrm_instances() -> list[Instance]:
    def when(text: str, empty: float) -> float:
        return float(text) if text else empty

    with DLRM_CSV.open(newline="") as handle:
        return [
            Instance(
                row["instance_sn"],
                row["app_name"],
                row["role"],
                int(row["gpu_request"]),
                when(row["creation_time"], float("-inf")),
                when(row["scheduled_time"], float("-inf")),
                when(row["deletion_time"], float("inf")),
            )
            for row in csv.DictReader(handle)
        ]


@dataclass
class Service:
    running: int = 0
    pending: int = 0
    gpu: int = 0
    created: float = float("inf")
    last_deletion: float = float("-inf")
    future: int = 0  # instances created after t

    def phase(self) -> str:
        if self.running:
            return "Running"
        if self.pending:
            return "Pending"
        return "Stopped"

    @property
    def deleted(self) -> bool:
        return self.running == 0 and self.pending == 0 and self.future == 0


def dlrm_services_at(instances: list[Instance], t: float) -> dict[str, Service]:
    """Per app_name, the service as of trace second ``t`` (only services created by then)."""
    services: dict[str, Service] = defaultdict(Service)
    for inst in instances:
        s = services[inst.app]
        s.created = min(s.created, inst.created)
        if inst.created > t:
            s.future += 1
        elif inst.deleted <= t:
            s.last_deletion = max(s.last_deletion, inst.deleted)
        elif inst.scheduled <= t:
            s.running += 1
            s.gpu += inst.gpu
        else:
            s.pending += 1
    return {app: s for app, s in services.items() if s.created <= t}


def dlrm_pods_at(instances: list[Instance], t: float) -> tuple[list[Instance], list[Instance]]:
    """(the instances that exist at trace second ``t``, those of them running)."""
    live = [i for i in instances if i.created <= t < i.deleted]
    return live, [i for i in live if i.scheduled <= t]


def counts(states: Iterator[tuple[str, bool]]) -> tuple[Counter[str], Counter[str]]:
    """(live phases, deleted phases)."""
    live: Counter[str] = Counter()
    gone: Counter[str] = Counter()
    for phase, deleted in states:
        (gone if deleted else live)[phase] += 1
    return live, gone
