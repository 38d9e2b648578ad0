"""runapy's ``list_pods`` and ``count_pods`` against a real server: its own arguments (a list for
``filterBy``, its verbosity enum) are understood, and the records parse with its own model."""

from __future__ import annotations

import pytest
from runai import models
from runai.exceptions import ApiException
from runai.runai_client import RunaiClient

from tests.api.test_pods import pid, pod
from tests.api.test_sync import CLUSTER_A, obs, wid
from tests.auth.test_runapy_scoped import _runai, _scoped_credential
from tests.server import Server

pytestmark = [pytest.mark.server, pytest.mark.shared_server]
REVISION = "6f1e2d3c-0000-4000-8000-0000000000a1"


def test_the_client_lists_and_counts_pods(runai: RunaiClient, server: Server) -> None:
    batch = {
        "workloads": [obs(1, 1), obs(2, 1, name="bert")],
        "pods": [
            pod(1, 1, 1, currentNodePool="a100"),
            pod(2, 1, 1, "Succeeded", completedAt="2024-05-01T12:00:00Z"),
            pod(3, 2, 1, nodeName="node-2", revisionId=REVISION),
        ],
    }
    with server.client() as admin:
        answer = admin.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json=batch)
        assert answer.status_code == 200, answer.text
    pods = runai.workloads.pods
    page = pods.list_pods(
        filter_by=["nodeName==node-1", f"workloadId=={wid(1)}"],
        sort_by="createdAt",
        sort_order="desc",
        verbosity=models.PodVerbosity.FULL,
        limit=1,
    ).data
    records = [models.Pod1.from_dict(p) for p in page["pods"]]
    assert [(r.name, r.workload_name, r.project_name) for r in records] == [
        ("job-1-pod-2", "job-1", "team-a")
    ]
    assert records[0].completed_at is not None
    assert page["next"] == 1
    done = pods.list_pods(completed="true").data["pods"]
    assert [p["name"] for p in done] == ["job-1-pod-2"]
    assert pods.count_pods(filter_by=["currentNodepool=@A1"]).data == {"count": 1}
    assert pods.count_pods(search="bert").data == {"count": 1}
    assert pods.count_pods(deleted=True).data == {"count": 0}
    # A pod's revision, filtered, sorted and counted by, and parsed by the client's model.
    by_revision = pods.list_pods(filter_by=[f"revisionId=={REVISION}"], sort_by="revisionId").data["pods"]
    assert [str(models.Pod1.from_dict(p).revision_id) for p in by_revision] == [REVISION]
    assert pods.count_pods(filter_by=[f"revisionId=={REVISION}"]).data == {"count": 1}
    assert pods.count_pods(filter_by=[f"revisionId!={REVISION}"]).data == {"count": 2}


def test_a_scoped_client_sees_only_its_projects_pods_and_events(server: Server) -> None:
    """A project viewer of p1, through runapy: workload 1's pods and events, none of workload 2's
    (project p2), in the list, the count and the workload routes."""
    event = {
        "id": "7d3c1b2a-0000-4000-8000-0000000000e1",
        "workloadId": wid(2),
        "revision": 1,
        "createdAt": "2024-05-01T10:00:00Z",
        "type": "Normal",
        "message": "Started container main",
    }
    batch = {
        "workloads": [obs(1, 1), obs(2, 1, projectId="p2", projectName="team-b")],
        "pods": [pod(1, 1, 1), pod(2, 2, 1)],
        "events": [event, {**event, "id": "7d3c1b2a-0000-4000-8000-0000000000e2", "workloadId": wid(1)}],
    }
    with server.client() as admin:
        assert admin.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json=batch).status_code == 200
    client = _runai(server, *_scoped_credential(server, "project-viewer", "project", "p1"))
    try:
        pods = client.workloads.pods
        assert [p["name"] for p in pods.list_pods().data["pods"]] == ["job-1-pod-1"]
        assert pods.count_pods().data == {"count": 1}
        assert pods.count_pods(filter_by=[f"workloadId=={wid(2)}"]).data == {"count": 0}
        assert [p["id"] for p in pods.get_workload_pods(wid(1)).data["pods"]] == [pid(1)]
        with pytest.raises(ApiException) as raised:
            pods.get_workload_pods(wid(2))
        assert raised.value.status == 404
        events = client.workloads.events
        own = events.get_workload_events(wid(1)).data["events"]
        assert [e["id"] for e in own] == ["7d3c1b2a-0000-4000-8000-0000000000e2"]
        with pytest.raises(ApiException) as raised:
            events.get_workload_events(wid(2))
        assert raised.value.status == 404
    finally:
        client.close()


def test_the_client_reads_a_revisions_pods(runai: RunaiClient, server: Server) -> None:
    """runapy's ``get_revision_pods``: the revision's live pods, then its deleted ones, parsed by the
    client's own response model; a viewer of another project gets 404, as for the workload's pods."""
    batch = {
        "workloads": [obs(1, 1)],
        "pods": [
            pod(1, 1, 1, revisionId=REVISION),
            pod(2, 1, 1, revisionId=REVISION, deletedAt="2024-05-01T11:00:00Z"),
            pod(3, 1, 1),
        ],
    }
    with server.client() as admin:
        assert admin.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json=batch).status_code == 200
    pods = runai.workloads.pods
    live = models.GetRevisionPods200Response.from_dict(pods.get_revision_pods(REVISION).data)
    assert live is not None
    assert [(str(p.id), str(p.revision_id)) for p in live.pods] == [(pid(1), REVISION)]
    gone = pods.get_revision_pods(REVISION, deleted=True).data["pods"]
    assert [p["id"] for p in gone] == [pid(2)]
    with pytest.raises(ApiException) as raised:
        pods.get_revision_pods("6f1e2d3c-0000-4000-8000-0000000000ff")
    assert raised.value.status == 404
    outsider = _runai(server, *_scoped_credential(server, "project-viewer", "project", "another-project"))
    insider = _runai(server, *_scoped_credential(server, "project-viewer", "project", "p1"))
    try:
        with pytest.raises(ApiException) as raised:
            outsider.workloads.pods.get_revision_pods(REVISION)
        assert raised.value.status == 404
        assert [p["id"] for p in insider.workloads.pods.get_revision_pods(REVISION).data["pods"]] == [pid(1)]
    finally:
        outsider.close()
        insider.close()
