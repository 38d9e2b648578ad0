"""GET /api/v1/workloads/pods and /workloads/pods/count: pods across the caller's scopes, with Run:ai's
filter, sort, search, paging, ``completed`` and ``verbosity``; every parameter checked at the edge."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_history import viewers
from tests.api.test_pods import pid, pod
from tests.api.test_sync import CLUSTER_A, obs, sync, wid
from tests.server import assert_error

LIST = "/api/v1/workloads/pods"
# Revision uids in descending order: B sorts before A.
REV_A = "4a1c0e5e-0000-4000-8000-00000000000a"
REV_B = "9b2d1f6f-0000-4000-8000-00000000000b"
COUNT = "/api/v1/workloads/pods/count"


def _inventory(client: TestClient) -> None:
    """Workload 1 (project p1) with pods 1-3, workload 2 (project p2) with pods 4-5:
    pod 1 on node-1/pool a100 Running; pod 2 Succeeded (completion reported by the agent) on node-2;
    pod 3 Pending, unscheduled; pod 4 Failed on node-1 (completion from its phase); pod 5 deleted.
    Pods 1 and 5 belong to revision A, pod 2 to revision B (a Knative Service's revisions); 3 and 4 to
    none."""
    workloads = [obs(1, 1), obs(2, 1, projectId="p2", projectName="team-b", name="bert-finetune")]
    pods = [
        pod(1, 1, 1, currentNodePool="a100", revisionId=REV_A),
        pod(2, 1, 1, "Succeeded", nodeName="node-2", completedAt="2024-05-01T12:00:00Z", revisionId=REV_B),
        pod(3, 1, 1, "Pending", nodeName=None),
        pod(4, 2, 1, "Failed"),
        pod(5, 2, 1, deletedAt="2024-05-01T13:00:00Z", revisionId=REV_A),
    ]
    sync(client, {"workloads": workloads, "pods": pods})


def _names(client: TestClient, **params: Any) -> list[str]:
    answer = client.get(LIST, params=params)
    assert answer.status_code == 200, answer.text
    return [p["name"] for p in answer.json()["pods"]]


def _count(client: TestClient, **params: Any) -> int:
    answer = client.get(COUNT, params=params)
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["count"]
    return count


# (params, the pods' numbers expected in order): the list and the count must agree on each.
CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({}, [1, 2, 3, 4]),
    ({"deleted": "true"}, [5]),
    ({"filterBy": "nodeName==node-1"}, [1, 4]),
    ({"filterBy": "nodeName!=node-1"}, [2, 3]),  # no node: satisfies != (a NULL never equals)
    ({"filterBy": "currentNodepool=@A10"}, [1]),  # contains, case-insensitively
    ({"filterBy": f"workloadId=={wid(2)}"}, [4]),
    ({"filterBy": f"clusterId=={CLUSTER_A},nodeName=^node"}, [1, 2, 4]),
    ({"filterBy": ["nodeName=$-1", f"workloadId=={wid(1)}"]}, [1]),
    ({"filterBy": "completedAt>=2024-05-01T11:00:00Z"}, [2, 4]),
    ({"filterBy": "createdAt<=2024-05-01T10:00:02Z"}, [1, 2]),
    # Times finer than the stored milliseconds compare exactly: 1.0005 s is after pod 1, before pod 2.
    ({"filterBy": "createdAt>=2024-05-01T10:00:01.0005Z"}, [2, 3, 4]),
    ({"filterBy": "createdAt<=2024-05-01T10:00:02.0005Z"}, [1, 2]),
    ({"filterBy": "createdAt==2024-05-01T10:00:01.0005Z"}, []),
    ({"filterBy": "createdAt!=2024-05-01T10:00:01.0005Z"}, [1, 2, 3, 4]),
    ({"filterBy": "createdAt==2024-05-01T10:00:03+00:00"}, [3]),
    ({"filterBy": "completedAt!=2024-05-01T12:00:00Z"}, [1, 3, 4]),  # no completion: satisfies !=
    ({"filterBy": "revisionId!=x"}, [1, 2, 3, 4]),
    ({"filterBy": "revisionId==x"}, []),
    ({"filterBy": f"revisionId=={REV_A}"}, [1]),
    ({"filterBy": f"revisionId!={REV_A}"}, [2, 3, 4]),  # no revision: satisfies !=
    ({"filterBy": "revisionId=^9B2D"}, [2]),
    ({"filterBy": "revisionId!@0000"}, [3, 4]),
    ({"filterBy": f"revisionId=={REV_A}", "deleted": "true"}, [5]),
    ({"filterBy": f"revisionId=={REV_A},workloadId=={wid(1)}"}, [1]),
    ({"search": "BERT"}, [4]),  # the workload's name
    ({"search": "job-1 pending"}, [3]),  # every word: the pod's name and its phase
    ({"search": "node-2"}, [2]),
]


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_list_and_count_select_the_same_pods(
    client: TestClient, params: dict[str, Any], expected: list[int]
) -> None:
    _inventory(client)
    names = [f"job-{1 if n <= 3 else 2}-pod-{n}" for n in expected]
    assert _names(client, **params) == names
    assert _count(client, **params) == len(expected)


def test_completed_sort_paging_and_full_verbosity(client: TestClient) -> None:
    _inventory(client)
    assert _names(client, completed="true") == ["job-1-pod-2", "job-2-pod-4"]
    assert _names(client, completed="false") == ["job-1-pod-1", "job-1-pod-3"]
    assert _names(client, completed="") == _names(client, completed="all") == _names(client)
    # Pods without a node come last in both directions; ties fall back to the id in the same direction.
    by_node = _names(client, sortBy="nodeName", sortOrder="desc")
    assert by_node[0] == "job-1-pod-2"
    assert by_node[-1] == "job-1-pod-3"
    assert set(by_node[1:3]) == {"job-1-pod-1", "job-2-pod-4"}
    # By revision: pods without one last in both directions, ties by id.
    by_revision = _names(client, sortBy="revisionId", sortOrder="desc")
    assert by_revision[:2] == ["job-1-pod-2", "job-1-pod-1"]
    assert set(by_revision[2:]) == {"job-1-pod-3", "job-2-pod-4"}
    assert _names(client, sortBy="revisionId")[:2] == ["job-1-pod-1", "job-1-pod-2"]
    assert _names(client, sortBy="createdAt", sortOrder="desc") == [
        "job-2-pod-4",
        "job-1-pod-3",
        "job-1-pod-2",
        "job-1-pod-1",
    ]
    first = client.get(LIST, params={"limit": 3}).json()
    assert (len(first["pods"]), first["next"]) == (3, 3)
    last = client.get(LIST, params={"limit": 3, "offset": 3}).json()
    assert [p["name"] for p in last["pods"]] == ["job-2-pod-4"]
    assert "next" not in last
    full = client.get(LIST, params={"verbosity": "full", "filterBy": f"workloadId=={wid(2)}"}).json()
    assert (full["pods"][0]["workloadName"], full["pods"][0]["projectName"]) == ("bert-finetune", "team-b")
    brief = client.get(LIST).json()["pods"][0]
    assert "workloadName" not in brief
    assert "projectName" not in brief


def test_completed_at_is_the_reported_time_else_when_the_terminal_phase_was_seen(client: TestClient) -> None:
    _inventory(client)
    served = {p["id"]: p for p in client.get(LIST).json()["pods"]}
    assert served[pid(2)]["completedAt"] == "2024-05-01T12:00:00.000Z"
    assert served[pid(4)]["completedAt"] == served[pid(4)]["k8sPhaseUpdatedAt"]
    assert served[pid(1)]["completedAt"] is None
    # The workload's own pods route serves the same record.
    own = client.get(f"/api/v1/workloads/{wid(2)}/pods").json()["pods"][0]
    assert own["completedAt"] == served[pid(4)]["completedAt"]
    # A pod that runs again (a restarted phase) is no longer completed.
    sync(client, {"pods": [pod(4, 2, 2, "Running")]})
    assert _names(client, completed="true") == ["job-1-pod-2"]


def test_pods_are_scoped_like_their_workloads(client: TestClient, anonymous: TestClient) -> None:
    _inventory(client)
    outsider, insider = viewers(client, anonymous)
    seen = anonymous.get(LIST, headers=insider).json()["pods"]
    assert [p["workloadId"] for p in seen] == [wid(1)] * 3
    assert anonymous.get(COUNT, headers=insider).json() == {"count": 3}
    assert anonymous.get(LIST, headers=outsider).json() == {"pods": []}
    assert anonymous.get(COUNT, headers=outsider, params={"deleted": "true"}).json() == {"count": 0}
    # A filter naming another project's workload finds nothing for the insider, not its pods.
    other = anonymous.get(COUNT, headers=insider, params={"filterBy": f"workloadId=={wid(2)}"})
    assert other.json() == {"count": 0}
    assert_error(anonymous.get(LIST), 401)
    # A workload moved to another project takes its pods with it.
    sync(client, {"workloads": [obs(1, 2, projectId="p2", projectName="team-b")]})
    assert anonymous.get(COUNT, headers=insider).json() == {"count": 0}
    assert _count(client, filterBy=f"workloadId=={wid(1)}") == 3


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"filterBy": "phase==Running"}, ["filterBy", "phase"]),  # a workload field, not a pod field
        ({"filterBy": "nodeName"}, ["filterBy", "nodeName"]),
        ({"filterBy": "nodeName=="}, ["filterBy", "empty"]),
        ({"filterBy": "createdAt=@2024"}, ["filterBy", "createdAt"]),
        ({"filterBy": "completedAt>=yesterday"}, ["filterBy", "yesterday"]),
        ({"filterBy": ",".join(f"nodeName==n{i}" for i in range(33))}, ["filterBy", "32"]),
        ({"sortBy": "name"}, ["sortBy", "name"]),
        ({"sortBy": "currentNodePool"}, ["sortBy", "currentNodePool"]),
        ({"sortOrder": "up"}, ["sortOrder", "up"]),
        ({"verbosity": "loud"}, ["verbosity", "loud"]),
        ({"completed": "maybe"}, ["completed", "maybe"]),
        ({"deleted": "maybe"}, ["deleted", "maybe"]),
        ({"limit": "0"}, ["limit"]),
        ({"limit": "501"}, ["limit"]),
        ({"offset": "-1"}, ["offset"]),
        ({"search": "x" * 1025}, ["search", "1024"]),
        ({"search": " ".join("w" * 17)}, ["search", "16"]),
    ],
)
def test_every_parameter_is_checked(client: TestClient, params: dict[str, Any], mentions: list[str]) -> None:
    assert_error(client.get(LIST, params=params), 400, *mentions)
    count_params = {k: v for k, v in params.items() if k in ("filterBy", "search", "deleted")}
    if count_params:
        assert_error(client.get(COUNT, params=count_params), 400, *mentions)


def test_the_client_enum_form_is_accepted(client: TestClient) -> None:
    """runapy sends enum arguments as ``SomeEnum.value``."""
    _inventory(client)
    names = _names(client, sortBy="createdAt", sortOrder="SortOrder.desc", verbosity="PodVerbosity.full")
    assert names[0] == "job-2-pod-4"


def test_a_workloads_own_pods_take_search_too(client: TestClient) -> None:
    _inventory(client)
    path = f"/api/v1/workloads/{wid(1)}/pods"
    found = client.get(path, params={"search": "NODE-2 succeeded"}).json()["pods"]
    assert [p["name"] for p in found] == ["job-1-pod-2"]
    assert client.get(path, params={"search": "bert"}).json() == {"pods": []}  # another workload's name
    assert_error(client.get(path, params={"search": " ".join("w" * 17)}), 400, "search")
