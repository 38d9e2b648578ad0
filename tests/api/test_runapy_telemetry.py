"""The official Run:ai client, ``runapy`` 1.224.0, unmodified, calling ``get_workloads_telemetry`` on a
real ``workplane serve`` process (SQLite and PostgreSQL).

The client sends ``telemetryType`` as its enum's repr (``WorkloadTelemetryType.GPU_ALLOCATION``) and
``groupBy`` / ``filterByPhases`` comma-joined in one parameter; every answer must equal what a plain
HTTP request with the canonical values gets, and parse with the client's own model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from runai import models
from runai.exceptions import ApiException
from runai.runai_client import RunaiClient

from tests.factories import CLUSTER, load, wid, workload
from tests.server import Server
from workplane.domain.timefmt import now_ms
from workplane.store import workloads as store
from workplane.store.database import Database

pytestmark = [pytest.mark.server, pytest.mark.shared_server]

TELEMETRY = "/api/v1/workloads/telemetry"


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _load(database: Database) -> None:
    load(
        database,
        workload("a", allocatedResources={"gpu": 2}, currentNodePools=["pool-1", "pool-2"]),
        workload("b", allocatedResources={"gpu": 0.5}, currentNodePools=["pool-1"], type="PyTorchJob"),
        workload("c", phase="Pending", projectId="2", projectName="proj-b"),
        workload("d", phase="Pending", departmentId="20", departmentName="dept-y", type="RayJob"),
        workload("e", phase="Completed", currentNodePools=["pool-2"]),
        workload("gone", allocatedResources={"gpu": 8}, currentNodePools=["pool-1"]),
    )
    with database.write() as conn:
        store.delete_workload(conn, str(wid("gone")), deleted_at_ms=now_ms())


CALLS: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"telemetry_type": models.WorkloadTelemetryType.WORKLOADS_COUNT}, {"telemetryType": "WORKLOADS_COUNT"}),
    (
        {
            "telemetry_type": models.WorkloadTelemetryType.GPU_ALLOCATION,
            "group_by": ["ProjectId", "CurrentNodepools"],
        },
        {"telemetryType": "GPU_ALLOCATION", "groupBy": "ProjectId,CurrentNodepools"},
    ),
    (
        {
            "telemetry_type": models.WorkloadTelemetryType.WORKLOADS_COUNT,
            "group_by": ["Type", "Phase"],
            "filter_by_phases": [models.Phase.RUNNING, models.Phase.PENDING],
            "cluster_id": str(CLUSTER),
            "department_id": "10",
        },
        {
            "telemetryType": "WORKLOADS_COUNT",
            "groupBy": "Type,Phase",
            "filterByPhases": "Running,Pending",
            "clusterId": str(CLUSTER),
            "departmentId": "10",
        },
    ),
    (
        {"telemetry_type": models.WorkloadTelemetryType.GPU_ALLOCATION, "nodepool_name": "pool-1"},
        {"telemetryType": "GPU_ALLOCATION", "nodepoolName": "pool-1"},
    ),
    (
        {
            "telemetry_type": models.WorkloadTelemetryType.PENDING_TIME_DISTRIBUTION,
            "group_by": ["DepartmentId"],
        },
        {"telemetryType": "PENDING_TIME_DISTRIBUTION", "groupBy": "DepartmentId"},
    ),
]


def test_the_client_reads_telemetry(runai: RunaiClient, http: httpx.Client, database: Database) -> None:
    _load(database)
    api = runai.workloads.workloads
    for arguments, params in CALLS:
        answer = api.get_workloads_telemetry(**arguments)
        assert answer.status_code == 200
        parsed = models.TelemetryResponse.from_dict(answer.data)
        assert parsed.type == params["telemetryType"]
        plain = http.get(TELEMETRY, params=params).json()
        assert {k: v for k, v in answer.data.items() if k != "timestamp"} == {
            k: v for k, v in plain.items() if k != "timestamp"
        }, params

    count = api.get_workloads_telemetry(telemetry_type=models.WorkloadTelemetryType.WORKLOADS_COUNT).data
    assert count["values"] == [{"value": "5"}]
    gpus = api.get_workloads_telemetry(
        telemetry_type=models.WorkloadTelemetryType.GPU_ALLOCATION, group_by=["CurrentNodepools"]
    ).data
    assert [(v["groups"][0]["value"], v["value"]) for v in gpus["values"]] == [
        ("pool-1", "2.5"),
        ("pool-2", "2"),
    ]
    pending = api.get_workloads_telemetry(
        telemetry_type=models.WorkloadTelemetryType.PENDING_TIME_DISTRIBUTION
    ).data
    assert [(v["groups"][0]["value"], v["value"]) for v in pending["values"]] == [
        ("0-5m", "0"),
        ("5m-1h", "0"),
        ("1h-24h", "0"),
        ("24h+", "2"),  # pending since their creation in 2024
    ]


def test_the_client_gets_400_for_bad_input(runai: RunaiClient) -> None:
    api = runai.workloads.workloads
    with pytest.raises(ApiException) as raised:
        api.get_workloads_telemetry(
            telemetry_type=models.WorkloadTelemetryType.WORKLOADS_COUNT,
            group_by=["Type", "Phase", "ProjectId"],
        )
    assert raised.value.status == 400
    error = models.Error.from_dict(json.loads(raised.value.body))
    assert error.code == 400
    assert "groupBy" in error.message
    with pytest.raises(ApiException) as raised:
        api.get_workloads_telemetry(
            telemetry_type=models.WorkloadTelemetryType.WORKLOADS_COUNT, cluster_id="not-a-uuid"
        )
    assert raised.value.status == 400
