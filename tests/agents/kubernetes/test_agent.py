"""``workplane agent kubernetes`` end to end: objects in the (test) cluster → agent → server → API.

Each scenario changes the cluster through the test API server and waits (bounded) until the API's
workloads say what the objects say. Why the cluster is a protocol-speaking test server and not a real
one: ``apiserver.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from runai import models
from runai.api_client import ApiClient
from runai.configuration import Configuration
from runai.runai_client import RunaiClient

from tests.agents.kubernetes import manifests as m
from tests.agents.kubernetes.apiserver import FakeCluster
from tests.agents.kubernetes.conftest import Agent, wait_for, workloads
from tests.deploy import rbac
from tests.server import Server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def runai(server: Server) -> Iterator[RunaiClient]:
    """runapy signed in as the administrator, once per server: the probes below poll through it many
    times a second, and each sign-in costs the server a full-strength check of the secret."""
    configuration = Configuration(
        client_id=server.client_id, client_secret=server.client_secret, runai_base_url=server.base_url
    )
    with RunaiClient(ApiClient(configuration)) as client:
        yield client


def _workload(agent: Agent, name: str, **expected: Any) -> dict[str, Any] | None:
    """The API's live workload ``name`` once each expected field has the expected value."""
    found = workloads(agent.server, agent.cluster_id).get(name)
    if found is None or any(found.get(k) != v for k, v in expected.items()):
        return None
    return found


def _pods(
    runai: RunaiClient, workload_id: str, *, deleted: bool = False, count: int | None = None, **expected: Any
) -> list[Any] | None:
    """The workload's pods through runapy (``get_workload_pods``), parsed by the client's own model,
    once there are ``count`` of them (when given) and each has the expected fields."""
    page = runai.workloads.pods.get_workload_pods(workload_id, deleted=True if deleted else None).data
    pods = [models.Pod1.from_dict(p) for p in page["pods"]]
    if count is not None and len(pods) != count:
        return None
    if not pods or any(p.to_dict().get(k) != v for p in pods for k, v in expected.items()):
        return None
    return pods


def _events(runai: RunaiClient, workload_id: str) -> list[Any] | None:
    """The workload's events through runapy (``get_workload_events``), parsed by the client's model."""
    page = runai.workloads.events.get_workload_events(workload_id).data
    return [models.Event2.from_dict(e) for e in page["events"]] or None


def _setup_cluster(cluster: FakeCluster) -> None:
    cluster.create(m.namespace("team-a", {"runai/queue": "proj-a"}))
    cluster.create(m.namespace("team-b"))
    cluster.create(m.node("node-1", pool="a100"))
    cluster.create(m.node("node-2"))
    cluster.create(
        {
            "apiVersion": "scheduling.run.ai/v2",
            "kind": "Queue",
            "metadata": {"name": "proj-a"},
            "spec": {"parentQueue": "research", "resources": {"gpu": {"quota": 8}}},
        }
    )


