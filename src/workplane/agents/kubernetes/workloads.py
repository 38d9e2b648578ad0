"""A workload as a sync item: its record's fields from its object, its pods, namespace and nodes."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from workplane.agents.kubernetes.cluster import ClusterState, Grouping
from workplane.agents.kubernetes.objects import Owner, Pod, Resources
from workplane.agents.kubernetes.status import Verdict, workload_phase
from workplane.domain.catalog import PRIORITY_BY_NAME

JsonObject = dict[str, Any]
DEFAULT_DEPARTMENT = "default"
DEFAULT_NODE_POOL = "default"
MIB = 2**20


@dataclass(frozen=True, slots=True)
class Labels:
    """Which labels say a namespace's project and a node's node pool."""

    project: str = "runai/queue"
    node_pool: str = "run.ai/node-pool"


def project_of(state: ClusterState, namespace: str, labels: Labels) -> tuple[str, str]:
    """(project, department): the namespace's project label (Run:ai's ``runai/queue``), else the
    namespace itself; the department is the project queue's parent when the cluster has queues."""
    project = state.namespaces.get(namespace, {}).get(labels.project) or namespace
    department = state.queues.get(project) or DEFAULT_DEPARTMENT
    return project, department


@functools.lru_cache(maxsize=4096)  # a few projects, asked for by every workload of a resync
def org_id(cluster_id: str, what: str, name: str) -> str:
    """A project's or department's id: the same name in two clusters is two projects (as in Run:ai,
    where each cluster has its own), so the id is derived from the cluster and the name."""
    return str(uuid.uuid5(uuid.UUID(cluster_id), f"{what}:{name}"))


def _request(request: float | None, limit: float | None) -> JsonObject:
    out: JsonObject = {"request": request}
    if limit is not None:
        out["limit"] = limit
    return out


def _mib(value: float | None) -> str | None:
    return None if value is None else f"{round(value / MIB)}Mi"


def requested(resources: list[Resources]) -> JsonObject:
    """Run:ai's requested-resources shape for the sum of ``resources``."""

    def total(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) if present else None

    gpu = sum(r.gpu for r in resources)
    out: JsonObject = {"gpu": {"request": gpu}}
    if any(0 < r.gpu < 1 for r in resources):
        out["gpuRequestType"] = "portion"
    gpu_memory = total([r.gpu_memory_mib for r in resources])
    if gpu_memory is not None:
        out["gpuRequestType"] = "memory"
        out["gpuMemory"] = {"request": f"{round(gpu_memory)}Mi"}
    cpu, cpu_limit = total([r.cpu for r in resources]), total([r.cpu_limit for r in resources])
    if cpu is not None or cpu_limit is not None:
        out["cpu"] = _request(cpu, cpu_limit)
    memory, memory_limit = total([r.memory for r in resources]), total([r.memory_limit for r in resources])
    if memory is not None or memory_limit is not None:
        out["cpuMemory"] = _request(_mib(memory), _mib(memory_limit))  # type: ignore[arg-type]
    return out


def allocated(pods: list[Pod]) -> JsonObject:
    """What the pods placed on nodes and not finished hold."""
    return _allocated_of([p.resources for p in pods if p.node is not None and p.active])


def _allocated_of(held: list[Resources]) -> JsonObject:
    out: JsonObject = {"gpu": sum(r.gpu for r in held)}
    cpu = [r.cpu for r in held if r.cpu is not None]
    if cpu:
        out["cpu"] = sum(cpu)
    memory = [r.memory for r in held if r.memory is not None]
    if memory:
        out["cpuMemory"] = _mib(sum(memory))
    return out


# A pod's own requested and allocated resources depend on its requests alone, and pods share equal
# requests (``objects.shared``): made once per distinct request, not once per pod and round (they were
# a third of the agent's work building a 100,000-pod resync). The shared results are only serialised.
@functools.lru_cache(maxsize=4096)
def _pod_requested(resources: Resources) -> JsonObject:
    return requested([resources])


@functools.lru_cache(maxsize=4096)
def _pod_allocated(resources: Resources) -> JsonObject:
    return _allocated_of([resources])


