"""Slurm jobs as Run:ai workloads: reading Slurm's rows, the phase table, resources, types by shape.

Rows come from ``squeue -O`` and ``sacct --parsable2`` with ``SLURM_TIME_FORMAT=%s`` (times as epoch
seconds, so no time zone is guessed). Each job — each array task, each heterogeneous-job component —
is one workload, keyed by the id Slurm prints for it (``123``, ``123_4``, ``123+1``); its workload id
is a UUID derived from the cluster and that key, the same in every run of the agent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from workplane.domain.timefmt import format_ms

JsonObject = dict[str, Any]

# Run:ai phase and phase message of each Slurm job state (docs/decisions/0013-slurm-agent.md).
PHASES: dict[str, tuple[str, str | None]] = {
    "PENDING": ("Pending", None),  # the message is the pending reason
    "REQUEUED": ("Pending", "Requeued"),
    "REQUEUE_HOLD": ("Pending", "Requeued and held"),
    "REQUEUE_FED": ("Pending", "Requeued"),
    "RESV_DEL_HOLD": ("Pending", "Held: reservation deleted"),
    "CONFIGURING": ("Initializing", "Nodes are booting"),
    "RUNNING": ("Running", None),
    "COMPLETING": ("Running", "Completing"),
    "STAGE_OUT": ("Running", "Staging out"),
    "SIGNALING": ("Running", "Signaling"),
    "RESIZING": ("Running", "Resizing"),
    "SUSPENDED": ("Stopped", "Suspended"),
    "STOPPED": ("Stopped", "Stopped (SIGSTOP)"),
    "COMPLETED": ("Completed", None),
    "FAILED": ("Failed", "Failed"),
    "TIMEOUT": ("Failed", "Time limit reached"),
    "OUT_OF_MEMORY": ("Failed", "Out of memory"),
    "NODE_FAIL": ("Failed", "Node failure"),
    "BOOT_FAIL": ("Failed", "Node boot failure"),
    "DEADLINE": ("Failed", "Deadline reached"),
    "SPECIAL_EXIT": ("Failed", "Special exit"),
    "CANCELLED": ("Stopped", "Cancelled"),
    "PREEMPTED": ("Stopped", "Preempted"),
    "REVOKED": ("Stopped", "Revoked (federation)"),
}
# States after which the job never changes again.
FINISHED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "SPECIAL_EXIT",
        "CANCELLED",
        "PREEMPTED",
        "REVOKED",
    }
)
# States in which the job holds its nodes (allocated resources, running pods).
HOLDING = frozenset({"CONFIGURING", "RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "STOPPED"})
# ``sacct --state`` of the finished states (the short names sacct accepts).
FINISHED_STATES_ARG = "CD,F,TO,OOM,NF,BF,DL,CA,PR,RV"  # SPECIAL_EXIT is not accounted

_ABSENT = frozenset({"", "N/A", "NONE", "None", "Unknown", "(null)", "n/a"})
_NAMESPACE = uuid.UUID("8f4b7d0e-52a1-4c55-9a39-5e8b1f3c2d71")
_MEMORY_UNITS_MIB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
_NAME_MAX = 253


@dataclass(slots=True)
class SlurmJob:
    key: str  # Slurm's id of this workload: 123, 123_4 (array task), 123+1 (het-job component)
    raw_id: str  # the job record's own number (what sstat and sacct -j take)
    name: str
    user: str | None
    account: str | None
    partition: str | None
    state: str
    reason: str | None
    submit_s: int
    start_s: int | None
    end_s: int | None
    nodes: int
    cpus: int
    memory_mib: float | None
    gpus_requested: float
    gpus_allocated: float
    batch: bool | None  # None: not known (accounting rows of steps not seen)
    exit_code: int | None
    ran: bool  # the job was given nodes at some point

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


# -------------------------------------------------------------------------------------- reading


def _text(value: str) -> str | None:
    value = value.strip()
    return None if value in _ABSENT else value


def _epoch(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and value != "0" else None


def _int(value: str, default: int = 0) -> int:
    value = value.strip()
    # Slurm prints its "no value" (0xfffffffe) for counts it does not know.
    return int(value) if value.isdigit() and int(value) < 2**31 else default


def memory_mib(value: str) -> float | None:
    """A Slurm memory size (``500M``, ``4G``, ``1024``: MiB when unitless) in MiB."""
    value = value.strip()
    if not value:
        return None
    unit = value[-1].upper()
    number = value[:-1] if unit in _MEMORY_UNITS_MIB else value
    try:
        return float(number) * _MEMORY_UNITS_MIB.get(unit, 1.0)
    except ValueError:
        return None


def tres(text: str) -> dict[str, str]:
    """``cpu=1,mem=500M,gres/gpu=1`` as a mapping."""
    out: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep:
            out[name.strip()] = value.strip()
    return out


def tres_gpus(values: dict[str, str]) -> float:
    """GPUs in a TRES mapping: ``gres/gpu``, else the sum of its typed entries (``gres/gpu:a100``)."""
    if "gres/gpu" in values:
        return _number(values["gres/gpu"])
    return sum(_number(v) for k, v in values.items() if k.startswith("gres/gpu:"))


def gres_gpus(text: str) -> float:
    """GPUs in a GRES request (``gres:gpu:2``, ``gres:gpu:a100:2``, ``gres/gpu=2``, comma-separated)."""
    total = 0.0
    for part in (text or "").split(","):
        fields = part.replace("/", ":").replace("=", ":").split(":")
        if fields and fields[0] == "gres":
            fields = fields[1:]
        if not fields or fields[0] != "gpu":
            continue
        last = fields[-1] if len(fields) > 1 else "1"
        total += _number(last) if last.replace(".", "", 1).isdigit() else 1.0
    return total


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def _exit_code(value: str) -> int | None:
    """sacct's ``code:signal``."""
    code = value.strip().split(":")[0]
    return int(code) if code.isdigit() else None


