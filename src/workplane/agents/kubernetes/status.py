"""A workload's Run:ai phase, worked out from its owner's status and its pods.

The rules, per kind, are written down in docs/kubernetes-agent.md ("Phases"). In short: the owner's
own verdict comes first (a finished Job is Completed or Failed whatever its pods, a suspended one is
Stopped, a Deployment scaled to zero is Stopped); otherwise the pods say where the workload stands
(no pods yet: Creating; a pod the scheduler cannot place: Pending; pods placed but starting:
Initializing; pods running: Running, or Degraded where a serving kind runs fewer ready replicas than
it wants). A workload whose top owner is being deleted is Terminating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workplane.agents.kubernetes.objects import JsonObject, Owner, Pod
from workplane.domain.phases import Phase

# Kinds whose status carries Kubeflow-style conditions (type Succeeded/Completed/Failed/Suspended).
_CONDITION_JOBS = frozenset(
    {"PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "JAXJob", "JobSet", "TrainJob", "RunaiJob", "AMLJob"}
)
# Long-running kinds that keep a number of replicas up.
_REPLICATED = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "LeaderWorkerSet"})
# Serving kinds whose readiness is a Ready condition.
_READY_CONDITION = frozenset({"InferenceService", "Service", "RayService", "Notebook", "NIMService"})
# Pod waiting reasons that are failures to start rather than a start in progress.
_START_FAILURES = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CrashLoopBackOff"}
)


@dataclass(frozen=True, slots=True)
class Verdict:
    phase: Phase
    message: str | None = None
    # When the owner's status says when it entered the phase (a Job's completion time, a condition's
    # lastTransitionTime); None leaves it to the agent's first sight of the phase.
    since: str | None = None


def _conditions(status: JsonObject) -> dict[str, JsonObject]:
    return {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def _true(conditions: dict[str, JsonObject], *types: str) -> JsonObject | None:
    return next((conditions[t] for t in types if conditions.get(t, {}).get("status") == "True"), None)


def _finished(owner: Owner) -> Verdict | None:
    """The owner's own word that it completed, failed or is stopped, when it says so."""
    status, kind = owner.status, owner.kind
    conditions = _conditions(status)
    if kind in ("Job", *_CONDITION_JOBS):
        if done := _true(conditions, "Complete", "Succeeded", "Completed", "SuccessCriteriaMet"):
            return Verdict(
                Phase.COMPLETED,
                done.get("message"),
                status.get("completionTime") or done.get("lastTransitionTime"),
            )
        if failed := _true(conditions, "Failed", "FailureTarget"):
            return Verdict(
                Phase.FAILED, failed.get("message") or failed.get("reason"), failed.get("lastTransitionTime")
            )
        if owner.spec.get("suspend") is True or _true(conditions, "Suspended") is not None:
            return Verdict(Phase.STOPPED, "suspended")
    elif kind == "RayJob":
        job_status = str(status.get("jobStatus") or "")
        if job_status == "SUCCEEDED":
            return Verdict(Phase.COMPLETED, status.get("message"), status.get("endTime"))
        if job_status in ("FAILED",) or status.get("jobDeploymentStatus") == "Failed":
            return Verdict(Phase.FAILED, status.get("message") or status.get("reason"), status.get("endTime"))
        if job_status == "STOPPED" or status.get("jobDeploymentStatus") == "Suspended":
            return Verdict(Phase.STOPPED, status.get("message"))
    elif kind == "Workflow":
        phase = str(status.get("phase") or "")
        if phase == "Succeeded":
            return Verdict(Phase.COMPLETED, status.get("message"), status.get("finishedAt"))
        if phase in ("Failed", "Error"):
            return Verdict(Phase.FAILED, status.get("message"), status.get("finishedAt"))
    elif kind in _REPLICATED or kind == "CronJob":
        if owner.spec.get("replicas") == 0 or owner.spec.get("suspend") is True:
            return Verdict(Phase.STOPPED, "scaled to zero" if kind != "CronJob" else "suspended")
    elif kind == "VirtualMachineInstance" and status.get("phase") in ("Succeeded", "Failed"):
        return Verdict(Phase.COMPLETED if status["phase"] == "Succeeded" else Phase.FAILED)
    return None


def from_pods(pods: Sequence[Pod]) -> Verdict:
    """Where a workload stands by its pods alone."""
    active = [p for p in pods if p.active and not p.deleting]
    if not active:
        if any(p.phase == "Failed" for p in pods):
            failed = next(p for p in pods if p.phase == "Failed")
            return Verdict(Phase.FAILED, f"pod {failed.name} failed")
        if pods and all(p.phase == "Succeeded" for p in pods):
            return Verdict(Phase.COMPLETED)
        if any(p.deleting for p in pods):
            return Verdict(Phase.TERMINATING)
        return Verdict(Phase.CREATING)
    unplaced = [p for p in active if p.node is None]
    if unplaced:
        return Verdict(Phase.PENDING, unplaced[0].unschedulable)
    failing = next((p for p in active if p.waiting in _START_FAILURES), None)
    starting = [p for p in active if p.phase != "Running" or p.initializing]
    if failing is not None and failing.phase != "Running":
        return Verdict(Phase.INITIALIZING, f"{failing.waiting}: {failing.waiting_message or failing.name}")
    if starting:
        first = starting[0]
        return Verdict(Phase.INITIALIZING, first.waiting)
    return Verdict(Phase.RUNNING)


def _desired(owner: Owner) -> int | None:
    replicas = owner.spec.get("replicas")
    return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None


def workload_phase(top: Owner | Pod, group: Owner | Pod, pods: Sequence[Pod]) -> Verdict:
    """``top`` is the workload's object; ``group`` the object its pods are grouped under (the same,
    except for Run:ai's CRDs, grouped at the second-highest owner)."""
    if isinstance(top, Pod):
        if top.deleting:
            return Verdict(Phase.TERMINATING)
        return from_pods([top])
    if top.deleting:
        return Verdict(Phase.TERMINATING)
    for owner in (group, top):
        if isinstance(owner, Owner) and (verdict := _finished(owner)) is not None:
            return verdict
    by_pods = from_pods(pods)
    owner = group if isinstance(group, Owner) else top
    if owner.kind in _REPLICATED and by_pods.phase == Phase.RUNNING:
        desired = _desired(owner)
        ready = sum(1 for p in pods if p.ready and p.active)
        if desired is not None and ready < desired:
            return Verdict(Phase.DEGRADED, f"{ready} of {desired} replicas ready")
    if owner.kind in _READY_CONDITION and by_pods.phase == Phase.RUNNING:
        ready_condition = _conditions(owner.status).get("Ready")
        if ready_condition is not None and ready_condition.get("status") == "False":
            return Verdict(Phase.DEGRADED, ready_condition.get("message") or ready_condition.get("reason"))
    if owner.kind == "CronJob" and by_pods.phase in (Phase.CREATING, Phase.COMPLETED, Phase.FAILED):
        # Between runs a CronJob waits for its next schedule: it is up, with nothing to run.
        return Verdict(Phase.RUNNING, "waiting for the next scheduled run")
    return by_pods