def _desired_pods(group: Owner | Pod, pods: list[Pod]) -> int:
    if isinstance(group, Owner):
        for key in ("replicas", "parallelism"):
            value = group.spec.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return len([p for p in pods if p.active]) or len(pods)


def build_item(
    cluster_id: str,
    state: ClusterState,
    grouping: Grouping,
    pods: list[Pod],
    verdict: Verdict,
    *,
    revision: int,
    phase_since: str,
    labels: Labels,
) -> JsonObject:
    node, group = grouping.workload, grouping.group
    namespace = node.namespace or (pods[0].namespace if pods else "default")
    project, department = project_of(state, namespace, labels)
    active = [p for p in pods if p.active] or pods
    created = node.created_at or (min((p.created_at for p in pods if p.created_at), default=None))
    item: JsonObject = {
        "id": node.uid,
        "revision": revision,
        "name": node.name,
        "namespace": namespace,
        "projectId": org_id(cluster_id, "project", project),
        "projectName": project,
        "departmentId": org_id(cluster_id, "department", department),
        "departmentName": department,
        "type": grouping.type,
        "phase": verdict.phase.value,
        "phaseMessage": verdict.message,
        "createdAt": created or phase_since,
        "phaseUpdatedAt": phase_since,
        "runningPods": sum(1 for p in pods if p.phase == "Running" and not p.deleting),
        "requestedPods": {"number": _desired_pods(group, pods)},
        "workloadRequestedResources": requested([p.resources for p in active]),
        "podsRequestedResources": requested([active[0].resources]) if len(active) == 1 else None,
        "allocatedResources": allocated(pods),
        "currentNodePools": sorted(
            {state.node_pools.get(p.node) or DEFAULT_NODE_POOL for p in pods if p.node and p.active}
        ),
        "images": sorted({image for p in active for image in p.images}),
    }
    requested_pool = node.labels.get(labels.node_pool)
    if requested_pool:
        item["requestedNodePools"] = [requested_pool]
    submitted_by = node.submitted_by or next((p.submitted_by for p in pods if p.submitted_by), None)
    if submitted_by:
        item["submittedBy"] = submitted_by
    # Only Run:ai's own priority classes are the catalog's priorities; any other class leaves the
    # workload on its type's default (sending an unknown one would be refused, batch and all).
    priority = next((p.priority_class for p in active if p.priority_class), None)
    if priority in PRIORITY_BY_NAME:
        item["priorityClassName"] = priority
    return item


def workload_verdict(grouping: Grouping, pods: list[Pod]) -> Verdict:
    return workload_phase(grouping.workload, grouping.group, pods)


def pod_pool(state: ClusterState, pod: Pod) -> str | None:
    """The node pool of the node a pod runs on (None while it has no node)."""
    return (state.node_pools.get(pod.node) or DEFAULT_NODE_POOL) if pod.node else None


def pod_item(
    pod: Pod, workload_id: str, pool: str | None, revision_id: str | None, now_text: str
) -> JsonObject:
    """A pod as a sync item (``docs/sync-protocol.md``), its node's pool given (``pod_pool``) and the
    workload revision that owns it (``ClusterState.revision_of``); the item's ``revision`` is the
    caller's. Made of these arguments alone: the agent keeps them, not the item, for every pod it
    reported (``agent.SentPods``)."""
    placed = pod.node is not None and pod.active
    item: JsonObject = {
        "id": pod.uid,
        "workloadId": workload_id,
        "name": pod.name,
        "createdAt": pod.created_at or now_text,
        "k8sPhase": pod.phase,
        "nodeName": pod.node,
        "containers": [{"name": name, "image": image} for name, image in pod.containers if name],
        "requestedResources": _pod_requested(pod.resources),
        "allocatedResources": _pod_allocated(pod.resources) if placed else None,
        "currentNodePool": pool,
        "ip": pod.ip,
    }
    if pod.completed_at:
        item["completedAt"] = pod.completed_at
    if pod.priority_class:
        item["priorityClassName"] = pod.priority_class
    if revision_id:
        item["revisionId"] = revision_id
    return item
