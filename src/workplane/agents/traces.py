"""Three public GPU-cluster traces as deterministic workload timelines.

Each trace becomes one Run:ai cluster and a list of ``Workload``s; a workload's ``steps`` are the
states it reports, each valid from its trace instant until the next one. Everything is a pure
function of the trace files: ids are uuid5 under ``NAMESPACE``, no value is random, and two loads give
identical timelines. Times are trace milliseconds (from the start of each trace); ``replay`` maps them
to reported instants. The README (section "Traces") states the same rules for users.

- **ITP** (Microsoft, ``itp/raw-traces.tar.gz``): each job is a ``Training`` workload in project
  ``itp-clusterNN`` (its ITP cluster), department ``itp``. Created at ``submission_time`` and Running from
  then (the trace has no queueing): runningPods 1, allocatedResources.gpu = requested gpu = ``num_gpu``.
  Completed at ``submission_time + duration``, allocation 0. Never deleted (the trace has no deletion).
- **openb** (Alibaba, ``openb/openb_pod_list_default.csv``): each pod is a ``Pod`` workload named after
  the pod; project by QoS class (``LS`` → ``openb-latency-sensitive``, ``BE`` → ``openb-best-effort``,
  ``Burstable`` → ``openb-burstable``, ``Guaranteed`` → ``openb-guaranteed``), department ``openb``.
  Requests: cpu = ``cpu_milli``/1000 cores, cpuMemory = ``memory_mib`` Mi, gpu = ``gpu_milli``/1000 as a
  ``portion`` request when ``num_gpu`` is 1 and ``gpu_milli`` < 1000, else ``num_gpu`` devices.
  Pending from ``creation_time``; Running from ``scheduled_time`` (runningPods 1, allocatedResources.gpu
  = ``num_gpu × gpu_milli / 1000``, plus the CPU and memory requests); at ``deletion_time`` it takes the
  phase it was last seen in (``Succeeded`` → Completed, ``Failed`` → Failed, ``Running`` stays Running),
  releases its allocation and is deleted. Never-scheduled pods stay Pending until deleted.
  Each workload also reports its pod (the trace's record itself): phase Pending, Running, Succeeded or
  Failed as above, node pool ``default`` once scheduled, the workload's requests, its allocation while
  running, completed and deleted at ``deletion_time`` (the trace has no node names).
- **DLRM** (Alibaba, ``dlrm/disaggregated_DLRM_trace.csv``): each service (``app_name``) is an
  ``Inference`` workload named ``app-N`` in project ``dlrm-inference``, department ``dlrm``; its instances
  are its pods. An instance is pending from ``creation_time`` to ``scheduled_time`` and running until
  ``deletion_time``; an empty creation/scheduled time is the trace start, an empty deletion time never.
  runningPods = running instances; requestedPods.number = live (pending or running) instances;
  allocatedResources = sums of the running instances' gpu / cpu / memory requests; requested resources
  = sums (request and limit) over live instances; currentNodePools = the roles of the running instances
  (``cn``, ``hn``). Phase: Running with at least one running instance, else Pending with at least one
  pending instance, else Stopped (all instances gone, more come later). Created at the first instance's
  creation; deleted when its last instance is deleted (keeping its last phase), if that happens.
  Each instance is also reported as a pod ``<app>-instance-N``: Pending, then Running in its role's node
  pool, with its own requests and (while running) allocation, deleted at ``deletion_time``.

Fields a trace does not have (user, images, ITP CPU/memory …) are left empty; the one constant is the
node pool ``default`` for running ITP and openb workloads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import uuid
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

JsonObject = dict[str, Any]

NAMESPACE = uuid.UUID("2c5d6f1e-8b0a-5e7c-9d3f-7472616365ff")
_NAMESPACE_BYTES = NAMESPACE.bytes
TRACE_DIR = Path(__file__).resolve().parent.parent / "data" / "traces"
ITP_FILE = TRACE_DIR / "itp" / "raw-traces.tar.gz"
OPENB_FILE = TRACE_DIR / "openb" / "openb_pod_list_default.csv"
DLRM_FILE = TRACE_DIR / "dlrm" / "disaggregated_DLRM_trace.csv"
TRACE_NAMES = ("itp", "openb", "dlrm")

PENDING, RUNNING, COMPLETED, FAILED, STOPPED = "Pending", "Running", "Completed", "Failed", "Stopped"
DEFAULT_POOL = ("default",)

Number = int | float


def _id(kind: str, key: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, f"{kind}/{key}"))``, computed without building UUID objects."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{kind}/{key}".encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _number(value: float) -> Number:
    """An integral float as an int (so 12.0 cores is sent as 12)."""
    return int(value) if float(value).is_integer() else value


def _ms(seconds: str) -> int:
    return round(float(seconds) * 1000)


def memory(mib: Number) -> str:
    """MiB as a Kubernetes quantity: whole GiB as ``Gi``, otherwise ``Mi``."""
    whole = int(mib)
    if whole == mib and whole % 1024 == 0:
        return f"{whole // 1024}Gi"
    return f"{whole}Mi" if whole == mib else f"{mib}Mi"


@dataclass(frozen=True, slots=True)
class Cluster:
    key: str
    name: str

    @property
    def id(self) -> str:
        return _id("cluster", self.key)


@dataclass(frozen=True, slots=True)
class Project:
    """Project and department; ids equal the names (the traces have no numeric ids)."""

    name: str
    department: str


class Resources(NamedTuple):
    """Requested resources; ``None`` parts are not reported."""

    gpu: Number
    gpu_limit: Number | None = None
    cpu: Number | None = None
    cpu_limit: Number | None = None
    memory_mib: Number | None = None
    memory_limit_mib: Number | None = None
    portion: bool = False

    def json(self) -> JsonObject:
        out: JsonObject = {}
        if self.portion:
            out["gpuRequestType"] = "portion"
        out["gpu"] = _request(self.gpu, self.gpu_limit)
        if self.cpu is not None:
            out["cpu"] = _request(self.cpu, self.cpu_limit)
        if self.memory_mib is not None:
            limit = memory(self.memory_limit_mib) if self.memory_limit_mib is not None else None
            out["cpuMemory"] = _request(memory(self.memory_mib), limit)
        return out


def _request(request: object, limit: object) -> JsonObject:
    return {"request": request} if limit is None else {"request": request, "limit": limit}


class Step(NamedTuple):
    """A workload's state from ``at_ms`` (trace time) on."""

    at_ms: int
    phase: str
    running_pods: int
    requested_pods: int
    gpu: Number  # allocatedResources.gpu
    cpu: Number | None = None  # allocatedResources.cpu
    memory_mib: Number | None = None  # allocatedResources.cpuMemory
    requested: Resources | None = None  # when it changes over time; else the workload's
    pools: tuple[str, ...] = ()
    deleted: bool = False

    @property
    def running(self) -> bool:
        return self.phase == RUNNING and not self.deleted

    def allocated(self) -> JsonObject:
        out: JsonObject = {"gpu": self.gpu}
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.memory_mib is not None:
            out["cpuMemory"] = memory(self.memory_mib)
        return out


