"""The official Run:ai client, ``runapy`` 1.224.0, unmodified, against a real ``workplane serve`` process.

The module's tests share a server per store (SQLite and PostgreSQL; ``shared_server``): its first
start seeded the catalog and created the administrator key, and each test finds the store emptied and
so seeded again, loads workloads through the store's own write functions, and drives every call
through the client. Every record that comes back is
validated against the client's own pydantic models, and its keys against the upstream schema (a
model's ``from_dict`` reads keys with ``.get`` and would not notice a missing required one). Two
checks of the served record shape need no client and use the in-process app.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from runai import models
from runai.api_client import ApiClient
from runai.configuration import Configuration
from runai.exceptions import ApiException
from runai.runai_client import RunaiClient

from tests.factories import load, wid, workload
from tests.server import Server
from workplane.api.openapi import upstream_schemas
from workplane.domain.catalog import catalog_id
from workplane.domain.timefmt import now_ms
from workplane.store import workloads as store
from workplane.store.database import Database

pytestmark = [pytest.mark.server, pytest.mark.shared_server]

DEPLOY = catalog_id("category", "Deploy")
TRAIN = catalog_id("category", "Train")
BUILD = catalog_id("category", "Build")


def _schemas() -> dict[str, Any]:
    return upstream_schemas()  # Run:ai's component schemas, as shipped with the server


def _required(schema: str) -> set[str]:
    """The keys the upstream schema marks required (following ``allOf``)."""
    node = _schemas()[schema]
    required = set(node.get("required", []))
    for part in node.get("allOf", []):
        if "$ref" in part:
            required |= _required(part["$ref"].rsplit("/", 1)[1])
        required |= set(part.get("required", []))
    return required


def _known_keys(model: type[Any]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def validated(model: type[Any], record: dict[str, Any], schema: str) -> Any:
    """``record`` parsed by the client's model, after checking its keys against the upstream schema."""
    missing = _required(schema) - set(record)
    assert not missing, f"{schema} lacks required {sorted(missing)}: {record}"
    unknown = set(record) - _known_keys(model)
    assert not unknown, f"{schema} has keys the client does not know: {sorted(unknown)}"
    return model.from_dict(record)


def _client(server: Server, **config: Any) -> RunaiClient:
    configuration = Configuration(
        client_id=server.client_id,
        client_secret=server.client_secret,
        runai_base_url=server.base_url,
        **config,
    )
    return RunaiClient(ApiClient(configuration))


def _names(page: dict[str, Any]) -> list[str]:
    return [w["name"] for w in page["workloads"]]


def _load_inventory(database: Database) -> None:
    load(
        database,
        workload(
            "train-a",
            allocatedResources={"gpu": 2, "gpuMemory": "10Gi", "cpu": 1.5, "cpuMemory": "200Mi"},
            currentNodePools=["pool-1"],
            images=["nvcr.io/nvidia/pytorch:24.01"],
            submittedBy="alice@example.com",
        ),
        workload(
            "train-b", phase="Pending", projectId="2", projectName="proj-b", createdAt="2024-05-02T00:00:00Z"
        ),
        workload("ray-own", type="RayJob", category="Build", createdAt="2024-05-03T00:00:00Z"),
        workload("ray-default", type="RayJob", createdAt="2024-05-04T00:00:00Z", submittedBy="ops,team"),
        workload(
            "serve-1",
            type="Inference",
            phase="Completed",
            createdAt="2024-05-05T00:00:00Z",
            pendingSchedulingMessages=[
                {
                    "nodePool": "default",
                    "phaseReason": "OverLimit",
                    "reason": "Over limit",
                    "userMessage": "waiting for a node",
                }
            ],
        ),
        workload("gone", phase="Failed", createdAt="2024-05-06T00:00:00Z"),
    )
    with database.write() as conn:
        store.delete_workload(conn, str(wid("gone")), deleted_at_ms=now_ms())


def test_the_client_obtains_reads_and_refreshes_its_token(server: Server) -> None:
    client = _client(server)
    try:
        api_client = client.api_client
        # At construction the client fetched a token (app_token, AppId/AppSecret) and parsed the JWT
        # payload with standard base64 to find its expiry.
        assert abs(api_client.token_refresher._token_expiry - (time.time() + 3600)) < 60
        assert api_client.default_headers["authorization"] == f"Bearer {api_client._token}"
        assert client.workloads.workloads.count_workloads().data == {"count": 0}
    finally:
        client.close()

    # A refresh margin longer than the token lifetime makes every call fetch and parse a new token.
    client = _client(server, token_refresh_margin=10**6)
    try:
        seen = {client.api_client._token}
        for _ in range(5):
            assert client.workloads.workloads.count_workloads().data == {"count": 0}
            seen.add(client.api_client._token)
        assert len(seen) == 6
    finally:
        client.close()


