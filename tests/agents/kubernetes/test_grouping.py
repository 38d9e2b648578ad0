"""The agent's rules without a cluster: top owners, Run:ai's second-highest grouping, phases, resources."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.kubernetes import manifests as m
from workplane.agents.kubernetes.cluster import ClusterState
from workplane.agents.kubernetes.kinds import group_versions, served_in
from workplane.agents.kubernetes.objects import Owner, Pod, api_group
from workplane.agents.kubernetes.status import from_pods, workload_phase
from workplane.agents.kubernetes.workloads import requested
from workplane.domain.phases import Phase

_uids = iter(range(10_000))


def _with_uid(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["uid"] = f"00000000-0000-0000-0000-{next(_uids):012d}"
    obj["metadata"]["creationTimestamp"] = "2026-12-01T10:00:00Z"
    return obj


def _owner(state: ClusterState, obj: dict[str, Any]) -> Owner:
    owner = Owner.from_object(obj, obj["kind"], api_group(obj["apiVersion"]))
    state.put_owner(owner)
    state.watched.add((owner.kind, owner.group))
    return owner


def test_a_deployment_pod_belongs_to_the_deployment_through_its_replicaset() -> None:
    state = ClusterState()
    deployment = _with_uid(m.deployment_nginx("ns"))
    replicaset = _with_uid(m.replicaset_of(deployment))
    _owner(state, deployment)
    _owner(state, replicaset)
    pod = Pod.from_object(_with_uid(m.pod("p", replicaset, "ns", "nginx")))
    grouping = state.grouping(pod)
    assert grouping is not None
    assert (grouping.workload.uid, grouping.type) == (deployment["metadata"]["uid"], "Deployment")


def test_a_knative_pod_belongs_to_the_service_and_to_the_revision_that_runs_it() -> None:
    """Pod → ReplicaSet → Deployment → Revision → Configuration → Service: the workload is the Service,
    the pod's revision is the Revision's uid; none while the Revision is not seen yet (the pod waits),
    and none for a Deployment's pod outside Knative."""
    state = ClusterState()
    service = _with_uid(m.knative_service("ns"))
    configuration = _with_uid(m.configuration_of(service))
    revision = _with_uid(m.revision_of(configuration, 1))
    deployment = _with_uid(m.revision_deployment(revision))
    replicaset = _with_uid(m.revision_replicaset(deployment, "7d9c5b8f4"))
    pod = Pod.from_object(_with_uid(m.pod("hello-pod", replicaset, "ns", m.HELLO_IMAGE)))
    for obj in (service, configuration, deployment, replicaset):
        _owner(state, obj)
    state.watched.add(("Revision", "serving.knative.dev"))
    assert state.grouping(pod) is None
    assert state.revision_of(pod) is None
    _owner(state, revision)
    grouping = state.grouping(pod)
    assert grouping is not None
    assert (grouping.workload.uid, grouping.type) == (service["metadata"]["uid"], "Service")
    assert state.revision_of(pod) == revision["metadata"]["uid"]
    nginx = _with_uid(m.deployment_nginx("ns"))
    nginx_set = _with_uid(m.replicaset_of(nginx))
    _owner(state, nginx)
    _owner(state, nginx_set)
    assert state.revision_of(Pod.from_object(_with_uid(m.pod("p", nginx_set, "ns", "nginx")))) is None


def test_runai_workloads_group_their_pods_at_the_second_highest_owner() -> None:
    state = ClusterState()
    training = _with_uid(m.training_workload("ns"))
    runaijob = _with_uid(m.runaijob_of(training))
    _owner(state, training)
    _owner(state, runaijob)
    pod = Pod.from_object(_with_uid(m.pod("p", runaijob, "ns", "img")))
    grouping = state.grouping(pod)
    assert grouping is not None
    assert grouping.type == "Training"
    assert grouping.workload.uid == training["metadata"]["uid"]
    assert grouping.group.uid == runaijob["metadata"]["uid"]


def test_a_pod_waits_for_a_watched_owner_not_seen_yet_and_stands_alone_under_an_unwatched_one() -> None:
    state = ClusterState()
    deployment = _with_uid(m.deployment_nginx("ns"))
    replicaset = _with_uid(m.replicaset_of(deployment))
    state.watched.add(("ReplicaSet", "apps"))
    pod = Pod.from_object(_with_uid(m.pod("p", replicaset, "ns", "img")))
    state.put_pod(pod)
    state.regroup()
    assert pod.uid in state.waiting
    _owner(state, deployment)
    _owner(state, replicaset)
    state.regroup()
    assert state.pod_workload[pod.uid] == deployment["metadata"]["uid"]

    operator_owned = _with_uid(m.pod("q", None, "ns", "img"))
    operator_owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w-1", "controller": True}
    ]
    lone = Pod.from_object(operator_owned)
    grouping = state.grouping(lone)
    assert grouping is not None
    assert (grouping.workload.uid, grouping.type) == (lone.uid, "Pod")