@dataclass(slots=True)
class Workload:
    id: str
    cluster: Cluster
    project: Project
    name: str
    type: str
    created_ms: int
    requested: Resources | None
    single_pod: bool  # podsRequestedResources = workloadRequestedResources
    steps: list[Step]
    # The id of the workload's one Kubernetes pod, where the trace's records are pods (openb); the
    # replay then reports that pod with the workload.
    pod_id: str | None = None
    # Its pods, where the trace's records are a workload's instances (DLRM), and the instants their
    # states change: (trace ms, index into ``instances``), in time order.
    instances: tuple[InstancePod, ...] = ()
    instance_changes: tuple[tuple[int, int], ...] = ()

    def index_at(self, trace_ms: int) -> int:
        """Index of the step in force at ``trace_ms``; -1 before the workload exists."""
        return bisect_right(self.steps, trace_ms, key=lambda s: s.at_ms) - 1

    def pods_live_at(self, trace_ms: int) -> list[InstancePod]:
        """The instances that exist at ``trace_ms`` (created, not yet gone)."""
        return [p for p in self.instances if p.created_ms <= trace_ms and not p.gone_at(trace_ms)]

    def pods_changed_at(self, k: int) -> list[InstancePod]:
        """The instances whose state changed since the step before ``k`` (all of them up to step
        ``k``'s instant when ``k`` is the first): what a replay sending step ``k`` must report."""
        changes = self.instance_changes
        first = 0 if k == 0 else bisect_right(changes, self.steps[k - 1].at_ms, key=lambda c: c[0])
        last = bisect_right(changes, self.steps[k].at_ms, key=lambda c: c[0])
        return [self.instances[i] for i in dict.fromkeys(i for _, i in changes[first:last])]


