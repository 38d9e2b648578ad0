"""GET /api/v1/workloads/{workloadId}/metrics in process: parameters, errors, 207, CSV, API description."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_pods import pid, pod
from tests.api.test_sync import obs, sync, wid
from tests.server import assert_error
from workplane.domain.timefmt import format_ms, parse_to_ms

T0 = parse_to_ms("2024-05-01T10:00:00Z")
START, END = "2024-05-01T10:00:00Z", "2024-05-01T10:04:00Z"


def _load(client: TestClient) -> None:
    sync(
        client,
        {
            "workloads": [
                obs(1, 1, allocatedResources={"gpu": 1}, observedAt=START),
                obs(2, 1, type="Inference", observedAt=START),
            ],
            "samples": [
                {
                    "workloadId": wid(n),
                    "metric": metric,
                    "timestamps": [T0 + 60_000 * i for i in range(5)],
                    "values": values,
                }
                for n, metric, values in (
                    (1, "GPU_UTILIZATION", [10.0, 20.0, 30.0, 40.0, 50.0]),
                    (1, "GPU_MEMORY_USAGE_BYTES", [2**30, 2**30, 2**31, 2**31, 2**31]),
                    (2, "NIM_NUM_REQUESTS_RUNNING", [1.0, 2.0, 3.0, 4.0, 5.0]),
                )
            ],
        },
    )


def _get(client: TestClient, workload: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    params = {"start": START, "end": END, **params}
    return client.get(f"/api/v1/workloads/{workload}/metrics", params=params, headers=headers)


def test_json_answer(client: TestClient) -> None:
    _load(client)
    answer = _get(client, wid(1), metricType="GPU_UTILIZATION,GPU_MEMORY_USAGE_BYTES", numberOfSamples=3)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    # Points at 10:00, 10:02, 10:04, step 2 min: (09:58, 10:00] (10:00, 10:02] (10:02, 10:04]
    assert answer.json() == {
        "measurements": [
            {
                "type": "GPU_UTILIZATION",
                "labels": None,
                "values": [
                    {"value": "10", "timestamp": "2024-05-01T10:00:00.000Z"},
                    {"value": "25", "timestamp": "2024-05-01T10:02:00.000Z"},
                    {"value": "45", "timestamp": "2024-05-01T10:04:00.000Z"},
                ],
            },
            {
                "type": "GPU_MEMORY_USAGE_BYTES",
                "labels": None,
                "values": [
                    {"value": str(2**30), "timestamp": "2024-05-01T10:00:00.000Z"},
                    {"value": str(3 * 2**29), "timestamp": "2024-05-01T10:02:00.000Z"},
                    {"value": str(2**31), "timestamp": "2024-05-01T10:04:00.000Z"},
                ],
            },
        ]
    }


def test_default_twenty_points(client: TestClient) -> None:
    _load(client)
    answer = _get(client, wid(1), metricType="GPU_UTILIZATION")
    values = answer.json()["measurements"][0]["values"]
    # 20 points every 240/19 s: each of the 5 samples falls into exactly one of them.
    assert len(values) == 5
    assert [v["value"] for v in values] == ["10", "20", "30", "40", "50"]


@pytest.mark.parametrize(
    "params",
    [
        [("metricType", "GPU_UTILIZATION,GPU_ALLOCATION")],
        [("metricType", "GPU_UTILIZATION"), ("metricType", "GPU_ALLOCATION")],
        [("metricType", "WorkloadMetricType.GPU_UTILIZATION,WorkloadMetricType.GPU_ALLOCATION")],
        [
            ("metricType", "WorkloadMetricType.GPU_UTILIZATION"),
            ("metricType", "GPU_ALLOCATION,GPU_UTILIZATION"),
        ],
    ],
)
def test_metric_type_forms(client: TestClient, params: list[tuple[str, str]]) -> None:
    _load(client)
    query = [*params, ("start", START), ("end", END), ("numberOfSamples", "1")]
    answer = client.get(f"/api/v1/workloads/{wid(1)}/metrics", params=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()["measurements"]
    assert [m["type"] for m in body] == ["GPU_UTILIZATION", "GPU_ALLOCATION"]
    assert body[0]["values"] == [{"value": "35", "timestamp": "2024-05-01T10:04:00.000Z"}]  # (10:00, 10:04]
    assert body[1]["values"] == [{"value": "1", "timestamp": "2024-05-01T10:04:00.000Z"}]


def test_types_that_cannot_be_served_give_207(client: TestClient) -> None:
    _load(client)
    answer = _get(client, wid(1), metricType="GPU_UTILIZATION,NIM_NUM_REQUESTS_RUNNING", numberOfSamples=1)
    assert answer.status_code == 207, answer.text
    assert [m["type"] for m in answer.json()["measurements"]] == ["GPU_UTILIZATION"]
    # NIM series are served for an inference workload; the percentile histograms never are.
    answer = _get(client, wid(2), metricType="NIM_NUM_REQUESTS_RUNNING", numberOfSamples=1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["measurements"][0]["values"] == [
        {"value": "3.5", "timestamp": "2024-05-01T10:04:00.000Z"}
    ]
    answer = _get(client, wid(2), metricType="NIM_TIME_TO_FIRST_TOKEN_SECONDS_PERCENTILES")
    assert answer.status_code == 207
    assert answer.json() == {"measurements": []}


def test_csv(client: TestClient) -> None:
    _load(client)
    answer = _get(
        client,
        wid(1),
        metricType="GPU_UTILIZATION,RUNNING_POD_COUNT",
        numberOfSamples=0,
        headers={"Accept": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["type", "timestamp", "value"]
    expected = [["GPU_UTILIZATION", format_ms(T0 + 60_000 * i), str(10 * (i + 1))] for i in range(5)]
    # Raw derived series: the value at start (the workload reported 0 running pods).
    expected.append(["RUNNING_POD_COUNT", format_ms(T0), "0"])
    assert rows[1:] == expected


def test_csv_with_207(client: TestClient) -> None:
    _load(client)
    answer = client.get(
        f"/api/v1/workloads/{wid(1)}/metrics",
        params={"metricType": "NIM_GPU_CACHE_USAGE_PERC", "start": START, "end": END},
        headers={"Accept": "text/csv"},
    )
    assert answer.status_code == 207
    assert answer.text == "type,timestamp,value\r\n"


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"metricType": "GPU_UTILIZATION", "start": END, "end": START}, ["start"]),
        ({"metricType": "GPU_UTILIZATION", "start": START, "end": START}, ["start"]),
        ({"metricType": "GPU_UTILIZATION", "start": "yesterday", "end": END}, ["start", "yesterday"]),
        ({"metricType": "GPU_UTILIZATION", "start": START, "end": "2024-13-01"}, ["end", "2024-13-01"]),
        ({"metricType": "GPU_UTILIZATION", "end": END}, ["start"]),
        ({"metricType": "GPU_UTILIZATION", "start": START}, ["end"]),
        ({"start": START, "end": END}, ["metricType"]),
        ({"metricType": "", "start": START, "end": END}, ["metricType"]),
        ({"metricType": "GPU_UTILISATION", "start": START, "end": END}, ["metricType", "GPU_UTILISATION"]),
        ({"metricType": "GPU_UTILIZATION,BOGUS", "start": START, "end": END}, ["metricType", "BOGUS"]),
        (
            {"metricType": "GPU_UTILIZATION", "start": START, "end": END, "numberOfSamples": 1001},
            ["numberOfSamples"],
        ),
        (
            {"metricType": "GPU_UTILIZATION", "start": START, "end": END, "numberOfSamples": -1},
            ["numberOfSamples"],
        ),
        (
            {"metricType": "GPU_UTILIZATION", "start": START, "end": END, "numberOfSamples": "ten"},
            ["numberOfSamples"],
        ),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    client: TestClient, params: dict[str, Any], mentions: list[str]
) -> None:
    _load(client)
    assert_error(client.get(f"/api/v1/workloads/{wid(1)}/metrics", params=params), 400, *mentions)


def test_unknown_workload_and_bad_id(client: TestClient) -> None:
    params = {"metricType": "GPU_UTILIZATION", "start": START, "end": END}
    assert_error(client.get(f"/api/v1/workloads/{uuid.uuid4()}/metrics", params=params), 404, "not found")
    assert_error(
        client.get("/api/v1/workloads/not-a-uuid/metrics", params=params), 400, "workloadId", "not-a-uuid"
    )


def test_needs_a_token(anonymous: TestClient) -> None:
    params = {"metricType": "GPU_UTILIZATION", "start": START, "end": END}
    assert_error(anonymous.get(f"/api/v1/workloads/{uuid.uuid4()}/metrics", params=params), 401)


def test_api_description(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/v1/workloads/{workloadId}/metrics"]["get"]
    assert operation["operationId"] == "get_workload_metrics"
    for status in ("200", "207"):
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/MetricsCompositeResponse"}
    assert "422" not in operation["responses"]
    assert "MetricsCompositeResponse" in document["components"]["schemas"]
    assert "MeasurementResponse" in document["components"]["schemas"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"metricType", "start", "end", "numberOfSamples", "workloadId"} <= names


def test_pod_metrics_from_the_embedded_store(client: TestClient) -> None:
    """The embedded store keeps one series per workload: a pod's types are all 207, with no values."""
    _load(client)
    sync(client, {"pods": [pod(1, 1, 1)]})
    route = f"/api/v1/workloads/{wid(1)}/pods/{pid(1)}/metrics"
    params = {"start": START, "end": END, "metricType": "GPU_UTILIZATION,GPU_UTILIZATION_PER_GPU"}
    answer = client.get(route, params=params)
    assert answer.status_code == 207, answer.text
    assert answer.json() == {"measurements": []}
    assert_error(client.get(f"/api/v1/workloads/{wid(1)}/pods/{pid(2)}/metrics", params=params), 404, pid(2))
    assert_error(client.get(f"/api/v1/workloads/{wid(1)}/pods/nope/metrics", params=params), 400, "podId")
    bad_type = {**params, "metricType": "GPU_ALLOCATION"}  # a workload type, not a pod type
    assert_error(client.get(route, params=bad_type), 400, "GPU_ALLOCATION")
