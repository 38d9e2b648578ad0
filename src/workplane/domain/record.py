"""The workload record: what an observation says, and how it becomes a stored row.

A stored row carries (a) typed columns for everything ``filterBy``/``sortBy``/``search`` can read and
(b) ``doc``: the record pre-serialised as JSON, minus the few fields whose value depends on the clock
or on the catalog. Those are appended at read time (``api.workloads``), so a list page is served by
joining stored strings instead of rebuilding each record field by field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.phases import TERMINAL_PHASES, Phase, PhaseClock
from workplane.domain.text import fold
from workplane.domain.timefmt import format_ms, from_ms, to_ms
from workplane.domain.values import Count, JsonObject

SEARCH_SEPARATOR = "\x1f"  # str.split() treats it as white space, so no search word contains it

_OMITTED_WHEN_NULL = (
    "submittedBy",
    "phaseMessage",
    "command",
    "arguments",
    "distributedFramework",
    "aiApplicationId",
    "aiApplicationName",
)

# Kubernetes-object phase reported when the agent gives none.
_K8S_PHASE_OF = {
    Phase.PENDING: "Pending",
    Phase.INITIALIZING: "Pending",
    Phase.RUNNING: "Running",
    Phase.COMPLETED: "Succeeded",
    Phase.FAILED: "Failed",
}

JsonDict = dict[str, Any]

# Validation context key: the caller has already made sure that no text in the input holds a NUL
# (``services.ingest`` looks for the JSON escape in the raw body once, instead of every field of every item).
NO_NUL_CHECKED = "no_nul_checked"

# WorkloadIn fields stored as text columns of their own (see ``build_row``).
_COLUMN_TEXT = (
    "name",
    "namespace",
    "project_id",
    "project_name",
    "department_id",
    "department_name",
    "type",
    "category",
    "priority_class_name",
    "submitted_by",
    "distributed_framework",
    "ai_application_id",
    "ai_application_name",
)


class PendingSchedulingMessage(BaseModel):
    """Why a pending workload is not scheduled in one node pool (``WorkloadDetailed``)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    node_pool: str = Field(alias="nodePool")
    phase_reason: str = Field(alias="phaseReason", pattern=r"^(NonPreemptibleOverQuota|OverLimit)$")
    reason: str
    org_type: str | None = Field(default=None, alias="orgType", pattern=r"^(PROJECT|DEPARTMENT)$")
    user_message: str | None = Field(default=None, alias="userMessage")