class InstancePod(NamedTuple):
    """One instance of a service (DLRM) as a Kubernetes pod, in trace ms: pending from ``created_ms``,
    running from ``scheduled_ms`` (None: it never ran), gone at ``ended_ms`` (None: it outlives the
    trace)."""

    id: str
    name: str
    pool: str
    created_ms: int
    scheduled_ms: int | None
    ended_ms: int | None
    requested: Resources
    gpu: Number
    cpu: Number
    memory_mib: Number

    def ran_by(self, trace_ms: int) -> bool:
        return self.scheduled_ms is not None and self.scheduled_ms <= trace_ms

    def gone_at(self, trace_ms: int) -> bool:
        return self.ended_ms is not None and self.ended_ms <= trace_ms

    def instants(self) -> Iterator[int]:
        yield self.created_ms
        if self.scheduled_ms is not None and self.scheduled_ms > self.created_ms:
            yield self.scheduled_ms
        if self.ended_ms is not None:
            yield self.ended_ms


def _push(steps: list[Step], step: Step, *, keep_unchanged: bool = False) -> None:
    """Append a state; one at the same instant replaces the previous one, an unchanged one is dropped
    unless ``keep_unchanged`` (a service's instances changed even though their sums did not, and the
    replay reports a workload's pod changes with its steps)."""
    if steps and steps[-1].at_ms == step.at_ms:
        steps.pop()
    if not keep_unchanged and steps and steps[-1][1:] == step[1:]:
        return
    steps.append(step)


@dataclass(slots=True)
class Trace:
    """One trace as one cluster. ``rows``: the trace's records (ITP jobs, openb pods, DLRM instances)."""

    cluster: Cluster
    workloads: list[Workload]
    rows: int
    unit: str

    _events: EventIndex | None = field(default=None, repr=False, compare=False)

    @property
    def end_ms(self) -> int:
        return max((w.steps[-1].at_ms for w in self.workloads), default=0)

    @property
    def events(self) -> EventIndex:
        if self._events is None:
            self._events = event_index(self.workloads)
        return self._events

    def busiest_ms(self, until_ms: int | None = None) -> int:
        return busiest_ms(self.workloads, until_ms)


# ----------------------------------------------------------------------------------------- ITP

ITP = Cluster("itp", "microsoft-itp")


def load_itp(path: Path = ITP_FILE) -> Trace:
    workloads: list[Workload] = []
    requested: dict[int, Resources] = {}
    projects: dict[int, Project] = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            base = Path(member.name).name
            if not (base.startswith("cluster") and base.endswith(".csv")):
                continue
            number = int(base[len("cluster") : -len(".csv")])
            project = projects.setdefault(number, Project(f"itp-cluster{number:02d}", "itp"))
            handle = archive.extractfile(member)
            if handle is None:
                continue
            for row in csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8")):
                job_id = row["job_id"]
                submitted = _ms(row["submission_time"])
                ends = submitted + _ms(row["duration"])
                gpus = int(row["num_gpu"])
                steps: list[Step] = []
                _push(steps, Step(submitted, RUNNING, 1, 1, gpus, pools=DEFAULT_POOL))
                _push(steps, Step(ends, COMPLETED, 0, 1, 0))
                workloads.append(
                    Workload(
                        id=_id("itp", job_id),
                        cluster=ITP,
                        project=project,
                        name=f"job-{job_id.replace('-', '')[:12]}",
                        type="Training",
                        created_ms=submitted,
                        requested=requested.setdefault(gpus, Resources(gpus)),
                        single_pod=True,
                        steps=steps,
                    )
                )
    rows = len(workloads)
    workloads.sort(key=lambda w: (w.created_ms, w.id))
    return Trace(ITP, workloads, rows, "jobs")