def _wait_status(value: str) -> int | None:
    """squeue's exit_code, a raw wait status: the exit code is its high byte (None when signalled)."""
    status = value.strip()
    if not status.isdigit():
        return None
    return int(status) >> 8 if int(status) & 0x7F == 0 else None


# squeue -O fields, in order; the job name is last, so that a '|' in it cannot shift the others.
SQUEUE_FIELDS = (
    "JobArrayID",
    "JobID",
    "State",
    "Reason",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "UserName",
    "Account",
    "Partition",
    "NumNodes",
    "NumCPUs",
    "NumTasks",
    "tres-alloc",
    "tres-per-job",
    "tres-per-node",
    "tres-per-task",
    "BatchFlag",
    "exit_code",
    "NodeList",
    "Name",
)


def squeue_format() -> str:
    """The ``-O`` argument: every field unpadded (width 0) and followed by '|', except the last."""
    return ",".join(f"{field}:0|" for field in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:0"


def from_squeue(line: str) -> SlurmJob | None:
    """One ``squeue`` line as a job; None for a line that is not one (wrong number of fields)."""
    values = line.rstrip("\n").split("|", len(SQUEUE_FIELDS) - 1)
    if len(values) != len(SQUEUE_FIELDS):
        return None
    (key, raw, state, reason, submit, start, end, user, account, partition, nodes, cpus, tasks) = values[:13]
    (alloc, per_job, per_node, per_task, batch, exit_code, node_list, name) = values[13:]
    state = state.strip().split()[0] if state.strip() else "UNKNOWN"
    submit_s = _epoch(submit)
    if not key.strip() or submit_s is None:
        return None
    node_count, task_count = _int(nodes, 1), _int(tasks, 1)
    allocated = tres(alloc)
    requested_gpus = (
        gres_gpus(per_job) or gres_gpus(per_node) * node_count or gres_gpus(per_task) * task_count
    )
    ran = _text(node_list) is not None and state not in ("PENDING", "REQUEUED", "REQUEUE_HOLD")
    return SlurmJob(
        key=key.strip(),
        raw_id=raw.strip(),
        name=name.strip() or key.strip(),
        user=_text(user),
        account=_text(account),
        partition=_text(partition),
        state=state,
        reason=_text(reason),
        submit_s=submit_s,
        start_s=_epoch(start) if ran else None,
        end_s=_epoch(end) if state in FINISHED else None,
        nodes=node_count,
        cpus=_int(cpus, 1),
        memory_mib=memory_mib(allocated.get("mem", "")),
        gpus_requested=requested_gpus or (tres_gpus(allocated) if ran else 0.0),
        gpus_allocated=tres_gpus(allocated) if ran else 0.0,
        batch=batch.strip() == "1" if batch.strip() in ("0", "1") else None,
        exit_code=_wait_status(exit_code),
        ran=ran,
    )


# sacct --parsable2 fields, the job name last for the same reason.
SACCT_FIELDS = (
    "JobID",
    "JobIDRaw",
    "State",
    "Reason",
    "Submit",
    "Start",
    "End",
    "User",
    "Account",
    "Partition",
    "NNodes",
    "NCPUS",
    "ReqTRES",
    "AllocTRES",
    "ExitCode",
    "NodeList",
    "JobName",
)


def from_sacct(line: str) -> SlurmJob | None:
    """One ``sacct`` row of a job (not of a step) as a job; None for a step or an unreadable line."""
    values = line.rstrip("\n").split("|", len(SACCT_FIELDS) - 1)
    # A step's row, or a job slurmdbd has heard of but not yet been told about (no nodes requested:
    # a placeholder named "allocation").
    if len(values) != len(SACCT_FIELDS) or "." in values[0] or values[10].strip() == "0":
        return None
    (key, raw, state, reason, submit, start, end, user, account, partition, nodes, cpus) = values[:12]
    (requested, allocated, exit_code, node_list, name) = values[12:]
    state = state.strip().split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
    submit_s = _epoch(submit)
    if submit_s is None:
        return None
    alloc, req = tres(allocated), tres(requested)
    ran = bool(alloc) and _text(node_list) not in (None, "None assigned")
    return SlurmJob(
        key=key.strip(),
        raw_id=raw.strip(),
        name=name.strip() or key.strip(),
        user=_text(user),
        account=_text(account),
        partition=_text(partition),
        state=state,
        reason=_text(reason),
        submit_s=submit_s,
        start_s=_epoch(start) if ran else None,
        end_s=_epoch(end),
        nodes=_int(nodes, 1),
        cpus=_int(cpus, 1),
        memory_mib=memory_mib((alloc or req).get("mem", "")),
        gpus_requested=tres_gpus(req) or tres_gpus(alloc),
        gpus_allocated=tres_gpus(alloc) if ran else 0.0,
        batch=None,
        exit_code=_exit_code(exit_code),
        ran=ran,
    )


# ------------------------------------------------------------------------------------ as items


@dataclass(frozen=True, slots=True)
class Organisation:
    """Projects and departments: the job's account is its project; the department is the account's
    parent in slurmdbd's association tree (``parents``), or ``default_department``."""

    default_project: str = "default"
    default_department: str = "default"
    department_from_parent: bool = True
    parents: dict[str, str] | None = None

    def project_of(self, job: SlurmJob) -> str:
        return job.account or self.default_project

    def department_of(self, project: str) -> str:
        if not self.department_from_parent or not self.parents:
            return self.default_department
        parent = self.parents.get(project)
        return parent if parent and parent != "root" else self.default_department


def workload_id(cluster: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"slurm/{cluster}/{key}"))