class WorkloadIn(BaseModel):
    """One observation of a workload, in Run:ai field names (camelCase on the wire).

    ``category`` and ``priorityClassName`` are the values *given at submission*; leave them out and
    the workload follows its type's defaults. ``totalPendingTimeSeconds``/``totalRunningTimeSeconds``
    are time accumulated before this record's current phase (normally 0; the store adds the rest).
    """

    # Non-finite numbers are refused (no store can hold them); free-form JSON fields are checked by
    # ``values.JsonObject`` for the same and for integers beyond 64 bits.
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", alias_generator=None, allow_inf_nan=False
    )

    id: uuid.UUID | None = None
    cluster_id: uuid.UUID = Field(alias="clusterId")
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    project_id: str = Field(alias="projectId", min_length=1)
    project_name: str = Field(alias="projectName", min_length=1)
    department_id: str = Field(alias="departmentId", min_length=1)
    department_name: str = Field(alias="departmentName", min_length=1)
    type: str = Field(min_length=1)
    category: str | None = None
    priority_class_name: str | None = Field(default=None, alias="priorityClassName")
    preemptible: bool | None = None
    source: str = Field(default="Other", pattern=r"^(CLI|Control-plane|Other)$")
    submitted_by: str | None = Field(default=None, alias="submittedBy")
    phase: Phase
    phase_message: str | None = Field(default=None, alias="phaseMessage")
    phase_reason: str | None = Field(
        default=None, alias="phaseReason", pattern=r"^(NonPreemptibleOverQuota|OverLimit)$"
    )
    k8s_phase: str | None = Field(default=None, alias="k8sPhase")
    k8s_phase_updated_at: datetime | None = Field(default=None, alias="k8sPhaseUpdatedAt")
    created_at: datetime = Field(alias="createdAt")
    phase_updated_at: datetime | None = Field(default=None, alias="phaseUpdatedAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    running_pods: Count = Field(default=0, alias="runningPods")
    requested_pods: JsonObject = Field(default_factory=dict, alias="requestedPods")
    workload_requested_resources: JsonObject | None = Field(default=None, alias="workloadRequestedResources")
    pods_requested_resources: JsonObject | None = Field(default=None, alias="podsRequestedResources")
    allocated_resources: JsonObject | None = Field(default=None, alias="allocatedResources")
    requested_node_pools: list[str] = Field(default_factory=list, alias="requestedNodePools")
    current_node_pools: list[str] = Field(default_factory=list, alias="currentNodePools")
    images: list[str] = Field(default_factory=list)
    command: str | None = None
    arguments: str | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict, alias="environmentVariables")
    urls: list[str] = Field(default_factory=list)
    datasources: list[JsonObject] = Field(default_factory=list)
    environments: list[JsonObject] = Field(default_factory=list)
    external_connections: list[JsonObject] = Field(default_factory=list, alias="externalConnections")
    distributed_framework: str | None = Field(default=None, alias="distributedFramework")
    additional_fields: JsonObject = Field(default_factory=dict, alias="additionalFields")
    conditions: list[JsonObject] = Field(default_factory=list)
    # Accepted from agents but never served: the upstream schema marks it writeOnly.
    children_ids: list[JsonObject] = Field(default_factory=list, alias="childrenIds")
    actions_support: JsonObject = Field(default_factory=dict, alias="actionsSupport")
    idle_gpus: Count | None = Field(default=None, alias="idleGpus")
    idle_allocated_gpus: float | None = Field(default=None, ge=0, alias="idleAllocatedGpus")
    guaranteed_runtime_ends_at: datetime | None = Field(default=None, alias="guaranteedRuntimeEndsAt")
    ai_application_id: str | None = Field(default=None, alias="aiApplicationId")
    ai_application_name: str | None = Field(default=None, alias="aiApplicationName")
    source_api: str | None = Field(default=None, alias="sourceApi", pattern=r"^WorkloadsV2$")
    topology: JsonObject | None = None
    pending_scheduling_messages: list[PendingSchedulingMessage] | None = Field(
        default=None, alias="pendingSchedulingMessages"
    )
    total_pending_time_seconds: Count = Field(default=0, alias="totalPendingTimeSeconds")
    total_running_time_seconds: Count = Field(default=0, alias="totalRunningTimeSeconds")

    @model_validator(mode="after")
    def _no_nul(self, info: ValidationInfo) -> WorkloadIn:
        # Text stored in its own column (PostgreSQL text cannot hold NUL; JSON documents escape it).
        if info.context is not None and info.context.get(NO_NUL_CHECKED):
            return self
        for key in _COLUMN_TEXT:
            value = getattr(self, key)
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{key} must not contain a NUL character")
        for key, values in (("currentNodePools", self.current_node_pools), ("images", self.images)):
            if any("\x00" in v for v in values):
                raise ValueError(f"{key} must not contain a NUL character")
        return self

    @field_validator(
        "created_at",
        "phase_updated_at",
        "updated_at",
        "completed_at",
        "k8s_phase_updated_at",
        "guaranteed_runtime_ends_at",
    )
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps need a UTC offset or Z")
        return value


def allocated_gpu(w: WorkloadIn) -> float | None:
    resources = w.allocated_resources or {}
    value = resources.get("gpu")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def namespace_of(w: WorkloadIn) -> str:
    """The namespace served: the given one, else the project's (``runai-<project>``)."""
    return w.namespace or f"runai-{w.project_name}"


def search_text(w: WorkloadIn) -> str:
    """Case-folded haystack for ``search`` (the fields docs/contract.md §5 names, as served).
    The category (resolved through the catalog) and the phase are matched by the query layer against
    their few possible values instead: keeping the phase out of the text means a phase change does not
    rewrite the text index."""
    parts = [
        w.name,
        w.project_name,
        w.department_name,
        w.submitted_by or "",
        w.type,
        namespace_of(w),
        *w.images,
    ]
    return fold(SEARCH_SEPARATOR.join(parts))