def test_workloads_follow_the_cluster(agent: Agent, cluster: FakeCluster, runai: RunaiClient) -> None:
    _setup_cluster(cluster)
    job = cluster.create(m.job_pi("team-a"))
    job_pod = cluster.create(m.pod("pi-x7k2p", job, "team-a", "perl:5.34.0", gpu=1))
    cluster.create(m.scheduler_event(job_pod))

    with agent.running():
        # Listed at start: a Job whose pod the scheduler cannot place.
        pi = wait_for("the pending Job", lambda: _workload(agent, "pi", phase="Pending"), agent)
        assert pi["type"] == "Job"
        assert (pi["projectName"], pi["departmentName"]) == ("proj-a", "research")
        assert pi["namespace"] == "team-a"
        assert "Insufficient nvidia.com/gpu" in pi["phaseMessage"]
        assert pi["submittedBy"] == "alice"
        assert pi["images"] == ["perl:5.34.0"]
        assert pi["workloadRequestedResources"]["gpu"]["request"] == 1
        assert pi["workloadRequestedResources"]["cpu"]["request"] == 0.5
        # The scheduler's event about its pod, as runapy reads the workload's events.
        events = wait_for("the scheduler's event", lambda: _events(runai, pi["id"]), agent)
        assert [(e.type, e.reason, e.involved_object.name) for e in events] == [
            ("Warning", "FailedScheduling", "pi-x7k2p")
        ]

        # Watched: scheduled and running on a node of the a100 pool.
        cluster.update(m.running(job_pod, "node-1"))
        pi = wait_for("the running Job", lambda: _workload(agent, "pi", phase="Running"), agent)
        assert pi["runningPods"] == 1
        assert pi["allocatedResources"]["gpu"] == 1
        assert pi["currentNodePools"] == ["a100"]
        # Its pod, as runapy reads it.
        pods = wait_for("the Job's pod", lambda: _pods(runai, pi["id"], k8sPhase="Running"), agent)
        assert [(p.name, p.node_name, p.current_node_pool) for p in pods] == [("pi-x7k2p", "node-1", "a100")]
        assert pods[0].containers[0].image == "perl:5.34.0"
        assert pods[0].workload_id == pi["id"]

        # A Deployment's pods are grouped through its ReplicaSet; a namespace without the project
        # label is its own project.
        deployment = cluster.create(m.deployment_nginx("team-b", replicas=2))
        replicaset = cluster.create(m.replicaset_of(deployment))
        nginx_pods = [
            cluster.create(
                m.running(
                    m.pod(f"nginx-deployment-66b6c48dd5-{i}", replicaset, "team-b", "nginx:1.14.2"), "node-2"
                )
            )
            for i in range(2)
        ]
        nginx = wait_for("the Deployment", lambda: _workload(agent, "nginx-deployment", runningPods=2), agent)
        assert (nginx["type"], nginx["phase"], nginx["projectName"]) == ("Deployment", "Running", "team-b")
        assert nginx["currentNodePools"] == ["default"]
        assert "nginx-deployment-66b6c48dd5" not in workloads(agent.server, agent.cluster_id)

        # One replica of two gone: Degraded.
        cluster.delete("v1", "Pod", nginx_pods[1]["metadata"]["name"], "team-b")
        nginx = wait_for(
            "the degraded Deployment", lambda: _workload(agent, "nginx-deployment", phase="Degraded"), agent
        )
        assert nginx["runningPods"] == 1

        # Kubeflow's PyTorchJob: one workload for its master and worker pods.
        pytorch = cluster.create(m.pytorchjob_simple("team-a"))
        for role in ("master", "worker"):
            p = m.pod(
                f"pytorch-simple-{role}-0",
                pytorch,
                "team-a",
                "docker.io/kubeflowkatib/pytorch-mnist:v1beta1-45c5727",
                gpu=1,
            )
            cluster.create(m.running(p, "node-1"))
        torch = wait_for("the PyTorchJob", lambda: _workload(agent, "pytorch-simple", runningPods=2), agent)
        assert (torch["type"], torch["phase"]) == ("PyTorchJob", "Running")
        assert torch["allocatedResources"]["gpu"] == 2

        # Run:ai's TrainingWorkload: the native type, its pods grouped at the RunaiJob below it, and a
        # fractional GPU from Run:ai's annotation.
        training = cluster.create(m.training_workload("team-a"))
        runaijob = cluster.create(m.runaijob_of(training))
        cluster.create(
            m.pod(
                "train-mnist-0-0",
                runaijob,
                "team-a",
                "gcr.io/run-ai-demo/quickstart",
                annotations={"gpu-fraction": "0.5"},
            )
        )
        train = wait_for(
            "the TrainingWorkload", lambda: _workload(agent, "train-mnist", phase="Pending"), agent
        )
        assert train["type"] == "Training"
        assert train["workloadRequestedResources"]["gpu"]["request"] == 0.5
        assert train["workloadRequestedResources"]["gpuRequestType"] == "portion"

        # The Job completes.
        cluster.update(m.job_complete(cluster.get("batch/v1", "Job", "pi", "team-a")))
        cluster.update(m.succeeded(cluster.get("v1", "Pod", "pi-x7k2p", "team-a")))
        pi = wait_for("the completed Job", lambda: _workload(agent, "pi", phase="Completed"), agent)
        assert pi["completedAt"] is not None
        # The pod completed when its container terminated.
        done = wait_for("the pod's completion", lambda: _pods(runai, pi["id"], k8sPhase="Succeeded"), agent)
        assert done[0].completed_at.isoformat() == "2026-12-01T10:05:00+00:00"

        # The Deployment is deleted (the garbage collector takes its ReplicaSet and pods with it).
        cluster.delete("v1", "Pod", nginx_pods[0]["metadata"]["name"], "team-b")
        cluster.delete("apps/v1", "ReplicaSet", replicaset["metadata"]["name"], "team-b")
        cluster.delete("apps/v1", "Deployment", "nginx-deployment", "team-b")
        wait_for(
            "the Deployment's deletion",
            lambda: "nginx-deployment" in workloads(agent.server, agent.cluster_id, deleted=True),
            agent,
        )
        assert "nginx-deployment" not in workloads(agent.server, agent.cluster_id)

    # Kinds whose CRDs are not installed were skipped, not errors.
    assert "not served by this cluster (skipped)" in agent.log
    assert "RayJob.ray.io" in agent.log
    assert "Traceback" not in agent.log


