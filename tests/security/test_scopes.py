"""Scopes close by default, and clusters keep to their own projects.

- A workload query cannot be built without the caller's scope, and telemetry cannot be computed
  without its restriction: a route that forgets to pass them fails loudly instead of reading
  everything. An empty scope reads nothing.
- A project or department belongs to the cluster that first reported it: another cluster's agent
  cannot sync workloads into it (and so before that project's viewers); nothing of its batch lands.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import bearer, create_key, grant, token
from tests.factories import load, workload
from tests.server import assert_error
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.scopes import ScopeSet
from workplane.domain.timefmt import now_ms
from workplane.query.filters import Sort, WorkloadQuery
from workplane.store import telemetry as store_telemetry
from workplane.store import workloads as store
from workplane.store.database import Database

CLUSTER_A = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
CLUSTER_B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


def test_a_workload_query_needs_a_scope() -> None:
    with pytest.raises(TypeError, match="scope"):
        WorkloadQuery()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="scope"):
        WorkloadQuery(deleted=True, terms=[])  # type: ignore[call-arg]


def test_telemetry_needs_its_restriction_spelled_out() -> None:
    parameter = inspect.signature(store_telemetry.workload_telemetry).parameters["restrict"]
    assert parameter.default is inspect.Parameter.empty


def test_an_empty_scope_reads_nothing(database: Database, catalog: CatalogSnapshot) -> None:
    load(database, workload("a"), workload("b"))
    with database.read() as conn:
        for scope, expected in ((ScopeSet.of([]), 0), (ScopeSet.everything(), 2)):
            query = WorkloadQuery(scope=scope)
            page = store.list_workloads(
                conn, query, sort=Sort(), offset=0, limit=10, catalog=catalog, now_ms=now_ms()
            )
            assert len(page.rows) == expected
            assert store.count_workloads(conn, query, catalog=catalog, now_ms=now_ms()) == expected


def _item(n: int, project: str, department: str) -> dict[str, Any]:
    return {
        "id": f"{n:08d}-0000-4000-8000-000000000000",
        "revision": 1,
        "name": f"job-{n}",
        "projectId": project,
        "projectName": f"team-{project}",
        "departmentId": department,
        "departmentName": f"dept-{department}",
        "type": "Training",
        "phase": "Running",
        "createdAt": "2024-05-01T10:00:00Z",
    }


def test_an_agent_cannot_write_into_another_clusters_project(
    client: TestClient, anonymous: TestClient
) -> None:
    agent_a = create_key(client, "agent-a", kind="agent", clusterId=CLUSTER_A)
    agent_b = create_key(client, "agent-b", kind="agent", clusterId=CLUSTER_B)
    viewer = create_key(client, "viewer")
    grant(client, viewer.client_id, "project-viewer", "project", "pa")

    def sync(agent: Any, cluster: str, *items: dict[str, Any]) -> Any:
        return anonymous.post(
            f"/api/v1/clusters/{cluster}/sync",
            json={"workloads": list(items)},
            headers=bearer(token(anonymous, agent)),
        )

    assert sync(agent_a, CLUSTER_A, _item(1, "pa", "da")).status_code == 200
    # B names A's project (and, separately, A's department): refused whole, naming the owner.
    answer = sync(agent_b, CLUSTER_B, _item(2, "pb", "db"), _item(3, "pa", "db"))
    assert_error(answer, 400, "project 'pa'", CLUSTER_A)
    answer = sync(agent_b, CLUSTER_B, _item(4, "pb2", "da"))
    assert_error(answer, 400, "department 'da'", CLUSTER_A)
    # B's own project is fine, and nothing of the refused batches landed.
    assert sync(agent_b, CLUSTER_B, _item(5, "pb", "db")).status_code == 200
    names = sorted(w["name"] for w in client.get("/api/v1/workloads").json()["workloads"])
    assert names == ["job-1", "job-5"]
    # The project's viewer sees A's workload only.
    seen = anonymous.get("/api/v1/workloads", headers=bearer(token(anonymous, viewer))).json()
    assert [(w["name"], w["clusterId"]) for w in seen["workloads"]] == [("job-1", CLUSTER_A)]
