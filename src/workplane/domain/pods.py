"""A pod as an agent reports it through the sync protocol, and as the API serves it (Run:ai ``Pod``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workplane.domain.text import fold
from workplane.domain.timefmt import format_ms, to_ms
from workplane.domain.values import JsonObject


class PodContainer(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, max_length=253)
    image: str = Field(max_length=4096)
    started_at: datetime | None = Field(default=None, alias="startedAt")


class PodObservation(BaseModel):
    """One pod of a workload as the agent saw it; ``revision`` orders a pod's observations as it does a
    workload's, ``deletedAt`` reports the pod gone."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", allow_inf_nan=False)

    id: uuid.UUID
    workload_id: uuid.UUID = Field(alias="workloadId")
    # The uid of the workload revision that owns the pod (a Knative Revision); None when it has none.
    revision_id: uuid.UUID | None = Field(default=None, alias="revisionId")
    revision: int = Field(ge=0, le=2**62)
    name: str = Field(min_length=1, max_length=253)
    created_at: datetime = Field(alias="createdAt")
    k8s_phase: str = Field(alias="k8sPhase", min_length=1, max_length=32)
    node_name: str | None = Field(default=None, alias="nodeName", max_length=253)
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    deleted_at: datetime | None = Field(default=None, alias="deletedAt")
    priority_class_name: str | None = Field(default=None, alias="priorityClassName", max_length=253)
    current_node_pool: str | None = Field(default=None, alias="currentNodePool", max_length=253)
    requested_node_pools: list[str] = Field(default_factory=list, alias="requestedNodePools", max_length=64)
    containers: list[PodContainer] = Field(default_factory=list, max_length=64)
    requested_resources: JsonObject | None = Field(default=None, alias="requestedResources")
    allocated_resources: JsonObject | None = Field(default=None, alias="allocatedResources")
    ip: str | None = Field(default=None, max_length=64)

    @field_validator("created_at", "completed_at", "deleted_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps need a UTC offset or Z")
        return value

    @field_validator("name", "k8s_phase", "node_name", "priority_class_name", "current_node_pool", "ip")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


def pod_document(pod: PodObservation, cluster_id: str, project_id: str | None) -> dict[str, Any]:
    """The stored part of the served record (``PodSyncFields``); times are added when served."""
    document: dict[str, Any] = {
        "id": str(pod.id),
        "name": pod.name,
        "workloadId": str(pod.workload_id),
        "revisionId": None if pod.revision_id is None else str(pod.revision_id),
        "clusterId": cluster_id,
        "projectId": project_id,
        # Required by the upstream schema: an empty name when the pod has no priority class.
        "priorityClassName": pod.priority_class_name or "",
        "nodeName": pod.node_name,
        "createdAt": format_ms(to_ms(pod.created_at)),
        "completedAt": format_ms(to_ms(pod.completed_at)) if pod.completed_at else None,
        "containers": [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in pod.containers],
        "currentNodePool": pod.current_node_pool,
        "requestedNodePools": pod.requested_node_pools,
        "requestedResources": pod.requested_resources,
        "allocatedResources": pod.allocated_resources,
        "k8sPhase": pod.k8s_phase,
        "ip": pod.ip,
    }
    return document


# Kubernetes pod phases after which a pod runs no more.
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def pod_completed_ms(pod: PodObservation, phase_updated_ms: int) -> int | None:
    """When the pod completed: the time the agent reports (its containers' termination), else, for a
    pod in a terminal phase, when that phase was first seen; None while it has not completed."""
    if pod.completed_at is not None:
        return to_ms(pod.completed_at)
    return phase_updated_ms if pod.k8s_phase in TERMINAL_PHASES else None


def pod_search_text(pod: PodObservation, workload_name: str) -> str:
    """What the pod list's ``search`` looks in, folded: the pod's and its workload's names, its node,
    node pool and phase."""
    words = (pod.name, workload_name, pod.node_name, pod.current_node_pool, pod.k8s_phase)
    return fold(" ".join(w for w in words if w))
