"""The embedded metrics store through the sync protocol, on SQLite and PostgreSQL: derived series from
the workload's history, measured series from stored samples, compaction, retention and idle GPUs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_sync import obs, sync, wid
from workplane.domain.timefmt import format_ms, parse_to_ms
from workplane.metrics import codec
from workplane.metrics.store import BLOCK_MS, COMPACT_OPEN_AT, compact, purge_samples
from workplane.services.retention import maintain_metrics_once
from workplane.store.database import Database
from workplane.store.schema import metric_chunks, workload_history

T0 = parse_to_ms("2024-05-01T10:00:00Z")
MIN = 60_000


def at(minutes: float) -> str:
    return format_ms(T0 + int(minutes * MIN)) or ""


def metrics(client: TestClient, workload: str, types: str, start: str, end: str, n: int) -> dict[str, Any]:
    answer = client.get(
        f"/api/v1/workloads/{workload}/metrics",
        params={"metricType": types, "start": start, "end": end, "numberOfSamples": n},
    )
    assert answer.status_code == 200, answer.text
    return {
        m["type"]: [(v["timestamp"], v["value"]) for v in m["values"]] for m in answer.json()["measurements"]
    }


def utilisation(workload: str, minutes: list[float], values: list[float]) -> dict[str, Any]:
    return {
        "workloadId": workload,
        "metric": "GPU_UTILIZATION",
        "timestamps": [T0 + int(m * MIN) for m in minutes],
        "values": values,
    }


def test_derived_series_follow_the_history(client: TestClient) -> None:
    common = {"createdAt": at(0), "requestedPods": {"number": 2}}
    sync(client, {"workloads": [obs(1, 1, "Pending", phaseUpdatedAt=at(0), observedAt=at(0), **common)]})
    sync(
        client,
        {
            "workloads": [
                obs(
                    1,
                    2,
                    "Running",
                    phaseUpdatedAt=at(10),
                    observedAt=at(10),
                    runningPods=2,
                    allocatedResources={"gpu": 2},
                    **common,
                )
            ]
        },
    )
    sync(
        client,
        {
            "workloads": [
                obs(
                    1,
                    3,
                    "Running",
                    phaseUpdatedAt=at(10),
                    observedAt=at(20),
                    runningPods=1,
                    allocatedResources={"gpu": 1},
                    **common,
                )
            ]
        },
    )
    types = "GPU_ALLOCATION,POD_COUNT,RUNNING_POD_COUNT"
    got = metrics(client, wid(1), types, at(-10), at(30), 5)  # points at -10, 0, 10, 20, 30 minutes
    assert got["GPU_ALLOCATION"] == [(at(10), "2"), (at(20), "1"), (at(30), "1")]  # none while Pending
    assert got["RUNNING_POD_COUNT"] == [(at(0), "0"), (at(10), "2"), (at(20), "1"), (at(30), "1")]
    assert got["POD_COUNT"] == [(at(0), "2"), (at(10), "2"), (at(20), "2"), (at(30), "2")]
    # Pods rise and fall: the raw form is the value at start and every change.
    raw = metrics(client, wid(1), "RUNNING_POD_COUNT", at(5), at(30), 0)
    assert raw["RUNNING_POD_COUNT"] == [(at(5), "0"), (at(10), "2"), (at(20), "1")]
    # Deleted at minute 25: nothing after it.
    sync(
        client,
        {
            "workloads": [
                obs(
                    1,
                    4,
                    "Running",
                    phaseUpdatedAt=at(10),
                    observedAt=at(25),
                    runningPods=1,
                    allocatedResources={"gpu": 1},
                    deletedAt=at(25),
                    **common,
                )
            ]
        },
    )
    got = metrics(client, wid(1), "GPU_ALLOCATION", at(-10), at(30), 5)
    assert got["GPU_ALLOCATION"] == [(at(10), "2"), (at(20), "1")]
    # Entirely before the workload existed.
    assert metrics(client, wid(1), "GPU_ALLOCATION", at(-60), at(-1), 10) == {"GPU_ALLOCATION": []}


def test_measured_series_in_several_chunks_and_after_compaction(
    client: TestClient, database: Database
) -> None:
    sync(client, {"workloads": [obs(1, 1, allocatedResources={"gpu": 1})]})
    # One sample a minute for 20 minutes, in four batches; values = the minute.
    for part in range(4):
        minutes = [5 * part + i for i in range(5)]
        sync(client, {"samples": [utilisation(wid(1), minutes, [float(m) for m in minutes])]})
    # Points at 0, 5, 10, 15, 20 (step 5): 0 | 1..5 | 6..10 | 11..15 | 16..19
    expected = [(at(0), "0"), (at(5), "3"), (at(10), "8"), (at(15), "13"), (at(20), "17.5")]
    assert metrics(client, wid(1), "GPU_UTILIZATION", at(0), at(20), 5)["GPU_UTILIZATION"] == expected
    with database.write() as conn:
        assert compact(conn, now_ms=T0 + 2 * BLOCK_MS) == 1
        rows = conn.execute(metric_chunks.select()).all()
    assert len(rows) == 1
    assert rows[0].count == 20
    assert metrics(client, wid(1), "GPU_UTILIZATION", at(0), at(20), 5)["GPU_UTILIZATION"] == expected
    raw = metrics(client, wid(1), "GPU_UTILIZATION", at(3), at(5), 0)["GPU_UTILIZATION"]
    assert raw == [(at(3), "3"), (at(4), "4"), (at(5), "5")]
    # A batch re-sent after compaction is stored again but counts once.
    sync(client, {"samples": [utilisation(wid(1), [10, 11, 12, 13, 14], [10.0, 11.0, 12.0, 13.0, 14.0])]})
    assert metrics(client, wid(1), "GPU_UTILIZATION", at(0), at(20), 5)["GPU_UTILIZATION"] == expected


def test_samples_are_split_by_day(client: TestClient, database: Database) -> None:
    sync(client, {"workloads": [obs(1, 1)]})
    midnight = (T0 // BLOCK_MS + 1) * BLOCK_MS
    times = [midnight - 30_000, midnight - 15_000, midnight, midnight + 15_000]
    sync(
        client,
        {
            "samples": [
                {
                    "workloadId": wid(1),
                    "metric": "CPU_USAGE_CORES",
                    "timestamps": times,
                    "values": [1.5, 2.5, 3.5, 4.5],
                }
            ]
        },
    )
    with database.read() as conn:
        rows = conn.execute(metric_chunks.select().order_by(metric_chunks.c.start_ms)).all()
    assert [(r.start_ms, r.end_ms) for r in rows] == [(times[0], times[1]), (times[2], times[3])]
    assert [codec.decode(r.data)[1] for r in rows] == [[1.5, 2.5], [3.5, 4.5]]


def test_retention_drops_old_chunks_and_keeps_history(client: TestClient, database: Database) -> None:
    sync(client, {"workloads": [obs(1, 1, allocatedResources={"gpu": 1})]})
    day = 24 * 60
    for first_day in (0, 1, 2):  # three chunks, one per day
        minutes = [first_day * day + m for m in (0, 60, 120)]
        sync(client, {"samples": [utilisation(wid(1), minutes, [1.0, 2.0, 3.0])]})
    with database.write() as conn:
        # Cut-off inside day 1's chunk (between its 1st and 3rd sample): day 0 goes, day 1 stays whole.
        assert purge_samples(conn, older_than_ms=T0 + (day + 90) * MIN) == 1
        remaining = sorted(r.start_ms for r in conn.execute(metric_chunks.select()).all())
        history = conn.execute(workload_history.select()).all()
    assert remaining == [T0 + day * MIN, T0 + 2 * day * MIN]
    assert len(history) == 1
    got = metrics(client, wid(1), "GPU_UTILIZATION,GPU_ALLOCATION", at(0), at(3 * day), 0)
    assert got["GPU_UTILIZATION"][0][0] == at(day)
    assert got["GPU_ALLOCATION"] == [(at(0), "1")]
    # The maintenance job applies the retention setting to the clock.
    dropped, _merged = maintain_metrics_once(database, 30, now=T0 + (2 * day + 100) * MIN + 30 * BLOCK_MS)
    assert dropped == 1


def _idle(client: TestClient, workload: str) -> tuple[Any, Any]:
    record = client.get(f"/api/v1/workloads/{workload}").json()
    return record["idleGpus"], record["idleAllocatedGpus"]


def _count(client: TestClient, filter_by: str) -> int:
    answer = client.get("/api/v1/workloads/count", params={"filterBy": filter_by})
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["count"]
    return count


def test_idle_gpus_from_samples(client: TestClient) -> None:
    sync(
        client,
        {"workloads": [obs(1, 1, allocatedResources={"gpu": 2}), obs(2, 1, allocatedResources={"gpu": 0.5})]},
    )
    assert _idle(client, wid(1)) == (None, None)  # no samples: unknown
    quarter = 0.25  # minutes: 15-second samples
    busy_then_idle = [50.0] + [0.0] * 21  # 21 zeros: exactly 5 minutes, not more
    minutes = [i * quarter for i in range(len(busy_then_idle))]
    sync(client, {"samples": [utilisation(wid(1), minutes, busy_then_idle)]})
    assert _idle(client, wid(1)) == (0, 0.0)
    sync(
        client,
        {"samples": [utilisation(wid(1), [22 * quarter], [0.0]), utilisation(wid(2), [0, 6], [0.0, 0.0])]},
    )
    assert _idle(client, wid(1)) == (2, 2.0)
    assert _idle(client, wid(2)) == (0, 0.5)
    assert _count(client, "idleAllocatedGpus>=0.5") == 2
    assert _count(client, "idleGpus>=1") == 1
    # A new allocation while idle: all of it is idle.
    sync(client, {"workloads": [obs(1, 2, allocatedResources={"gpu": 4})]})
    assert _idle(client, wid(1)) == (4, 4.0)
    # Any use ends it.
    sync(client, {"samples": [utilisation(wid(1), [23 * quarter], [12.5])]})
    assert _idle(client, wid(1)) == (0, 0.0)
    assert _count(client, "idleGpus>=1") == 0


def test_samples_for_another_clusters_workload_are_refused(client: TestClient) -> None:
    sync(client, {"workloads": [obs(1, 1)]})
    other = "bbbbbbbb-0000-4000-8000-000000000002"
    answer = client.post(
        f"/api/v1/clusters/{other}/sync", json={"samples": [utilisation(wid(1), [0], [1.0])]}
    )
    assert answer.status_code == 400
    assert "samples[0]" in answer.json()["message"]


def test_the_current_day_is_compacted_once_it_has_many_chunks(client: TestClient, database: Database) -> None:
    sync(client, {"workloads": [obs(1, 1)]})
    now = (T0 // BLOCK_MS + 10) * BLOCK_MS + 12 * 3600_000  # noon of a later day
    day_start = now // BLOCK_MS * BLOCK_MS
    for batch in range(COMPACT_OPEN_AT):
        times = [day_start + 60_000 * (batch * 2 + i) for i in range(2)]
        sync(
            client,
            {
                "samples": [
                    {
                        "workloadId": wid(1),
                        "metric": "CPU_USAGE_CORES",
                        "timestamps": times,
                        "values": [1.0, 2.0],
                    }
                ]
            },
        )
        with database.write() as conn:
            merged = compact(conn, now_ms=now)
        # The day is not over: its chunks are merged only once there are COMPACT_OPEN_AT of them.
        assert merged == (1 if batch == COMPACT_OPEN_AT - 1 else 0)
    with database.read() as conn:
        rows = conn.execute(metric_chunks.select()).all()
    assert len(rows) == 1
    assert rows[0].count == 2 * COMPACT_OPEN_AT
