"""What the agent keeps of each object it watches: the few fields a workload record is made of.

A full Pod or Job is several kilobytes; the agent of a 100,000-pod cluster keeps every one, so each is
boiled down on arrival to the fields below (an owner keeps its ``status`` and a few ``spec`` scalars).

What many pods have alike is held once: the texts they repeat (namespace, node, phase, image, the
owner's kind, name and uid, timestamps) are interned, and equal owner references, container lists and
resource requests are shared objects. A pod keeps only the labels asked for (the node-pool label), not
all of them: at 100,000 pods each of these is tens of megabytes.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from workplane.domain.observation import quantity_to_number

JsonObject = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
# Run:ai's fractional GPU requests, as annotations on the pod (or its workload's pod template).
GPU_FRACTION_ANNOTATION = "gpu-fraction"
GPU_MEMORY_ANNOTATION = "gpu-memory"  # MiB of GPU memory
# Who submitted a workload, in the labels and annotations that the usual submitters set, first found wins.
SUBMITTER_KEYS = (
    "runai/user",
    "run.ai/user",
    "user",
    "notebooks.kubeflow.org/creator",
    "workflows.argoproj.io/creator",
)
# The owner's spec fields that its phase is worked out from (``status`` is kept whole).
_SPEC_KEYS = ("replicas", "suspend", "parallelism", "completions", "runStrategy", "running")


@dataclass(frozen=True, slots=True)
class Ref:
    """One ``ownerReferences`` entry: the owner's kind, API group, name and uid."""

    kind: str
    group: str
    name: str
    uid: str


T = TypeVar("T")
H = TypeVar("H", bound=Hashable)
_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 65_536  # emptied when full: sharing is an economy, never needed for correctness


def text(value: T) -> T:
    """``value`` interned when it is a text (an interned text is freed once nothing holds it)."""
    return cast(T, sys.intern(cast(str, value))) if type(value) is str else value


def shared(value: H) -> H:
    """One object for equal immutable values (a Job's five pods have the same owner reference,
    containers and requests)."""
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    found: H = _SHARED.setdefault(value, value)
    return found


def api_group(api_version: str) -> str:
    group, _, _version = api_version.rpartition("/")
    return group


def controller_ref(meta: JsonObject) -> Ref | None:
    """The owner a pod or object is grouped under: its controller, else its first owner."""
    refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("uid")]
    if not refs:
        return None
    ref = next((r for r in refs if r.get("controller")), refs[0])
    return shared(
        Ref(
            text(str(ref.get("kind", ""))),
            text(api_group(str(ref.get("apiVersion", "")))),
            text(str(ref.get("name", ""))),
            text(str(ref["uid"])),
        )
    )


def _strings(mapping: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping.items()} if isinstance(mapping, dict) else {}


def submitter(labels: dict[str, str], annotations: dict[str, str]) -> str | None:
    for key in SUBMITTER_KEYS:
        value = annotations.get(key) or labels.get(key)
        if value:
            return value
    return None


@dataclass(slots=True)
class Owner:
    """An object above pods (a Job, a Deployment, a Run:ai TrainingWorkload, …)."""

    uid: str
    kind: str
    group: str
    name: str
    namespace: str | None
    created_at: str | None
    deleting: bool
    owner: Ref | None
    labels: dict[str, str]
    submitted_by: str | None
    spec: JsonObject
    status: JsonObject

    @classmethod
    def from_object(cls, obj: JsonObject, kind: str, group: str) -> Owner:
        meta = obj.get("metadata") or {}
        raw_spec = obj.get("spec")
        spec: JsonObject = raw_spec if isinstance(raw_spec, dict) else {}
        labels, annotations = _strings(meta.get("labels")), _strings(meta.get("annotations"))
        status = obj.get("status")
        return cls(
            uid=str(meta.get("uid", "")),
            kind=kind,
            group=group,
            name=str(meta.get("name", "")),
            namespace=meta.get("namespace"),
            created_at=meta.get("creationTimestamp"),
            deleting=bool(meta.get("deletionTimestamp")),
            owner=controller_ref(meta),
            labels=labels,
            submitted_by=submitter(labels, annotations),
            spec={k: spec[k] for k in _SPEC_KEYS if k in spec},
            status=status if isinstance(status, dict) else {},
        )


@dataclass(frozen=True, slots=True)
class Resources:
    """One pod's requests (and limits): GPUs (devices or a Run:ai fraction), GPU memory, CPU, memory."""

    gpu: float = 0.0
    gpu_memory_mib: float | None = None
    cpu: float | None = None
    cpu_limit: float | None = None
    memory: float | None = None
    memory_limit: float | None = None


def _add(total: float | None, value: float | None) -> float | None:
    """A sum of the values present; None when none is."""
    if value is None:
        return total
    return value if total is None else total + value


def pod_resources(spec: JsonObject, annotations: dict[str, str]) -> Resources:
    gpu = cpu = cpu_limit = memory = memory_limit = None
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        # A device plugin resource is asked for in limits (requests, when given, must equal them).
        devices = quantity_to_number(limits.get(GPU_RESOURCE))
        gpu = _add(gpu, devices if devices is not None else quantity_to_number(requests.get(GPU_RESOURCE)))
        cpu = _add(cpu, quantity_to_number(requests.get("cpu")))
        cpu_limit = _add(cpu_limit, quantity_to_number(limits.get("cpu")))
        memory = _add(memory, quantity_to_number(requests.get("memory")))
        memory_limit = _add(memory_limit, quantity_to_number(limits.get("memory")))
    gpus = gpu or 0.0
    fraction = quantity_to_number(annotations.get(GPU_FRACTION_ANNOTATION))
    if not gpus and fraction is not None and 0 < fraction <= 1:
        gpus = fraction
    gpu_memory = quantity_to_number(annotations.get(GPU_MEMORY_ANNOTATION))
    return shared(
        Resources(
            gpu=gpus,
            gpu_memory_mib=gpu_memory if gpu_memory is not None and gpu_memory > 0 else None,
            cpu=cpu,
            cpu_limit=cpu_limit,
            memory=memory,
            memory_limit=memory_limit,
        )
    )