def workload_type(job: SlurmJob) -> str:
    """By shape: an allocation without a batch script (salloc, srun) is a Workspace, a job on more
    than one node Distributed, any other batch job Training."""
    if job.batch is False:
        return "Workspace"
    return "Distributed" if job.nodes > 1 else "Training"


def _quantity(mib: float) -> str:
    whole = round(mib)
    if abs(mib - whole) > 1e-9:
        return f"{mib:g}Mi"
    return f"{whole // 1024}Gi" if whole % 1024 == 0 and whole else f"{whole}Mi"


def _message(job: SlurmJob) -> str | None:
    phase_message = PHASES.get(job.state, ("Unknown", job.state))[1]
    if job.state == "PENDING":
        return job.reason
    if job.state in ("FAILED", "SPECIAL_EXIT") and job.exit_code is not None:
        return f"{phase_message}: exit code {job.exit_code}"
    return phase_message


def item(job: SlurmJob, cluster: str, organisation: Organisation) -> JsonObject:
    """The sync item of a job, without ``revision`` and ``observedAt`` (the agent adds them)."""
    phase = PHASES.get(job.state, ("Unknown", None))[0]
    submit_ms = job.submit_s * 1000
    start_ms = job.start_s * 1000 if job.start_s is not None else None
    end_ms = job.end_s * 1000 if job.end_s is not None else None
    # When the job entered its phase, and the time it spent Pending / Running before that (what the
    # server needs for a workload it first learns about in a later phase).
    pending_ms = running_ms = 0
    phase_at: int | None
    if job.finished and end_ms is not None:
        phase_at = end_ms
        if start_ms is not None:
            pending_ms, running_ms = start_ms - submit_ms, end_ms - start_ms
        else:
            pending_ms = end_ms - submit_ms
    elif phase in ("Running", "Initializing") and start_ms is not None:
        phase_at = start_ms
        pending_ms = start_ms - submit_ms
    elif phase == "Pending":
        phase_at = submit_ms
    else:
        phase_at = None  # suspended, stopped: when the change was observed
    project = organisation.project_of(job)
    requested: JsonObject = {"gpu": {"request": job.gpus_requested}, "cpu": {"request": job.cpus}}
    if job.memory_mib is not None:
        requested["cpuMemory"] = {"request": _quantity(job.memory_mib)}
    holding = job.state in HOLDING
    allocated: JsonObject = {"gpu": job.gpus_allocated if holding else 0}
    if holding:
        allocated["cpu"] = job.cpus
        if job.memory_mib is not None:
            allocated["cpuMemory"] = _quantity(job.memory_mib)
    pools = job.partition.split(",") if job.partition else []
    suffix = f"-{job.key}"
    out: JsonObject = {
        "id": workload_id(cluster, job.key),
        "name": job.name[: _NAME_MAX - len(suffix)] + suffix,
        "projectId": project,
        "projectName": project,
        "departmentId": organisation.department_of(project),
        "departmentName": organisation.department_of(project),
        "type": workload_type(job),
        "phase": phase,
        "phaseMessage": _message(job),
        "createdAt": format_ms(submit_ms),
        "runningPods": job.nodes if holding else 0,
        "requestedPods": {"number": job.nodes},
        "workloadRequestedResources": requested,
        "allocatedResources": allocated,
        "requestedNodePools": pools,
        "currentNodePools": pools if job.ran else [],
        "totalPendingTimeSeconds": max(0, pending_ms) // 1000,
        "totalRunningTimeSeconds": max(0, running_ms) // 1000,
        "additionalFields": {"slurmJobId": job.key, "slurmState": job.state},
    }
    if job.user:
        out["submittedBy"] = job.user
    if phase_at is not None:
        out["phaseUpdatedAt"] = format_ms(phase_at)
    return out


