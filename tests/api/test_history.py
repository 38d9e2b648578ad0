"""GET /api/v1/workloads/{workloadId}/history: phase changes as Run:ai history records, scoped."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_sync import obs, sync, wid
from tests.auth.helpers import bearer, create_key, grant, token
from tests.server import assert_error


def _report_phases(client: TestClient) -> None:
    steps = [
        (1, "Pending", "2024-05-01T10:00:00Z", {}),
        (2, "Pending", "2024-05-01T10:00:00Z", {"runningPods": 0, "requestedPods": {"number": 2}}),
        (3, "Running", "2024-05-01T10:05:00Z", {"runningPods": 1}),
        (4, "Completed", "2024-05-01T11:00:00Z", {}),
    ]
    for revision, phase, at, extra in steps:
        sync(client, {"workloads": [obs(1, revision, phase, phaseUpdatedAt=at, **extra)]})


def test_history_lists_each_phase_change_once_oldest_first(client: TestClient) -> None:
    _report_phases(client)
    answer = client.get(f"/api/v1/workloads/{wid(1)}/history")
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    assert [r["spec"]["phaseUpdate"]["phase"] for r in records] == ["Pending", "Running", "Completed"]
    assert all(r["meta"]["type"] == "PhaseUpdate" for r in records)
    assert records[1]["meta"]["creationTimestamp"].startswith("2024-05-01T10:05:00")
    page = client.get(f"/api/v1/workloads/{wid(1)}/history", params={"offset": 1, "limit": 1}).json()
    assert [r["spec"]["phaseUpdate"]["phase"] for r in page["records"]] == ["Running"]
    assert page["next"] == 2


def viewers(client: TestClient, anonymous: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    """Authorization headers of a viewer of another project, and of the viewer of project p1."""
    headers = []
    for name, project in (("outsider", "another-project"), ("insider", "p1")):
        key = create_key(client, name)
        grant(client, key.client_id, "project-viewer", "project", project)
        headers.append(bearer(token(anonymous, key)))
    return headers[0], headers[1]


def test_history_is_scoped_like_the_workload(client: TestClient, anonymous: TestClient) -> None:
    _report_phases(client)
    outsider, insider = viewers(client, anonymous)
    path = f"/api/v1/workloads/{wid(1)}/history"
    assert_error(anonymous.get(path, headers=outsider), 404, wid(1))
    assert anonymous.get(path, headers=insider).status_code == 200
    assert_error(client.get("/api/v1/workloads/not-a-uuid/history"), 400, "not-a-uuid")
    assert_error(client.get(f"/api/v1/workloads/{wid(99)}/history"), 404, wid(99))