def _pod(status: str, *, node: str | None = None) -> Pod:
    obj = _with_uid(m.pod("p", None, "ns", "img"))
    if node is not None:
        obj = m.running(obj, node)
    obj["status"]["phase"] = status
    return Pod.from_object(obj)


@pytest.mark.parametrize(
    ("pods", "phase"),
    [
        ([], Phase.CREATING),
        (["Pending"], Phase.PENDING),
        (["Running@n"], Phase.RUNNING),
        (["Running@n", "Pending"], Phase.PENDING),
        (["Pending@n"], Phase.INITIALIZING),
        (["Succeeded@n"], Phase.COMPLETED),
        (["Succeeded@n", "Failed@n"], Phase.FAILED),
    ],
)
def test_phase_from_pods(pods: list[str], phase: Phase) -> None:
    built = [_pod(p.partition("@")[0], node=p.partition("@")[2] or None) for p in pods]
    assert from_pods(built).phase == phase


def test_an_owner_verdict_comes_before_its_pods() -> None:
    job = _with_uid(m.job_complete(m.job_pi("ns")))
    owner = Owner.from_object(job, "Job", "batch")
    verdict = workload_phase(owner, owner, [_pod("Running", node="n")])
    assert verdict.phase == Phase.COMPLETED
    assert verdict.since == "2026-12-01T10:05:00Z"
    suspended = Owner.from_object(_with_uid({**m.job_pi("ns"), "spec": {"suspend": True}}), "Job", "batch")
    assert workload_phase(suspended, suspended, []).phase == Phase.STOPPED
    scaled = Owner.from_object(_with_uid(m.deployment_nginx("ns", replicas=0)), "Deployment", "apps")
    assert workload_phase(scaled, scaled, []).phase == Phase.STOPPED
    deleting = _with_uid(m.deployment_nginx("ns"))
    deleting["metadata"]["deletionTimestamp"] = "2026-12-01T11:00:00Z"
    owner = Owner.from_object(deleting, "Deployment", "apps")
    assert workload_phase(owner, owner, [_pod("Running", node="n")]).phase == Phase.TERMINATING


def test_gpu_requests_from_devices_fractions_and_memory() -> None:
    devices = Pod.from_object(_with_uid(m.pod("a", None, "ns", "img", gpu=2, memory="2Gi")))
    fraction = Pod.from_object(_with_uid(m.pod("b", None, "ns", "img", annotations={"gpu-fraction": "0.25"})))
    memory = Pod.from_object(_with_uid(m.pod("c", None, "ns", "img", annotations={"gpu-memory": "4096"})))
    assert requested([devices.resources])["gpu"] == {"request": 2}
    assert requested([devices.resources])["cpuMemory"] == {"request": "2048Mi"}
    assert requested([fraction.resources])["gpuRequestType"] == "portion"
    assert requested([fraction.resources])["gpu"] == {"request": 0.25}
    assert requested([memory.resources])["gpuMemory"] == {"request": "4096Mi"}
    assert requested([devices.resources, fraction.resources])["gpu"] == {"request": 2.25}


def test_discovery_picks_listable_kinds_and_preferred_versions() -> None:
    groups = group_versions(
        {
            "groups": [
                {
                    "name": "kubeflow.org",
                    "versions": [{"version": "v1alpha1"}, {"version": "v1"}],
                    "preferredVersion": {"version": "v1"},
                }
            ]
        }
    )
    assert groups == {"kubeflow.org": ["v1", "v1alpha1"]}
    served = served_in(
        {
            "resources": [
                {"name": "pytorchjobs", "kind": "PyTorchJob", "namespaced": True, "verbs": ["list", "watch"]},
                {"name": "pytorchjobs/status", "kind": "PyTorchJob", "namespaced": True, "verbs": ["get"]},
                {"name": "tokenreviews", "kind": "TokenReview", "namespaced": False, "verbs": ["create"]},
            ]
        },
        "kubeflow.org",
        "v1",
    )
    assert list(served) == ["PyTorchJob"]
    assert served["PyTorchJob"].plural == "pytorchjobs"


def test_a_pod_completes_when_its_last_container_terminates_and_only_once_it_has_finished() -> None:
    running = m.running(_with_uid(m.pod("p", None, "ns", "img")), "node-1")
    sidecar = {
        "name": "log-shipper",
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-12-01T10:03:00Z"}},
    }
    running["status"]["containerStatuses"].append(sidecar)
    assert Pod.from_object(running).completed_at is None  # its sidecar finished, the pod runs on
    finished = m.succeeded(running)
    assert Pod.from_object(finished).completed_at == "2026-12-01T10:05:00Z"  # the later of the two
    finished["status"]["phase"] = "Failed"
    finished["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert Pod.from_object(finished).completed_at == "2026-12-01T10:03:00Z"