def accounting_jobs(lines: Iterable[str]) -> Iterator[SlurmJob]:
    """The jobs of ``sacct`` rows, each followed by its steps' rows: a job with a ``batch`` step ran a
    batch script; one with steps but none of them ``batch`` is an interactive allocation."""
    current: SlurmJob | None = None
    steps: set[str] = set()
    for line in lines:
        job_id = line.split("|", 1)[0]
        if current is not None and job_id.startswith(current.key + "."):
            steps.add(job_id[len(current.key) + 1 :])
            continue
        if current is not None:
            yield from array_tasks(_with_steps(current, steps))
        current, steps = from_sacct(line), set()
    if current is not None:
        yield from array_tasks(_with_steps(current, steps))


def array_tasks(job: SlurmJob) -> Iterator[SlurmJob]:
    """The tasks of an accounting row that stands for several (``12_[0,2-4%2]``: an array whose tasks
    never started, which accounting keeps as one record); any other job as it is."""
    base, bracket, spec = job.key.partition("_[")
    if not bracket:
        yield job
        return
    for part in spec.rstrip("]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            continue
        for task in range(int(first), int(last or first) + 1):
            yield replace(job, key=f"{base}_{task}")


def _with_steps(job: SlurmJob, steps: set[str]) -> SlurmJob:
    if "batch" in steps:
        job.batch = True
    elif steps - {"extern"}:
        job.batch = False
    return job