def _revision_pods(runai: RunaiClient, revision_id: str) -> int:
    """How many live pods runapy's pod count says the revision has (``revisionId==``)."""
    counted: int = runai.workloads.pods.count_pods(filter_by=[f"revisionId=={revision_id}"]).data["count"]
    return counted


def test_a_knative_services_pods_come_with_their_revision(
    agent: Agent, cluster: FakeCluster, runai: RunaiClient
) -> None:
    """Pod → ReplicaSet → Deployment → Revision → Configuration → Service: one workload, the Service,
    whose pods each carry the uid of the Revision that runs them; a plain Deployment's pods have none."""
    _setup_cluster(cluster)
    service = cluster.create(m.knative_service("team-b"))
    configuration = cluster.create(m.configuration_of(service))

    def revision_pod(generation: int, target: str, pod_template_hash: str) -> str:
        revision = cluster.create(m.revision_of(configuration, generation, target))
        deployment = cluster.create(m.revision_deployment(revision))
        replicaset = cluster.create(m.revision_replicaset(deployment, pod_template_hash))
        name = f"{replicaset['metadata']['name']}-x2x8q"
        cluster.create(m.running(m.pod(name, replicaset, "team-b", m.HELLO_IMAGE), "node-2"))
        uid: str = revision["metadata"]["uid"]
        return uid

    first = revision_pod(1, "World", "7d9c5b8f4")
    deployment = cluster.create(m.deployment_nginx("team-b", replicas=1))
    replicaset = cluster.create(m.replicaset_of(deployment))
    nginx_pod = m.pod("nginx-deployment-66b6c48dd5-0", replicaset, "team-b", "nginx:1.14.2")
    cluster.create(m.running(nginx_pod, "node-2"))

    with agent.running():
        hello = wait_for("the Knative Service", lambda: _workload(agent, "hello", runningPods=1), agent)
        assert hello["type"] == "Service"
        assert not {"hello-00001", "hello-00001-deployment"} & set(workloads(agent.server, agent.cluster_id))
        pods = wait_for("the Service's pod", lambda: _pods(runai, hello["id"], count=1), agent)
        assert [(p.name, str(p.revision_id)) for p in pods] == [
            ("hello-00001-deployment-7d9c5b8f4-x2x8q", first)
        ]
        nginx = wait_for("the Deployment", lambda: _workload(agent, "nginx-deployment", runningPods=1), agent)
        assert [p.revision_id for p in wait_for("its pod", lambda: _pods(runai, nginx["id"]), agent)] == [
            None
        ]

        # A second revision (the template changed), its pod beside the first one's: a traffic split.
        second = revision_pod(2, "Knative", "5f6b7c9d8")
        pods = wait_for("both revisions' pods", lambda: _pods(runai, hello["id"], count=2), agent)
        assert sorted((p.name, str(p.revision_id)) for p in pods) == [
            ("hello-00001-deployment-7d9c5b8f4-x2x8q", first),
            ("hello-00002-deployment-5f6b7c9d8-x2x8q", second),
        ]
        assert (_revision_pods(runai, first), _revision_pods(runai, second)) == (1, 1)
    assert "Traceback" not in agent.log