# --------------------------------------------------------------------------------------- openb

OPENB = Cluster("openb", "alibaba-openb")
OPENB_PROJECTS = {
    "LS": "openb-latency-sensitive",
    "BE": "openb-best-effort",
    "Burstable": "openb-burstable",
    "Guaranteed": "openb-guaranteed",
}
_LAST_PHASE = {"Running": RUNNING, "Succeeded": COMPLETED, "Failed": FAILED, "Pending": PENDING}


def openb_project(qos: str) -> Project:
    return Project(OPENB_PROJECTS.get(qos, f"openb-{qos.lower() or 'unknown'}"), "openb")


def _openb_requests(num_gpu: int, gpu_milli: int, cpu: Number, mib: Number) -> Resources:
    if num_gpu == 1 and gpu_milli < 1000:
        return Resources(_number(gpu_milli / 1000), cpu=cpu, memory_mib=mib, portion=True)
    return Resources(num_gpu, cpu=cpu, memory_mib=mib)


def load_openb(path: Path = OPENB_FILE) -> Trace:
    workloads: list[Workload] = []
    projects: dict[str, Project] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            num_gpu, gpu_milli = int(row["num_gpu"]), int(row["gpu_milli"])
            cpu = _number(int(row["cpu_milli"]) / 1000)
            mib = int(row["memory_mib"])
            created = _ms(row["creation_time"])
            scheduled = _ms(row["scheduled_time"]) if row["scheduled_time"] else None
            deleted = _ms(row["deletion_time"]) if row["deletion_time"] else None
            steps: list[Step] = []
            _push(steps, Step(created, PENDING, 0, 1, 0))
            if scheduled is not None:
                allocated = _number(num_gpu * gpu_milli / 1000)
                _push(steps, Step(scheduled, RUNNING, 1, 1, allocated, cpu, mib, pools=DEFAULT_POOL))
            if deleted is not None:
                last = _LAST_PHASE.get(row["pod_phase"], RUNNING) if scheduled is not None else PENDING
                _push(steps, Step(deleted, last, 0, 1, 0, deleted=True))
            qos = row["qos"]
            workloads.append(
                Workload(
                    id=_id("openb", row["name"]),
                    cluster=OPENB,
                    project=projects.setdefault(qos, openb_project(qos)),
                    name=row["name"],
                    type="Pod",
                    created_ms=created,
                    requested=_openb_requests(num_gpu, gpu_milli, cpu, mib),
                    single_pod=True,
                    steps=steps,
                    pod_id=_id("openb-pod", row["name"]),
                )
            )
    rows = len(workloads)
    workloads.sort(key=lambda w: (w.created_ms, w.id))
    return Trace(OPENB, workloads, rows, "pods")


# ---------------------------------------------------------------------------------------- DLRM

DLRM = Cluster("dlrm", "alibaba-dlrm")
DLRM_PROJECT = Project("dlrm-inference", "dlrm")


@dataclass(slots=True)
class _Instance:
    role: str
    gpu: Number
    gpu_limit: Number
    cpu: Number
    cpu_limit: Number
    mib: Number
    mib_limit: Number


@dataclass(slots=True)
class _Sums:
    """Sums over a set of instances."""

    count: int = 0
    gpu: Number = 0
    gpu_limit: Number = 0
    cpu: Number = 0
    cpu_limit: Number = 0
    mib: Number = 0
    mib_limit: Number = 0
    roles: dict[str, int] = field(default_factory=dict)

    def add(self, inst: _Instance, sign: int) -> None:
        self.count += sign
        self.gpu += sign * inst.gpu
        self.gpu_limit += sign * inst.gpu_limit
        self.cpu += sign * inst.cpu
        self.cpu_limit += sign * inst.cpu_limit
        self.mib += sign * inst.mib
        self.mib_limit += sign * inst.mib_limit
        self.roles[inst.role] = self.roles.get(inst.role, 0) + sign