@dataclass(slots=True)
class Pod:
    uid: str
    name: str
    namespace: str
    owner: Ref | None
    created_at: str | None
    labels: dict[str, str]
    submitted_by: str | None
    phase: str  # the pod's own status.phase: Pending, Running, Succeeded, Failed, Unknown
    node: str | None
    unschedulable: str | None  # the scheduler's message while the pod cannot be placed
    waiting: str | None  # the first waiting container's reason (ContainerCreating, ImagePullBackOff, …)
    waiting_message: str | None
    initializing: bool
    ready: bool
    deleting: bool
    started_at: str | None
    completed_at: str | None  # when a finished pod's last container terminated
    images: tuple[str, ...]
    containers: tuple[tuple[str, str], ...]  # (name, image)
    ip: str | None
    priority_class: str | None
    resources: Resources = field(default_factory=Resources)

    @classmethod
    def from_object(cls, obj: JsonObject, *, keep_labels: Collection[str] | None = None) -> Pod:
        """The pod's fields; of its labels only ``keep_labels`` (all when None)."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        labels, annotations = _strings(meta.get("labels")), _strings(meta.get("annotations"))
        submitted_by = submitter(labels, annotations)
        if keep_labels is not None:
            labels = {text(k): text(v) for k, v in labels.items() if k in keep_labels}
        conditions = {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        scheduled = conditions.get("PodScheduled") or {}
        unschedulable = None
        if scheduled.get("status") == "False":
            unschedulable = str(scheduled.get("message") or scheduled.get("reason") or "Unschedulable")
        waiting = waiting_message = None
        init_statuses = status.get("initContainerStatuses") or []
        initializing = any(
            not (s.get("state") or {}).get("terminated") for s in init_statuses if isinstance(s, dict)
        )
        for container in [*init_statuses, *(status.get("containerStatuses") or [])]:
            state = (container.get("state") or {}).get("waiting") if isinstance(container, dict) else None
            if isinstance(state, dict):
                waiting, waiting_message = state.get("reason"), state.get("message")
                break
        containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
        return cls(
            uid=str(meta.get("uid", "")),
            name=str(meta.get("name", "")),
            namespace=text(str(meta.get("namespace", ""))),
            owner=controller_ref(meta),
            created_at=text(meta.get("creationTimestamp")),
            labels=labels,
            submitted_by=text(submitted_by),
            phase=text(str(status.get("phase") or "Pending")),
            node=text(spec.get("nodeName") or None),
            unschedulable=text(unschedulable),
            waiting=text(waiting),
            waiting_message=text(waiting_message),
            initializing=initializing,
            ready=(conditions.get("Ready") or {}).get("status") == "True",
            deleting=bool(meta.get("deletionTimestamp")),
            started_at=text(status.get("startTime")),
            completed_at=text(_finished_at(status)),
            images=shared(tuple(text(str(c["image"])) for c in containers if c.get("image"))),
            containers=shared(
                tuple((text(str(c.get("name", ""))), text(str(c.get("image", "")))) for c in containers)
            ),
            ip=status.get("podIP"),
            priority_class=text(spec.get("priorityClassName")),
            resources=pod_resources(spec, annotations),
        )

    @property
    def active(self) -> bool:
        return self.phase in ("Pending", "Running", "Unknown")


def _finished_at(status: JsonObject) -> str | None:
    """A finished pod (Succeeded or Failed) completed when its last container terminated; a running
    pod has not completed, even when some of its containers have. Kubernetes writes these times in
    one format (RFC 3339 in UTC, whole seconds), so the latest is the greatest text."""
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    times = [
        terminated.get("finishedAt")
        for container in status.get("containerStatuses") or []
        if isinstance(container, dict)
        and isinstance(terminated := (container.get("state") or {}).get("terminated"), dict)
    ]
    return max((t for t in times if isinstance(t, str) and t), default=None)


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes event (``v1 Event``) about a pod or an owner: what the workload's events show."""

    uid: str
    revision: int
    involved_uid: str
    involved_kind: str
    involved_name: str
    namespace: str
    type: str
    reason: str | None
    message: str
    source: str | None
    at: str | None

    @classmethod
    def from_object(cls, obj: JsonObject) -> Event:
        meta = obj.get("metadata") or {}
        involved = obj.get("involvedObject") or {}
        source = obj.get("source") or {}
        version = str(meta.get("resourceVersion") or "")
        return cls(
            uid=str(meta.get("uid", "")),
            # One object's resourceVersions order its own changes (a repeated event's count and time).
            revision=int(version) if version.isdigit() else 0,
            involved_uid=str(involved.get("uid", "")),
            involved_kind=str(involved.get("kind", "")),
            involved_name=str(involved.get("name", "")),
            namespace=str(involved.get("namespace") or meta.get("namespace") or ""),
            type=str(obj.get("type") or "Normal"),
            reason=obj.get("reason"),
            message=str(obj.get("message") or ""),
            source=source.get("component") or obj.get("reportingComponent") or None,
            at=obj.get("lastTimestamp")
            or obj.get("eventTime")
            or obj.get("firstTimestamp")
            or meta.get("creationTimestamp"),
        )