def build_row(
    w: WorkloadIn,
    *,
    workload_id: str,
    tenant_id: int,
    clock: PhaseClock,
    updated_at_ms: int,
    deleted_at_ms: int | None,
    completed_at_ms: int | None,
) -> dict[str, Any]:
    """Every stored column of a workload row, ``doc`` included, from one observation."""
    created_ms = to_ms(w.created_at)
    phase_updated_ms = to_ms(w.phase_updated_at) if w.phase_updated_at else created_ms
    k8s_updated_ms = to_ms(w.k8s_phase_updated_at) if w.k8s_phase_updated_at else phase_updated_ms
    guaranteed_ms = to_ms(w.guaranteed_runtime_ends_at) if w.guaranteed_runtime_ends_at else None
    namespace = namespace_of(w)
    gpu = allocated_gpu(w)
    cluster_id = str(w.cluster_id)
    doc: JsonDict = {
        "tenantId": tenant_id,
        "id": workload_id,
        "clusterId": cluster_id,
        "name": w.name,
        "namespace": namespace,
        "projectId": w.project_id,
        "projectName": w.project_name,
        "departmentId": w.department_id,
        "departmentName": w.department_name,
        "type": w.type,
        "source": w.source,
        "submittedBy": w.submitted_by,
        "phase": str(w.phase),
        "phaseMessage": w.phase_message,
        "phaseReason": w.phase_reason,
        "k8sPhase": w.k8s_phase or _K8S_PHASE_OF.get(w.phase, "Unknown"),
        "k8sPhaseUpdatedAt": format_ms(k8s_updated_ms),
        "phaseUpdatedAt": format_ms(phase_updated_ms),
        "createdAt": format_ms(created_ms),
        "updatedAt": format_ms(updated_at_ms),
        "completedAt": format_ms(completed_at_ms),
        "deletedAt": format_ms(deleted_at_ms),
        "runningPods": w.running_pods,
        "requestedPods": w.requested_pods,
        "workloadRequestedResources": w.workload_requested_resources,
        "podsRequestedResources": w.pods_requested_resources,
        "allocatedResources": w.allocated_resources,
        "requestedNodePools": w.requested_node_pools,
        "currentNodePools": w.current_node_pools,
        "images": w.images,
        "command": w.command,
        "arguments": w.arguments,
        "environmentVariables": w.environment_variables,
        "urls": w.urls,
        "datasources": w.datasources,
        "environments": w.environments,
        "externalConnections": w.external_connections,
        "distributedFramework": w.distributed_framework,
        "additionalFields": w.additional_fields,
        "conditions": w.conditions,
        "actionsSupport": w.actions_support,
        "idleGpus": w.idle_gpus,
        "idleAllocatedGpus": w.idle_allocated_gpus,
        "guaranteedRuntimeEndsAt": format_ms(guaranteed_ms),
        "aiApplicationId": w.ai_application_id,
        "aiApplicationName": w.ai_application_name,
        "sourceApi": w.source_api,
        "topology": w.topology,
    }
    # Optional string fields the upstream schema does not mark nullable are left out when unknown,
    # rather than sent as null (required fields are always present, null when unknown).
    for key in _OMITTED_WHEN_NULL:
        if doc[key] is None:
            del doc[key]
    return {
        "id": workload_id,
        "cluster_id": cluster_id,
        "name": w.name,
        "namespace": namespace,
        "project_id": w.project_id,
        "project_name": w.project_name,
        "department_id": w.department_id,
        "department_name": w.department_name,
        "type": w.type,
        "own_category": w.category,
        "own_priority": w.priority_class_name,
        "own_preemptible": w.preemptible,
        "submitted_by": w.submitted_by,
        "phase": str(w.phase),
        "distributed_framework": w.distributed_framework,
        "ai_application_id": w.ai_application_id,
        "ai_application_name": w.ai_application_name,
        "created_at": created_ms,
        "deleted_at": deleted_at_ms,
        "completed_at": completed_at_ms,
        "phase_updated_at": phase_updated_ms,
        "guaranteed_runtime_ends_at": guaranteed_ms,
        "updated_at": updated_at_ms,
        "allocated_gpu": gpu,
        "idle_gpus": w.idle_gpus,
        "idle_allocated_gpus": w.idle_allocated_gpus,
        "pending_closed_ms": clock.pending_closed_ms,
        "pending_since_ms": clock.pending_since_ms,
        "running_closed_ms": clock.running_closed_ms,
        "running_since_ms": clock.running_since_ms,
        "first_nodepool": w.current_node_pools[0] if w.current_node_pools else None,
        "search_text": search_text(w),
        "doc": orjson.dumps(doc).decode(),
        "pending_messages": (
            orjson.dumps(
                [m.model_dump(by_alias=True, exclude_none=True) for m in w.pending_scheduling_messages]
            ).decode()
            if w.pending_scheduling_messages is not None
            else None
        ),
    }


