"""The official client (runapy 1.224.0, unmodified) reading workload metrics from a real server process,
on SQLite and PostgreSQL: list and single-enum ``metricType``, datetime arguments, 207, a 400."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from runai import models
from runai.exceptions import ApiException
from runai.runai_client import RunaiClient

from tests.api.test_sync import CLUSTER_A, obs, wid
from tests.server import Server
from workplane.domain.timefmt import parse_to_ms

pytestmark = pytest.mark.server

T0 = parse_to_ms("2024-05-01T10:00:00Z")


def _load(server: Server) -> None:
    body = {
        "workloads": [
            obs(1, 1, allocatedResources={"gpu": 2}, runningPods=1, observedAt="2024-05-01T10:00:00Z")
        ],
        "samples": [
            {
                "workloadId": wid(1),
                "metric": "GPU_UTILIZATION",
                "timestamps": [T0 + 15_000 * i for i in range(17)],  # 10:00:00 .. 10:04:00
                "values": [float(i) for i in range(17)],
            }
        ],
    }
    with server.client() as http:
        answer = http.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json=body)
        assert answer.status_code == 200, answer.text


def test_metrics_through_the_official_client(server: Server, runai: RunaiClient) -> None:
    _load(server)
    api = runai.workloads.workloads
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    end = datetime(2024, 5, 1, 10, 4, tzinfo=UTC)
    answer = api.get_workload_metrics(
        wid(1),
        metric_type=[models.WorkloadMetricType.GPU_UTILIZATION, models.WorkloadMetricType.GPU_ALLOCATION],
        start=start,
        end=end,
        number_of_samples=3,
    )
    assert answer.status_code == 200
    parsed = models.MetricsCompositeResponse.from_dict(answer.data)
    by_type = {m.type: [(v.timestamp, v.value) for v in m.values] for m in parsed.measurements}
    # Points at 10:00, 10:02, 10:04; utilisation i at 10:00 + 15 s * i:
    # (09:58, 10:00] -> 0 | (10:00, 10:02] -> 1..8, mean 4.5 | (10:02, 10:04] -> 9..16, mean 12.5
    assert [v for _, v in by_type["GPU_UTILIZATION"]] == ["0", "4.5", "12.5"]
    assert [v for _, v in by_type["GPU_ALLOCATION"]] == ["2", "2", "2"]

    # The client's quirk: a single enum argument goes out as its repr, WorkloadMetricType.GPU_UTILIZATION.
    single = api.get_workload_metrics(
        wid(1),
        metric_type=models.WorkloadMetricType.GPU_UTILIZATION,
        start=start,
        end=end,
        number_of_samples=1,
    )
    assert single.data["measurements"][0]["values"] == [
        {"value": "8.5", "timestamp": "2024-05-01T10:04:00.000Z"}
    ]

    partial = api.get_workload_metrics(
        wid(1),
        metric_type=[models.WorkloadMetricType.NIM_NUM_REQUESTS_RUNNING, models.WorkloadMetricType.POD_COUNT],
        start="2024-05-01T10:00:00Z",
        end="2024-05-01T10:04:00Z",
    )
    assert partial.status_code == 207
    assert [m["type"] for m in partial.data["measurements"]] == ["POD_COUNT"]

    with pytest.raises(ApiException) as refused:
        api.get_workload_metrics(
            wid(1), metric_type=[models.WorkloadMetricType.GPU_UTILIZATION], start=end, end=start
        )
    assert refused.value.status == 400