def test_relist_after_410_gone_reports_what_the_watch_missed(agent: Agent, cluster: FakeCluster) -> None:
    _setup_cluster(cluster)
    for name in ("keep", "drop"):
        job = cluster.create(m.job_pi("team-a", name))
        cluster.create(m.running(m.pod(f"{name}-pod", job, "team-a", "perl:5.34.0"), "node-1"))
    with agent.running():
        wait_for(
            "both Jobs", lambda: {"keep", "drop"} <= set(workloads(agent.server, agent.cluster_id)), agent
        )
        # The watch misses a deletion, then the history is compacted and the stream dropped: the
        # agent's version is too old (410 Gone), it relists, and a full resync removes the Job.
        cluster.freeze()
        cluster.delete("v1", "Pod", "drop-pod", "team-a")
        cluster.delete("batch/v1", "Job", "drop", "team-a")
        cluster.compact()
        cluster.drop_watches()
        cluster.freeze(False)
        wait_for(
            "the missed deletion",
            lambda: (
                "drop" in workloads(agent.server, agent.cluster_id, deleted=True)
                and "drop" not in workloads(agent.server, agent.cluster_id)
            ),
            agent,
        )
        assert "keep" in workloads(agent.server, agent.cluster_id)
    assert "410 Gone" in agent.log
    job_lists = [
        r for r in cluster.requests if r.startswith("GET /apis/batch/v1/jobs?") and "watch=" not in r
    ]
    assert len(job_lists) >= 2  # the first list and the relist


def test_restart_resyncs_what_changed_while_the_agent_was_down(agent: Agent, cluster: FakeCluster) -> None:
    _setup_cluster(cluster)
    old = cluster.create(m.job_pi("team-a", "old"))
    cluster.create(m.running(m.pod("old-pod", old, "team-a", "perl:5.34.0"), "node-1"))
    with agent.running():
        wait_for("the first Job", lambda: _workload(agent, "old", phase="Running"), agent)
    # While the agent is stopped: the Job is deleted and a bare pod appears.
    cluster.delete("v1", "Pod", "old-pod", "team-a")
    cluster.delete("batch/v1", "Job", "old", "team-a")
    cluster.create(m.pod("debug-shell", None, "team-b", "busybox:1.36"))
    first_run = len(agent.log)
    with agent.running():
        shell = wait_for("the bare pod", lambda: _workload(agent, "debug-shell"), agent)
        assert (shell["type"], shell["phase"]) == ("Pod", "Pending")
        wait_for(
            "the deletion made while the agent was down",
            lambda: "old" in workloads(agent.server, agent.cluster_id, deleted=True),
            agent,
        )
    # The restarted agent began with a full resync of its own (the first run's line may be cut short
    # by its stop, so only the second run's output is read).
    assert "full resync 1:" in agent.log[first_run:]


def test_the_agent_asks_only_for_what_its_cluster_role_grants(agent: Agent, cluster: FakeCluster) -> None:
    """Every request the agent makes — discovery, lists, watches — is one the ClusterRole of
    deploy/kubernetes/agent.yaml allows, as the API server's RBAC would decide it."""
    _setup_cluster(cluster)
    job = cluster.create(m.job_pi("team-a"))
    cluster.create(m.running(m.pod("pi-pod", job, "team-a", "perl:5.34.0"), "node-1"))

    def watched() -> set[str] | None:
        kinds = {r.split("?")[0] for r in cluster.requests if "watch=true" in r}
        return kinds if len(kinds) == len(cluster.kinds) else None

    with agent.running():
        wait_for("the Job", lambda: _workload(agent, "pi", phase="Running"), agent)
        wait_for("a watch on every kind the cluster serves", watched, agent)
    rules = rbac.agent_rules()
    assert [r for r in cluster.requests if not rbac.allows(rules, r)] == []
    # The check refuses what the role does not grant.
    assert not rbac.allows(rules, "GET /api/v1/namespaces/team-a/secrets")
    assert not rbac.allows(rules, "GET /api/v1/namespaces/team-a/pods/pi-pod")
    assert not rbac.allows(rules, "GET /version")
