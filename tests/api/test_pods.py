"""Pods in the sync protocol and GET /api/v1/workloads/{workloadId}/pods: order, deletion, scope."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_history import viewers
from tests.api.test_sync import CLUSTER_A, CLUSTER_B, obs, sync, wid
from tests.server import assert_error


def pid(n: int) -> str:
    return str(uuid.uuid5(uuid.UUID(CLUSTER_A), f"pod{n}"))


def pod(n: int, workload: int, revision: int, phase: str = "Running", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": pid(n),
        "workloadId": wid(workload),
        "revision": revision,
        "name": f"job-{workload}-pod-{n}",
        "createdAt": f"2024-05-01T10:00:0{n}Z",
        "k8sPhase": phase,
        "nodeName": "node-1",
        "containers": [{"name": "main", "image": "perl:5.34.0"}],
        "requestedResources": {"gpu": {"request": 1}},
    }
    item.update(extra)
    return item


def _pods(client: TestClient, workload: int, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/api/v1/workloads/{wid(workload)}/pods", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["pods"]
    return found


def test_pods_come_with_their_workload_newest_revision_first(client: TestClient) -> None:
    result = sync(client, {"workloads": [obs(1, 1)], "pods": [pod(1, 1, 5, "Pending"), pod(2, 1, 5)]})
    assert result["pods"] == 2
    # An older observation of a pod changes nothing; a newer one does.
    assert sync(client, {"pods": [pod(1, 1, 4, "Failed")]})["pods"] == 0
    sync(client, {"pods": [pod(1, 1, 6, "Running", nodeName="node-2")]})
    served = _pods(client, 1)
    assert [(p["name"], p["k8sPhase"], p["nodeName"]) for p in served] == [
        ("job-1-pod-1", "Running", "node-2"),
        ("job-1-pod-2", "Running", "node-1"),
    ]
    first = served[0]
    assert (first["workloadId"], first["clusterId"], first["projectId"]) == (wid(1), CLUSTER_A, "p1")
    assert first["containers"] == [{"name": "main", "image": "perl:5.34.0"}]
    assert first["priorityClassName"] == ""
    assert first["deletedAt"] is None
    assert {"k8sPhaseUpdatedAt", "updatedAt", "tenantId"} <= set(first)
    page = client.get(f"/api/v1/workloads/{wid(1)}/pods", params={"limit": 1}).json()
    assert (len(page["pods"]), page["next"]) == (1, 1)


def test_deleted_pods_and_pods_a_full_resync_leaves_out(client: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1)], "pods": [pod(1, 1, 1), pod(2, 1, 1), pod(3, 1, 1)]})
    sync(client, {"pods": [pod(1, 1, 2, deletedAt="2024-05-01T11:00:00Z")]})
    assert [p["name"] for p in _pods(client, 1)] == ["job-1-pod-2", "job-1-pod-3"]
    assert [p["name"] for p in _pods(client, 1, deleted="true")] == ["job-1-pod-1"]
    sync(
        client, {"fullResync": {"id": "r1", "final": True}, "workloads": [obs(1, 3)], "pods": [pod(2, 1, 3)]}
    )
    assert [p["name"] for p in _pods(client, 1)] == ["job-1-pod-2"]
    assert len(_pods(client, 1, deleted="true")) == 2


def test_a_pod_must_belong_to_a_workload_of_the_batchs_cluster(client: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1)]})
    answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"pods": [pod(1, 42, 1)]})
    assert_error(answer, 400, "pods[0]", wid(42))
    other = client.post(f"/api/v1/clusters/{CLUSTER_B}/sync", json={"pods": [pod(2, 1, 1)]})
    assert_error(other, 400, "pods[0]")
    bad = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"pods": [{**pod(3, 1, 1), "k8sPhase": ""}]})
    assert_error(bad, 400, "pods[0].k8sPhase")
    assert _pods(client, 1) == []


def test_pods_are_scoped_like_their_workload(client: TestClient, anonymous: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1)], "pods": [pod(1, 1, 1)]})
    outsider, insider = viewers(client, anonymous)
    path = f"/api/v1/workloads/{wid(1)}/pods"
    assert_error(anonymous.get(path, headers=outsider), 404, wid(1))
    seen = anonymous.get(path, headers=insider)
    assert [p["id"] for p in seen.json()["pods"]] == [pid(1)]
    assert_error(client.get(path, params={"deleted": "maybe"}), 400, "deleted")


def event(n: int, workload: int, revision: int, at: str, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.UUID(CLUSTER_A), f"event{n}")),
        "workloadId": wid(workload),
        "revision": revision,
        "createdAt": at,
        "type": "Normal",
        "message": f"event {n}",
        "reason": "Scheduled",
        "source": "default-scheduler",
        "involvedObject": {"uid": pid(1), "kind": "Pod", "name": "job-1-pod-1", "namespace": "team-a"},
    }
    item.update(extra)
    return item


def test_events_newest_first_repeated_ones_updated_scoped(client: TestClient, anonymous: TestClient) -> None:
    batch = {
        "workloads": [obs(1, 1)],
        "events": [event(1, 1, 1, "2024-05-01T10:00:00Z"), event(2, 1, 1, "2024-05-01T10:01:00Z")],
    }
    assert sync(client, batch)["events"] == 2
    # The same event again, repeated later (Kubernetes bumps its count and time): updated, not added.
    sync(client, {"events": [event(1, 1, 2, "2024-05-01T10:05:00Z", message="event 1 (x2)")]})
    path = f"/api/v1/workloads/{wid(1)}/events"
    newest_first = client.get(path).json()["events"]
    assert [e["message"] for e in newest_first] == ["event 1 (x2)", "event 2"]
    assert newest_first[0]["involvedObject"]["kind"] == "Pod"
    assert newest_first[0]["clusterId"] == CLUSTER_A
    oldest_first = client.get(path, params={"sortOrder": "asc", "limit": 1}).json()
    assert ([e["message"] for e in oldest_first["events"]], oldest_first["next"]) == (["event 2"], 1)
    assert_error(client.get(path, params={"sortOrder": "up"}), 400, "sortOrder")
    stray = client.post(
        f"/api/v1/clusters/{CLUSTER_A}/sync", json={"events": [event(3, 42, 1, "2024-05-01T10:00:00Z")]}
    )
    assert_error(stray, 400, "events[0]", wid(42))
    outsider, _insider = viewers(client, anonymous)
    assert_error(anonymous.get(path, headers=outsider), 404, wid(1))


def test_a_pods_revision_is_a_uuid_served_on_its_record(client: TestClient) -> None:
    """``revisionId`` (the owning Knative Revision's uid) is checked at the edge like the other ids,
    stored as the canonical UUID text and served; a pod without one serves ``null``."""
    revision = str(uuid.uuid5(uuid.UUID(CLUSTER_A), "hello-00001"))
    sync(
        client,
        {"workloads": [obs(1, 1)], "pods": [pod(1, 1, 1, revisionId=revision.upper()), pod(2, 1, 1)]},
    )
    assert [p["revisionId"] for p in _pods(client, 1)] == [revision, None]
    for bad in ("hello-00001", "", "\x00", revision + "0" * 300):
        answer = client.post(
            f"/api/v1/clusters/{CLUSTER_A}/sync", json={"pods": [pod(3, 1, 1, revisionId=bad)]}
        )
        assert_error(answer, 400, "pods[0].revisionId")
    assert len(_pods(client, 1)) == 2


def _revision(name: str) -> str:
    return str(uuid.uuid5(uuid.UUID(CLUSTER_A), name))


def test_a_revisions_pods_live_and_deleted_scoped_like_their_workload(
    client: TestClient, anonymous: TestClient
) -> None:
    """GET /workloads/inferences/revisions/{revisionId}/pods: the revision's own pods only (not its
    workload's other revision's, nor a pod without one), live or deleted, in creation order; a revision
    with only deleted pods is known (an empty live list), one never seen or outside the caller's scopes
    is 404, a malformed id 400."""
    first, second = _revision("hello-00001"), _revision("hello-00002")
    sync(
        client,
        {
            "workloads": [obs(1, 1), obs(2, 1, projectId="p2", projectName="team-b")],
            "pods": [
                pod(1, 1, 1, revisionId=first),
                pod(2, 1, 1, revisionId=second),
                pod(3, 1, 1, revisionId=first),
                pod(4, 1, 1),
                pod(5, 2, 1, revisionId=_revision("other-00001")),
            ],
        },
    )
    path = f"/api/v1/workloads/inferences/revisions/{first}/pods"
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert [p["id"] for p in answer.json()["pods"]] == [pid(1), pid(3)]
    assert "next" not in answer.json()
    paged = client.get(path, params={"limit": 1, "offset": 0}).json()
    assert ([p["id"] for p in paged["pods"]], paged["next"]) == ([pid(1)], 1)
    assert client.get(path, params={"deleted": "true"}).json() == {"pods": []}
    # The id is matched as a UUID, whatever its spelling.
    upper = client.get(path.replace(first, first.upper())).json()["pods"]
    assert [p["id"] for p in upper] == [pid(1), pid(3)]
    sync(
        client,
        {"pods": [pod(2, 1, 2, revisionId=second, deletedAt="2024-05-01T11:00:00Z")]},
    )
    gone = f"/api/v1/workloads/inferences/revisions/{second}/pods"
    assert client.get(gone).json() == {"pods": []}
    deleted = client.get(gone, params={"deleted": "true"}).json()["pods"]
    assert [(p["id"], p["revisionId"], p["deletedAt"]) for p in deleted] == [
        (pid(2), second, "2024-05-01T11:00:00.000Z")
    ]
    # A viewer of another project: as for the workload's own pods, the revision does not exist.
    outsider, insider = viewers(client, anonymous)
    assert_error(anonymous.get(path, headers=outsider), 404, first)
    assert_error(anonymous.get(gone, headers=outsider, params={"deleted": "true"}), 404, second)
    seen = anonymous.get(path, headers=insider).json()["pods"]
    assert [p["id"] for p in seen] == [pid(1), pid(3)]
    other = f"/api/v1/workloads/inferences/revisions/{_revision('other-00001')}/pods"
    assert_error(anonymous.get(other, headers=insider), 404, _revision("other-00001"))
    assert [p["id"] for p in client.get(other).json()["pods"]] == [pid(5)]
    # Never seen; malformed.
    assert_error(client.get(f"/api/v1/workloads/inferences/revisions/{_revision('nope')}/pods"), 404)
    assert_error(client.get("/api/v1/workloads/inferences/revisions/hello-00001/pods"), 400, "revisionId")
    assert_error(client.get(path, params={"deleted": "maybe"}), 400, "deleted")
    assert_error(client.get(path, params={"limit": 0}), 400, "limit")