def completed_at_for(w: WorkloadIn, previous_ms: int | None, phase_updated_ms: int) -> int | None:
    """When the workload reached Completed or Failed: given, kept, or the time of that phase change."""
    if w.completed_at is not None:
        return to_ms(w.completed_at)
    if w.phase in TERMINAL_PHASES:
        return previous_ms if previous_ms is not None else phase_updated_ms
    return None


@dataclass(frozen=True, slots=True)
class Previous:
    """What the store held for a workload before a new observation of it."""

    phase: str
    phase_updated_ms: int
    clock: PhaseClock
    completed_ms: int | None


Record = TypeVar("Record", bound=WorkloadIn)


@dataclass(frozen=True, slots=True)
class Transition(Generic[Record]):
    record: Record  # the observation, with phaseUpdatedAt filled in where it was derived
    phase_at_ms: int
    clock: PhaseClock
    completed_at_ms: int | None


def transition(record: Record, previous: Previous | None, changed_at_ms: int) -> Transition[Record]:
    """The phase facts an observation implies, given what was stored before it (None: a new workload).

    When ``phaseUpdatedAt`` is not reported, a new workload entered its phase when it was created, a
    phase change happened at ``changed_at_ms`` (when it was observed), and an unchanged phase keeps the
    time it had. A phase change closes the open Pending/Running interval and opens the next one."""
    if record.phase_updated_at is not None:
        phase_at = to_ms(record.phase_updated_at)
    elif previous is None:
        phase_at = to_ms(record.created_at)  # what build_row stores when phaseUpdatedAt is absent
    else:
        phase_at = changed_at_ms if previous.phase != record.phase else previous.phase_updated_ms
        record = record.model_copy(update={"phase_updated_at": from_ms(phase_at)})
    if previous is None:
        clock = PhaseClock.start(
            record.phase,
            phase_at,
            record.total_pending_time_seconds * 1000,
            record.total_running_time_seconds * 1000,
        )
        prior_completed = None
    elif previous.phase == record.phase:
        clock, prior_completed = previous.clock, previous.completed_ms
    else:
        clock, prior_completed = previous.clock.enter(record.phase, phase_at), None
    return Transition(record, phase_at, clock, completed_at_for(record, prior_completed, phase_at))


def set_doc_fields(doc: str, **values: int | None) -> str:
    """Rewrite instants in a stored document (deletion sets ``deletedAt``/``updatedAt``)."""
    parsed = orjson.loads(doc)
    for key, ms in values.items():
        parsed[key] = format_ms(ms)
    return orjson.dumps(parsed).decode()


def render(
    row: Any,
    catalog: CatalogSnapshot,
    now_ms: int,
    *,
    pending_messages: str | bool | None = False,
) -> str:
    """A stored row as the wire record: the stored document plus the fields that depend on the
    clock and the catalog. ``pending_messages`` (a JSON text, None, or False to omit) adds
    ``pendingSchedulingMessages`` for ``WorkloadDetailed``."""
    priority = catalog.priority_of(row.type, row.own_priority)
    preemptible = (
        row.own_preemptible
        if row.own_preemptible is not None
        else (priority.preemptible if priority is not None else None)
    )
    tail: JsonDict = {
        "category": catalog.category_of(row.type, row.own_category),
        "priorityClassName": priority.name if priority is not None else row.own_priority,
        "priority": priority.value if priority is not None else None,
        "preemptible": preemptible,
        "totalPendingTimeSeconds": _elapsed_seconds(row.pending_closed_ms, row.pending_since_ms, now_ms),
        "totalRunningTimeSeconds": _elapsed_seconds(row.running_closed_ms, row.running_since_ms, now_ms),
    }
    extra = orjson.dumps(tail).decode()
    text = f"{row.doc[:-1]},{extra[1:]}"
    if pending_messages is not False:
        messages = pending_messages if isinstance(pending_messages, str) else "null"
        text = f'{text[:-1]},"pendingSchedulingMessages":{messages}}}'
    return text


def _elapsed_seconds(closed_ms: int, since_ms: int | None, now_ms: int) -> int:
    return PhaseClock(closed_ms, since_ms).pending_seconds(now_ms)