def test_list_filter_search_sort_page_and_count(runai: RunaiClient, database: Database) -> None:
    _load_inventory(database)
    api = runai.workloads.workloads

    def listed(**params: Any) -> list[str]:
        answer = api.get_workloads(**params)
        assert answer.status_code == 200
        page = answer.data
        assert set(page) <= {"workloads", "next"}
        models.GetWorkloads200Response.from_dict(page)
        for record in page["workloads"]:
            parsed = validated(models.Workload, record, "Workload")
            assert str(parsed.id) == record["id"]
        count_params = {k: v for k, v in params.items() if k in ("deleted", "filter_by", "search")}
        counted = api.count_workloads(**count_params).data
        models.CountResponse.from_dict(counted)
        if "limit" not in params and "offset" not in params:
            assert counted["count"] == len(page["workloads"])
        return _names(page)

    assert listed() == ["train-a", "train-b", "ray-own", "ray-default", "serve-1"]
    # The client joins list parameters with commas into one percent-encoded value.
    assert listed(filter_by=["phase==Running", "type==Training"]) == ["train-a"]
    assert listed(filter_by=["createdAt>=2024-05-02", "name=^RAY"]) == ["ray-own", "ray-default"]
    assert listed(filter_by=["submittedBy==ops,team", "phase==Running"]) == ["ray-default"]
    assert listed(filter_by=["allocatedGPU>=2", "nodepool==pool-1"]) == ["train-a"]
    assert listed(filter_by=["category==Build"]) == ["ray-own"]
    assert listed(filter_by=["projectName!=proj-a"]) == ["train-b"]
    assert listed(search="pytorch alice") == ["train-a"]
    assert listed(search="ray") == ["ray-own", "ray-default"]
    assert listed(deleted=True) == ["gone"]
    assert listed(deleted=False, filter_by=["phase==Failed"]) == []
    assert listed(sort_by="name", sort_order="desc") == [
        "train-b",
        "train-a",
        "serve-1",
        "ray-own",
        "ray-default",
    ]
    # Ties on the sort key are broken by id, in the same direction.
    trains = sorted(["train-a", "train-b", "ray-default"], key=lambda label: str(wid(label)))
    assert listed(sort_by="category") == ["ray-own", "serve-1", *trains]
    assert listed(sort_by="category", sort_order="desc") == [*reversed(trains), "serve-1", "ray-own"]

    pages: list[list[str]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get_workloads(sort_by="name", sort_order="asc", limit=2, offset=offset).data
        models.GetWorkloads200Response.from_dict(page)
        pages.append(_names(page))
        offset = page.get("next")
    assert pages == [["ray-default", "ray-own"], ["serve-1", "train-a"], ["train-b"]]


def test_get_one_workload(runai: RunaiClient, database: Database) -> None:
    _load_inventory(database)
    api = runai.workloads.workloads
    record = api.get_workload(str(wid("serve-1"))).data
    detailed = validated(models.WorkloadDetailed, record, "WorkloadDetailed")
    assert detailed.name == "serve-1"
    assert detailed.category == "Deploy"
    assert detailed.priority_class_name == "very-high"
    assert detailed.priority == 150
    assert detailed.preemptible is False
    assert detailed.pending_scheduling_messages is not None
    assert detailed.pending_scheduling_messages[0].user_message == "waiting for a node"

    gone = validated(models.WorkloadDetailed, api.get_workload(str(wid("gone"))).data, "WorkloadDetailed")
    assert gone.deleted_at is not None
    assert gone.phase == models.Phase.FAILED

    with pytest.raises(ApiException) as raised:
        api.get_workload(str(wid("no-such-workload")))
    assert raised.value.status == 404
    error = models.Error.from_dict(json.loads(raised.value.body))
    assert error.code == 404


def test_categories_priorities_and_types(runai: RunaiClient) -> None:
    properties = runai.workloads.workload_properties

    categories = properties.list_categories().data
    models.ListCategories200Response.from_dict(categories)
    by_name = {
        c["name"]: validated(models.WorkloadCategory, c, "WorkloadCategory") for c in categories["categories"]
    }
    assert sorted(by_name) == ["Build", "Deploy", "Train"]
    assert {name: c.id for name, c in by_name.items()} == {"Build": BUILD, "Deploy": DEPLOY, "Train": TRAIN}
    for category in categories["categories"]:
        one = properties.get_category_by_id(category["id"]).data
        assert validated(models.WorkloadCategory, one, "WorkloadCategory").name == category["name"]

    priorities = properties.get_workload_priorities().data
    models.GetWorkloadPriorities200Response.from_dict(priorities)
    parsed = [validated(models.WorkloadPriority, p, "WorkloadPriority") for p in priorities["priorities"]]
    assert {p.name: p.value for p in parsed} == {
        "very-low": 25,
        "low": 40,
        "medium-low": 65,
        "medium": 80,
        "medium-high": 90,
        "high": 125,
        "very-high": 150,
    }

    every = properties.list_workload_types().data["types"]
    external = properties.list_workload_types(external_types_only=True).data["types"]
    names = {t["name"] for t in every}
    assert {"Workspace", "Training", "Distributed", "Inference", "DistributedInference"} <= names
    assert {t["name"] for t in external} == names - {
        "Workspace",
        "Training",
        "Distributed",
        "Inference",
        "DistributedInference",
    }
    for record in every:
        assert validated(models.WorkloadTypeConfig, record, "WorkloadTypeConfig").id == record["id"]
        one = properties.get_workload_type(record["id"]).data
        assert one == record

    kubeflow = properties.list_workload_types(filter_by=["group==kubeflow.org", "name=^p"]).data["types"]
    assert [t["name"] for t in kubeflow] == ["PyTorchJob"]


def test_the_pod_type_validates_against_the_client_model(client: TestClient) -> None:
    pods = client.get("/api/v1/workload-types", params={"filterBy": "name==Pod"}).json()["types"]
    assert len(pods) == 1
    models.WorkloadTypeConfig.from_dict(pods[0])


def test_every_readable_field_of_the_workload_schema_is_served(
    client: TestClient, database: Database
) -> None:
    optional_strings = {
        "submittedBy": "alice",
        "phaseMessage": "scheduled",
        "command": "python",
        "arguments": "train.py",
        "distributedFramework": "PyTorch",
        "aiApplicationId": "app-1",
        "aiApplicationName": "chat",
    }
    load(database, workload("full", **optional_strings), workload("plain"))
    properties = _schemas()["Workload"]["properties"]
    readable = {name for name, schema in properties.items() if not schema.get("writeOnly")}
    full = client.get(f"/api/v1/workloads/{wid('full')}").json()
    assert sorted((readable | {"pendingSchedulingMessages"}) - set(full)) == []
    assert {k: full[k] for k in optional_strings} == optional_strings
    # Optional strings the schema does not let be null are left out while unknown.
    plain = client.get(f"/api/v1/workloads/{wid('plain')}").json()
    assert sorted((readable | {"pendingSchedulingMessages"}) - set(plain)) == sorted(optional_strings)


def test_put_on_a_type_recategorises_its_workloads(runai: RunaiClient, database: Database) -> None:
    _load_inventory(database)
    properties = runai.workloads.workload_properties
    api = runai.workloads.workloads
    ray_job = catalog_id("type", "RayJob", "ray.io")

    assert api.get_workload(str(wid("ray-default"))).data["category"] == "Train"
    assert api.count_workloads(filter_by=["category==Deploy"]).data == {"count": 1}  # serve-1

    answer = properties.update_workload_type(
        ray_job,
        models.WorkloadTypeUpdateFields(category_id=DEPLOY, priority_id=catalog_id("priority", "medium")),
    )
    updated = validated(models.WorkloadTypeConfig, answer.data, "WorkloadTypeConfig")
    assert (updated.category_name, updated.priority_name) == ("Deploy", "medium")
    assert updated.updated_by == runai.api_client.configuration.client_id

    moved = validated(
        models.WorkloadDetailed, api.get_workload(str(wid("ray-default"))).data, "WorkloadDetailed"
    )
    assert (moved.category, moved.priority_class_name, moved.priority) == ("Deploy", "medium", 80)
    kept = validated(models.WorkloadDetailed, api.get_workload(str(wid("ray-own"))).data, "WorkloadDetailed")
    assert kept.category == "Build"  # given at submission: the type's default does not apply

    deploy = api.get_workloads(filter_by=["category==Deploy"], sort_by="name").data
    assert _names(deploy) == ["ray-default", "serve-1"]
    assert api.count_workloads(filter_by=["category==Deploy"]).data == {"count": 2}
    assert _names(api.get_workloads(filter_by=["type==RayJob"]).data) == ["ray-own", "ray-default"]
    assert [w["category"] for w in api.get_workloads(filter_by=["type==RayJob"]).data["workloads"]] == [
        "Build",
        "Deploy",
    ]
