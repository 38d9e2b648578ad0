from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import load, wid, workload
from workplane.store.database import Database


def test_list_count_get(client: TestClient, database: Database) -> None:
    load(database, workload("a"), workload("b", phase="Pending", createdAt="2024-05-02T00:00:00Z"))
    page = client.get("/api/v1/workloads").json()
    assert [w["name"] for w in page["workloads"]] == ["a", "b"]
    assert "next" not in page
    assert client.get("/api/v1/workloads/count").json() == {"count": 2}
    one = client.get(f"/api/v1/workloads/{wid('a')}").json()
    assert one["category"] == "Train"
    assert one["priorityClassName"] == "low"
    assert one["priority"] == 40
    assert one["preemptible"] is True
    assert one["pendingSchedulingMessages"] is None
