"""The cluster sync protocol: ordering, idempotency, full resync, all-or-nothing batches."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from workplane.domain.timefmt import parse_to_ms
from workplane.metrics import codec
from workplane.store import ingest
from workplane.store.database import Database
from workplane.store.schema import departments, metric_chunks, projects

CLUSTER_A = "aaaaaaaa-0000-4000-8000-000000000001"
CLUSTER_B = "bbbbbbbb-0000-4000-8000-000000000002"


def wid(n: int, cluster: str = CLUSTER_A) -> str:
    return str(uuid.uuid5(uuid.UUID(cluster), f"w{n}"))


def obs(
    n: int, revision: int, phase: str = "Running", cluster: str = CLUSTER_A, **extra: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": wid(n, cluster),
        "revision": revision,
        "name": f"job-{n}",
        # A project and a department belong to one cluster: each cluster reports its own.
        "projectId": "p1" if cluster == CLUSTER_A else f"p1-{cluster[:8]}",
        "projectName": "team-a",
        "departmentId": "d1" if cluster == CLUSTER_A else f"d1-{cluster[:8]}",
        "departmentName": "research",
        "type": "Training",
        "phase": phase,
        "createdAt": "2024-05-01T10:00:00Z",
        "phaseUpdatedAt": extra.pop("phaseUpdatedAt", "2024-05-01T10:00:00Z"),
    }
    record.update(extra)
    return record


def sync(client: TestClient, body: dict[str, Any], cluster: str = CLUSTER_A) -> dict[str, Any]:
    answer = client.post(f"/api/v1/clusters/{cluster}/sync", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def without_clock(record: dict[str, Any]) -> dict[str, Any]:
    """The record minus the fields that grow with the clock while a phase interval is open."""
    return {
        k: v for k, v in record.items() if k not in ("totalPendingTimeSeconds", "totalRunningTimeSeconds")
    }


def get(client: TestClient, workload_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/workloads/{workload_id}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_phase_history_drives_times(client: TestClient, database: Database) -> None:
    sync(client, {"workloads": [obs(1, 1, "Pending")]})
    sync(client, {"workloads": [obs(1, 2, "Running", phaseUpdatedAt="2024-05-01T10:10:00Z")]})
    sync(client, {"workloads": [obs(1, 3, "Completed", phaseUpdatedAt="2024-05-01T11:10:00Z")]})
    record = get(client, wid(1))
    assert record["phase"] == "Completed"
    assert record["totalPendingTimeSeconds"] == 600
    assert record["totalRunningTimeSeconds"] == 3600
    assert record["completedAt"] == "2024-05-01T11:10:00.000Z"
    assert record["phaseUpdatedAt"] == "2024-05-01T11:10:00.000Z"
    assert record["category"] == "Train"
    assert record["departmentId"] == "d1"
    with database.read() as conn:
        phases = [h["phase"] for h in ingest.history_of(conn, wid(1))]
    assert phases == ["Pending", "Running", "Completed"]


def test_older_and_repeated_observations_change_nothing(client: TestClient) -> None:
    batch = {"workloads": [obs(1, 5, "Running", phaseUpdatedAt="2024-05-01T10:05:00Z")]}
    assert sync(client, batch)["applied"] == 1
    before = get(client, wid(1))
    assert sync(client, batch) == {"applied": 0, "ignored": 1, "deleted": 0, "samples": 0}
    stale = sync(client, {"workloads": [obs(1, 4, "Pending", name="stale")]})
    assert stale["ignored"] == 1
    assert without_clock(get(client, wid(1))) == without_clock(before)
    assert client.get("/api/v1/workloads/count").json() == {"count": 1}


def test_out_of_order_within_and_across_batches(client: TestClient) -> None:
    late_first = [
        obs(1, 3, "Completed", phaseUpdatedAt="2024-05-01T12:00:00Z"),
        obs(1, 1, "Pending"),
        obs(1, 2, "Running", phaseUpdatedAt="2024-05-01T10:30:00Z"),
    ]
    sync(client, {"workloads": late_first})
    assert get(client, wid(1))["phase"] == "Completed"
    sync(client, {"workloads": [obs(1, 2, "Running")]})
    assert get(client, wid(1))["phase"] == "Completed"


def test_deletion_and_full_resync(client: TestClient) -> None:
    sync(client, {"workloads": [obs(n, 1) for n in range(5)]})
    sync(client, {"workloads": [obs(0, 2, deletedAt="2024-05-02T00:00:00Z")]})
    assert get(client, wid(0))["deletedAt"] == "2024-05-02T00:00:00.000Z"
    # The agent restarts and reports everything it has now, in two batches: 1 and 2 are gone.
    first = sync(client, {"fullResync": {"id": "r1", "final": False}, "workloads": [obs(3, 1)]})
    assert first["deleted"] == 0
    last = sync(client, {"fullResync": {"id": "r1", "final": True}, "workloads": [obs(4, 1), obs(5, 1)]})
    assert last["deleted"] == 2
    live = client.get("/api/v1/workloads").json()["workloads"]
    assert sorted(w["name"] for w in live) == ["job-3", "job-4", "job-5"]
    deleted = client.get("/api/v1/workloads", params={"deleted": "true"}).json()["workloads"]
    assert sorted(w["name"] for w in deleted) == ["job-0", "job-1", "job-2"]
    assert all(w["deletedAt"] is not None for w in deleted)


def test_full_resync_leaves_other_clusters_alone(client: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1)]}, CLUSTER_A)
    sync(client, {"workloads": [obs(1, 1, cluster=CLUSTER_B)]}, CLUSTER_B)
    sync(client, {"fullResync": {"id": "x"}, "workloads": []}, CLUSTER_A)
    assert client.get("/api/v1/workloads/count").json() == {"count": 1}
    assert client.get("/api/v1/workloads").json()["workloads"][0]["clusterId"] == CLUSTER_B


def test_bad_item_refuses_the_whole_batch(client: TestClient) -> None:
    good, bad = obs(1, 1), obs(2, 1, phase="Sleeping")
    answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [good, bad]})
    assert answer.status_code == 400
    assert "workloads[1]" in answer.json()["message"]
    unknown_type = obs(3, 1, type="NoSuchKind")
    answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [good, unknown_type]})
    assert answer.status_code == 400
    assert "workloads[1]" in answer.json()["message"]
    assert "NoSuchKind" in answer.json()["message"]
    foreign = client.post(
        f"/api/v1/clusters/{CLUSTER_A}/sync",
        json={
            "workloads": [good],
            "samples": [
                {"workloadId": wid(9), "metric": "GPU_UTILIZATION", "timestamps": [1], "values": [1.0]}
            ],
        },
    )
    assert foreign.status_code == 400
    assert "samples[0]" in foreign.json()["message"]
    assert client.get("/api/v1/workloads/count").json() == {"count": 0}


def test_workload_of_another_cluster_is_refused(client: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1)]}, CLUSTER_A)
    stolen = obs(1, 2, cluster=CLUSTER_A)
    stolen["clusterId"] = CLUSTER_B
    answer = client.post(f"/api/v1/clusters/{CLUSTER_B}/sync", json={"workloads": [stolen]})
    assert answer.status_code == 400
    assert get(client, wid(1))["clusterId"] == CLUSTER_A


def test_samples_are_stored_once(client: TestClient, database: Database) -> None:
    start = parse_to_ms("2024-05-01T10:00:00Z")
    series = {
        "workloadId": wid(1),
        "metric": "GPU_UTILIZATION",
        "timestamps": [start + 15_000 * i for i in range(100)],
        "values": [float(i % 100) for i in range(100)],
    }
    body = {"workloads": [obs(1, 1)], "samples": [series]}
    assert sync(client, body)["samples"] == 100
    sync(client, body)  # retried
    with database.read() as conn:
        rows = conn.execute(metric_chunks.select()).all()
    assert len(rows) == 1
    assert codec.decode(rows[0].data) == (series["timestamps"], series["values"])


def test_concurrent_agents_for_different_clusters(client: TestClient) -> None:
    errors: list[str] = []

    def agent(cluster: str) -> None:
        for batch in range(5):
            body = {
                "workloads": [obs(n, batch + 1, cluster=cluster) for n in range(batch * 20, batch * 20 + 20)]
            }
            answer = client.post(f"/api/v1/clusters/{cluster}/sync", json=body)
            if answer.status_code != 200:
                errors.append(answer.text)

    threads = [threading.Thread(target=agent, args=(c,)) for c in (CLUSTER_A, CLUSTER_B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert client.get("/api/v1/workloads/count").json() == {"count": 200}
    for cluster in (CLUSTER_A, CLUSTER_B):
        count = client.get("/api/v1/workloads/count", params={"filterBy": f"clusterId=={cluster}"}).json()
        assert count == {"count": 100}


def test_retention_purges_old_deletions_with_their_history(client: TestClient, database: Database) -> None:
    from workplane.domain.timefmt import format_ms, now_ms
    from workplane.services.retention import purge_once
    from workplane.store.schema import workload_history, workload_nodepools

    day = 86_400_000
    old, recent = format_ms(now_ms() - 15 * day), format_ms(now_ms() - 13 * day)
    sync(client, {"workloads": [obs(n, 1, currentNodePools=["pool-a"]) for n in range(3)]})
    sync(client, {"workloads": [obs(0, 2, deletedAt=old), obs(1, 2, deletedAt=recent)]})
    assert purge_once(database, retention_days=14) == 1
    assert client.get(f"/api/v1/workloads/{wid(0)}").status_code == 404
    assert get(client, wid(1))["deletedAt"] == recent
    with database.read() as conn:
        for table in (workload_history, workload_nodepools):
            orphans = conn.execute(table.select().where(table.c.workload_id == wid(0))).all()
            assert orphans == []


def test_node_pool_changes_are_followed(client: TestClient) -> None:
    def pools_of(pool: str) -> list[str]:
        listed = client.get("/api/v1/workloads", params={"filterBy": f"nodepool=={pool}"}).json()
        return [w["name"] for w in listed["workloads"]]

    sync(client, {"workloads": [obs(1, 1, currentNodePools=["a", "b"]), obs(2, 1)]})
    assert pools_of("b") == ["job-1"]
    sync(client, {"workloads": [obs(1, 2, currentNodePools=["a"])]})
    assert pools_of("b") == []
    assert pools_of("a") == ["job-1"]
    sync(client, {"workloads": [obs(1, 3, currentNodePools=[]), obs(2, 2, currentNodePools=["b"])]})
    assert pools_of("a") == []
    assert pools_of("b") == ["job-2"]
    assert get(client, wid(2))["currentNodePools"] == ["b"]


def test_phase_change_without_phase_time_happens_when_observed(client: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1, "Pending", observedAt="2024-05-01T10:00:00Z")]})
    running = obs(1, 2, "Running", observedAt="2024-05-01T10:10:00Z")
    del running["phaseUpdatedAt"]
    sync(client, {"workloads": [running]})
    record = get(client, wid(1))
    assert record["phaseUpdatedAt"] == "2024-05-01T10:10:00.000Z"
    assert record["totalPendingTimeSeconds"] == 600
    again = obs(1, 3, "Running", observedAt="2024-05-01T10:20:00Z", runningPods=2)
    del again["phaseUpdatedAt"]
    sync(client, {"workloads": [again]})
    assert get(client, wid(1))["phaseUpdatedAt"] == "2024-05-01T10:10:00.000Z"


def test_validation_errors_name_the_item_and_field(client: TestClient) -> None:
    def refused(body: bytes | dict[str, Any]) -> str:
        url = f"/api/v1/clusters/{CLUSTER_A}/sync"
        answer = client.post(url, content=body) if isinstance(body, bytes) else client.post(url, json=body)
        assert answer.status_code == 400, answer.text
        message: str = answer.json()["message"]
        return message

    bad_phase = refused({"workloads": [obs(1, 1), obs(2, 1), obs(3, 1, phase="Sleeping")]})
    assert bad_phase.startswith("invalid batch: workloads[2].phase: ")
    assert "invalid batch: workloads[0].revision: " in refused({"workloads": [obs(1, -1)]})
    assert "invalid batch: samples[0].metric: " in refused(
        {"samples": [{"workloadId": wid(1), "metric": "NOPE", "timestamps": [1], "values": [1.0]}]}
    )
    assert "invalid batch: fullResync.id: " in refused({"fullResync": {"id": ""}})
    assert "invalid batch: extra: " in refused({"extra": 1})
    assert refused(b"{not json") == "invalid batch: body: not valid JSON"
    assert refused(b"") == "invalid batch: body: not valid JSON"
    assert refused(b"[]").startswith("invalid batch: body: ")
    # A NUL is refused wherever it hides, whether the item is first or not.
    assert "workloads[1]" in refused({"workloads": [obs(1, 1), obs(2, 1, name="a\x00b")]})
    assert "workloads[0]" in refused({"workloads": [obs(1, 1, images=["x\x00"])]})
    assert client.get("/api/v1/workloads/count").json() == {"count": 0}


def test_cluster_id_defaults_to_the_path_and_must_match_it(client: TestClient) -> None:
    given = obs(2, 1)
    given["clusterId"] = CLUSTER_A.upper()  # the same cluster, written differently
    sync(client, {"workloads": [obs(1, 1), given]})
    assert {get(client, wid(n))["clusterId"] for n in (1, 2)} == {CLUSTER_A}
    other = obs(3, 1)
    other["clusterId"] = CLUSTER_B
    answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [obs(4, 1), other]})
    assert answer.status_code == 400
    assert "workloads[1]" in answer.json()["message"]


def test_the_last_name_reported_for_a_project_wins(client: TestClient, database: Database) -> None:
    names = ["old", "new", "old", "newest"]
    sync(
        client,
        {
            "workloads": [
                obs(n, 1, projectName=name, departmentName=f"d-{name}") for n, name in enumerate(names)
            ]
        },
    )
    with database.read() as conn:
        project = conn.execute(sa.select(projects.c.name).where(projects.c.id == "p1")).scalar_one()
        department = conn.execute(sa.select(departments.c.name).where(departments.c.id == "d1")).scalar_one()
    assert (project, department) == ("newest", "d-newest")


def test_a_batch_is_validated_before_it_waits_for_the_write_lock(
    client: TestClient, database: Database
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("only SQLite has a database-wide write lock")
    with database.write():  # another writer holds the lock for the whole request
        started = time.monotonic()
        answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [obs(1, 1, phase="?")]})
        elapsed = time.monotonic() - started
    assert answer.status_code == 400
    assert elapsed < 3.0  # under the 5 s busy_timeout: the body was refused without a transaction