# Transitions of one instance: into pending, into running, pending → running, out of either.
_NEW_PENDING, _NEW_RUNNING, _SCHEDULED, _GONE_RUNNING, _GONE_PENDING = range(5)


def _service_steps(transitions: list[tuple[int, int, _Instance]]) -> list[Step]:
    transitions.sort(key=lambda t: (t[0], t[1]))
    running, live = _Sums(), _Sums()
    steps: list[Step] = []
    index = 0
    while index < len(transitions):
        at = transitions[index][0]
        while index < len(transitions) and transitions[index][0] == at:
            _, kind, inst = transitions[index]
            if kind in (_NEW_RUNNING, _SCHEDULED):
                running.add(inst, 1)
            elif kind == _GONE_RUNNING:
                running.add(inst, -1)
            if kind in (_NEW_PENDING, _NEW_RUNNING):
                live.add(inst, 1)
            elif kind in (_GONE_RUNNING, _GONE_PENDING):
                live.add(inst, -1)
            index += 1
        requested = Resources(
            _number(live.gpu),
            _number(live.gpu_limit),
            _number(live.cpu),
            _number(live.cpu_limit),
            _number(live.mib),
            _number(live.mib_limit),
        )
        gone = live.count == 0 and index == len(transitions)
        if gone:
            phase = steps[-1].phase if steps else STOPPED
        elif running.count > 0:
            phase = RUNNING
        elif live.count > 0:
            phase = PENDING
        else:
            phase = STOPPED
        pools = tuple(sorted(role.lower() for role, n in running.roles.items() if n > 0))
        step = Step(
            at,
            phase,
            running.count,
            live.count,
            _number(running.gpu),
            _number(running.cpu),
            _number(running.mib),
            requested,
            pools,
            gone,
        )
        _push(steps, step, keep_unchanged=True)
    return steps


def _dlrm_instance(row: dict[str, str]) -> _Instance:
    def num(key: str) -> Number:
        return _number(float(row[key]))

    def mib(key: str) -> Number:
        return _number(round(float(row[key]) * 1024, 3))

    return _Instance(
        row["role"],
        num("gpu_request"),
        num("gpu_limit"),
        num("cpu_request"),
        num("cpu_limit"),
        mib("memory_request"),
        mib("memory_limit"),
    )


def _instance_pod(
    row: dict[str, str], inst: _Instance, times: tuple[int, int | None, int | None]
) -> InstancePod:
    created_ms, scheduled_ms, ended_ms = times
    return InstancePod(
        _id("dlrm-pod", row["instance_sn"]),
        f"{row['app_name']}-{row['instance_sn']}".replace("_", "-"),
        inst.role.lower(),
        created_ms,
        scheduled_ms,
        ended_ms,
        Resources(inst.gpu, inst.gpu_limit, inst.cpu, inst.cpu_limit, inst.mib, inst.mib_limit),
        inst.gpu,
        inst.cpu,
        inst.mib,
    )


def load_dlrm(path: Path = DLRM_FILE) -> Trace:
    services: dict[str, list[tuple[int, int, _Instance]]] = {}
    pods: dict[str, list[InstancePod]] = {}
    created: dict[str, int] = {}
    rows = 0
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            rows += 1
            inst = _dlrm_instance(row)
            # Empty creation / scheduled time: before the trace, i.e. at its start.
            start = _ms(row["creation_time"]) if row["creation_time"] else 0
            scheduled = max(start, _ms(row["scheduled_time"]) if row["scheduled_time"] else 0)
            end = _ms(row["deletion_time"]) if row["deletion_time"] else None
            transitions = services.setdefault(row["app_name"], [])
            app = row["app_name"]
            created[app] = min(created.get(app, start), start)
            if end is not None and end <= scheduled:  # deleted before it was scheduled
                transitions += [(start, _NEW_PENDING, inst), (end, _GONE_PENDING, inst)]
                pods.setdefault(app, []).append(_instance_pod(row, inst, (start, None, end)))
                continue
            if scheduled > start:
                transitions += [(start, _NEW_PENDING, inst), (scheduled, _SCHEDULED, inst)]
            else:
                transitions.append((start, _NEW_RUNNING, inst))
            if end is not None:
                transitions.append((end, _GONE_RUNNING, inst))
            pods.setdefault(app, []).append(_instance_pod(row, inst, (start, scheduled, end)))
    workloads = [
        Workload(
            id=_id("dlrm", app),
            cluster=DLRM,
            project=DLRM_PROJECT,
            name=app.replace("_", "-"),
            type="Inference",
            created_ms=created[app],
            requested=None,
            single_pod=False,
            steps=_service_steps(transitions),
            instances=tuple(pods[app]),
            instance_changes=tuple(
                sorted((at, index) for index, pod in enumerate(pods[app]) for at in pod.instants())
            ),
        )
        for app, transitions in services.items()
    ]
    workloads.sort(key=lambda w: (w.created_ms, w.id))
    return Trace(DLRM, workloads, rows, "instances")


