"""runapy's ``list_pods`` and ``count_pods`` against a real server: its own arguments (a list for
``filterBy``, its verbosity enum) are understood, and the records parse with its own model."""

from __future__ import annotations

import pytest
from runai import models
from runai.runai_client import RunaiClient

from tests.api.test_pods import pod
from tests.api.test_sync import CLUSTER_A, obs, wid
from tests.server import Server

pytestmark = pytest.mark.server


def test_the_client_lists_and_counts_pods(runai: RunaiClient, server: Server) -> None:
    batch = {
        "workloads": [obs(1, 1), obs(2, 1, name="bert")],
        "pods": [
            pod(1, 1, 1, currentNodePool="a100"),
            pod(2, 1, 1, "Succeeded", completedAt="2024-05-01T12:00:00Z"),
            pod(3, 2, 1, nodeName="node-2"),
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