# ----------------------------------------------------------------------------------- inventory

LOADERS = {"itp": load_itp, "openb": load_openb, "dlrm": load_dlrm}


def parse_trace_names(text: str | Iterable[str]) -> tuple[str, ...]:
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in LOADERS]
    if unknown or not names:
        raise ValueError(f"unknown trace(s) {', '.join(unknown) or '(none)'}; choose from itp, openb, dlrm")
    return tuple(dict.fromkeys(names))


@dataclass(slots=True)
class EventIndex:
    """Every step of a trace's workloads, ordered by trace time: parallel arrays."""

    times: array[int]
    workloads: array[int]
    steps: array[int]

    def window(self, after_ms: int, until_ms: int) -> range:
        """Positions of the steps with ``after_ms < at <= until_ms``."""
        return range(bisect_right(self.times, after_ms), bisect_right(self.times, until_ms))


def event_index(workloads: Sequence[Workload]) -> EventIndex:
    order = sorted((step.at_ms, wi, k) for wi, w in enumerate(workloads) for k, step in enumerate(w.steps))
    return EventIndex(
        array("q", (e[0] for e in order)),
        array("q", (e[1] for e in order)),
        array("q", (e[2] for e in order)),
    )


def _live_pods(step: Step | None) -> int:
    return step.running_pods if step is not None and not step.deleted else 0


def pod_changes(workloads: Iterable[Workload]) -> list[tuple[int, int]]:
    """(trace ms, change in running pods), one entry per step that changes them, in time order."""
    changes = []
    for w in workloads:
        previous: Step | None = None
        for step in w.steps:
            delta = _live_pods(step) - _live_pods(previous)
            if delta:
                changes.append((step.at_ms, delta))
            previous = step
    changes.sort()
    return changes


def busiest_ms(workloads: Iterable[Workload], until_ms: int | None = None) -> int:
    """The first trace instant (up to ``until_ms``) with the most running pods."""
    best_at, best, running = 0, 0, 0
    changes = pod_changes(workloads)
    for index, (at, delta) in enumerate(changes):
        if until_ms is not None and at > until_ms:
            break
        running += delta
        last_at_this_instant = index + 1 == len(changes) or changes[index + 1][0] != at
        if last_at_this_instant and running > best:
            best_at, best = at, running
    return best_at


class Inventory:
    """The workloads of the chosen traces, in a fixed order (trace, then creation, then id)."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.traces = list(traces)

    @classmethod
    def load(cls, names: Iterable[str] = TRACE_NAMES) -> Inventory:
        return cls([LOADERS[name]() for name in parse_trace_names(names)])

    @property
    def workloads(self) -> Iterator[Workload]:
        return (w for t in self.traces for w in t.workloads)

    @property
    def end_ms(self) -> int:
        return max((t.end_ms for t in self.traces), default=0)

    def busiest_ms(self) -> int:
        """The first trace instant with the most running pods, all traces together (for a snapshot)."""
        return busiest_ms(self.workloads)

    def demo_starts(self, left_ms: int = 5 * 86_400_000) -> dict[str, int]:
        """Where a live replay of each trace starts by default: its own busiest instant (the most running
        pods) among those that leave at least ``left_ms`` of trace to play (five days: two hours at one
        trace minute per second), so that every cluster is busy at once and keeps changing."""
        return {t.cluster.key: t.busiest_ms(until_ms=max(0, t.end_ms - left_ms)) for t in self.traces}
