"""Workload categories, priorities and types (docs/contract.md §6), through the HTTP API.

The expected catalog is written out here from docs/contract.md, not read from ``workplane.domain.catalog``,
so that a change to the seeded data shows up as a failure.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.factories import load, wid, workload
from tests.server import assert_error
from workplane.api.deps import Services
from workplane.app import create_app
from workplane.auth.credentials import ADMIN_CLIENT_ID, ADMIN_ROLE
from workplane.domain.catalog import catalog_id
from workplane.domain.timefmt import parse_time
from workplane.store.database import Database
from workplane.store.schema import workload_types

CATEGORIES = "/api/v1/workload-categories"
PRIORITIES = "/api/v1/workload-priorities"
TYPES = "/api/v1/workload-types"
WORKLOADS = "/api/v1/workloads"

PRIORITY_VALUES = {
    "very-low": 25,
    "low": 40,
    "medium-low": 65,
    "medium": 80,
    "medium-high": 90,
    "high": 125,
    "very-high": 150,
}
CATEGORY_PRIORITY = {"Build": "high", "Train": "low", "Deploy": "very-high"}
NATIVE = {
    "Workspace": "Build",
    "Training": "Train",
    "Distributed": "Train",
    "Inference": "Deploy",
    "DistributedInference": "Deploy",
}
EXTERNAL = {  # name: (group, category)
    "AMLJob": ("amlarc.azureml.com", "Train"),
    "CronJob": ("batch", "Deploy"),
    "Deployment": ("apps", "Deploy"),
    "DevWorkspace": ("workspace.devfile.io", "Build"),
    "DynamoGraphDeployment": ("nvidia.com", "Deploy"),
    "InferenceService": ("serving.kserve.io", "Deploy"),
    "JAXJob": ("kubeflow.org", "Train"),
    "Job": ("batch", "Build"),
    "JobSet": ("jobset.x-k8s.io", "Train"),
    "LeaderWorkerSet": ("leaderworkerset.x-k8s.io", "Deploy"),
    "MPIJob": ("kubeflow.org", "Train"),
    "NIMService": ("apps.nvidia.com", "Deploy"),
    "Notebook": ("kubeflow.org", "Build"),
    "PipelineRun": ("tekton.dev", "Deploy"),
    "Pod": ("core", "Deploy"),
    "PyTorchJob": ("kubeflow.org", "Train"),
    "RayCluster": ("ray.io", "Train"),
    "RayJob": ("ray.io", "Train"),
    "RayService": ("ray.io", "Deploy"),
    "ReplicaSet": ("apps", "Deploy"),
    "ScheduledWorkflow": ("kubeflow.org", "Deploy"),
    "SeldonDeployment": ("machinelearning.seldon.io", "Deploy"),
    "Service": ("serving.knative.dev", "Deploy"),
    "StatefulSet": ("apps", "Deploy"),
    "TaskRun": ("tekton.dev", "Build"),
    "TFJob": ("kubeflow.org", "Train"),
    "VirtualMachineInstance": ("kubevirt.io", "Train"),
    "Workflow": ("argoproj.io", "Deploy"),
    "XGBoostJob": ("kubeflow.org", "Train"),
}
TYPE_KEYS = {
    "id",
    "name",
    "group",
    "categoryId",
    "categoryName",
    "priorityId",
    "priorityName",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
}


def category_id(name: str) -> str:
    return catalog_id("category", name)


def priority_id(name: str) -> str:
    return catalog_id("priority", name)


def type_id(name: str, group: str) -> str:
    return catalog_id("type", name, group)


def _ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def _types(client: TestClient, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = _ok(client.get(TYPES, params=params))["types"]
    return found


def _type_names(client: TestClient, *filters: str, **params: str) -> list[str]:
    query: dict[str, Any] = dict(params)
    if filters:
        query["filterBy"] = ",".join(filters)
    return [t["name"] for t in _types(client, **query)]


# --- categories ------------------------------------------------------------------------------------


def test_categories(client: TestClient) -> None:
    listed = _ok(client.get(CATEGORIES))["categories"]
    assert [c["name"] for c in listed] == ["Build", "Deploy", "Train"]
    for category in listed:
        assert category["id"] == category_id(category["name"])  # deterministic, the same everywhere
        assert category["description"]
        parse_time(category["createdAt"])
        assert _ok(client.get(f"{CATEGORIES}/{category['id']}")) == category
    # The ids are part of the contract (the same in every installation): pin one, so that a change in
    # how they are derived cannot go unnoticed.
    assert category_id("Build") == "ed22f93a-8d57-53f7-af2e-970d7ed88816"
    unknown = str(uuid.uuid4())
    assert_error(client.get(f"{CATEGORIES}/{unknown}"), 404, unknown)
    assert_error(client.get(f"{CATEGORIES}/Build"), 400, "categoryId", "Build")


# --- priorities ------------------------------------------------------------------------------------


def test_priorities(client: TestClient) -> None:
    listed = _ok(client.get(PRIORITIES))["priorities"]
    assert [(p["name"], p["value"]) for p in listed] == list(PRIORITY_VALUES.items())
    for priority in listed:
        assert priority["id"] == priority_id(priority["name"])
        assert priority["source"] == "Run:ai"
        assert (priority["scopeType"], priority["scopeId"]) == ("tenant", "1")
        parse_time(priority["createdAt"])


# --- types: listing and filtering ------------------------------------------------------------------


def test_types_seeded_as_run_ai_ships_them(client: TestClient) -> None:
    every = {t["name"]: t for t in _types(client)}
    assert set(every) == set(NATIVE) | set(EXTERNAL)
    assert list(every) == sorted(every)  # listed by name
    for name, record in every.items():
        assert set(record) == TYPE_KEYS, name
        category = NATIVE.get(name) or EXTERNAL[name][1]
        group = "run.ai" if name in NATIVE else EXTERNAL[name][0]
        assert record["id"] == type_id(name, group)
        assert record["group"] == group
        assert (record["categoryName"], record["categoryId"]) == (category, category_id(category))
        default_priority = CATEGORY_PRIORITY[category]
        assert (record["priorityName"], record["priorityId"]) == (
            default_priority,
            priority_id(default_priority),
        )
        assert _ok(client.get(f"{TYPES}/{record['id']}")) == record


def test_external_types_only(client: TestClient) -> None:
    created = _ok(
        client.post(
            TYPES,
            json={
                "name": "SparkApplication",
                "group": "sparkoperator.k8s.io",
                "categoryId": category_id("Train"),
                "priorityId": priority_id("medium"),
            },
        ),
        201,
    )
    external = set(_type_names(client, externalTypesOnly="true"))
    assert external == set(EXTERNAL) | {"SparkApplication"}  # external and user_external, no native type
    assert created["name"] in external
    every = set(NATIVE) | set(EXTERNAL) | {"SparkApplication"}
    assert set(_type_names(client, externalTypesOnly="false")) == every
    assert set(_type_names(client)) == every
    assert _type_names(client, "group==run.ai", externalTypesOnly="true") == []


def test_types_filter_by_name_and_group(client: TestClient) -> None:
    names = sorted(set(NATIVE) | set(EXTERNAL))
    groups = {**dict.fromkeys(NATIVE, "run.ai"), **{n: g for n, (g, _c) in EXTERNAL.items()}}
    cases: list[tuple[list[str], list[str]]] = [
        (["name==Job"], ["Job"]),
        (["name==job"], []),  # == is exact
        (["name!=Job"], [n for n in names if n != "Job"]),
        (["name=@job"], [n for n in names if "job" in n.lower()]),  # contains, case-insensitive
        (["name!@JOB"], [n for n in names if "job" not in n.lower()]),
        (["name=^ray"], ["RayCluster", "RayJob", "RayService"]),
        (["name=$SET"], ["JobSet", "LeaderWorkerSet", "ReplicaSet", "StatefulSet"]),
        (["name<=C"], [n for n in names if n <= "C"]),
        (["name>=X"], [n for n in names if n >= "X"]),
        (["group==kubeflow.org"], [n for n in names if groups[n] == "kubeflow.org"]),
        (["group=^KUBE"], [n for n in names if groups[n].startswith("kube")]),
        (["group=$.io"], [n for n in names if groups[n].endswith(".io")]),
        (["group==apps", "name=@set"], ["ReplicaSet", "StatefulSet"]),
        (["group==ray.io", "name!=RayJob"], ["RayCluster", "RayService"]),
        (["group!=batch", "name=@job", "name=^j"], ["JAXJob", "JobSet"]),
    ]
    for filters, expected in cases:
        assert _type_names(client, *filters) == expected, filters
        # Repeated parameters mean the same as comma-joined terms.
        repeated = [
            t["name"] for t in _ok(client.get(TYPES, params=[("filterBy", f) for f in filters]))["types"]
        ]
        assert repeated == expected, filters


# --- types: PUT ------------------------------------------------------------------------------------


def test_put_changes_a_types_defaults_and_records_who_and_when(client: TestClient) -> None:
    ray_job = type_id("RayJob", "ray.io")
    before = _ok(client.get(f"{TYPES}/{ray_job}"))
    time.sleep(0.002)  # updatedAt has millisecond resolution

    moved = _ok(client.put(f"{TYPES}/{ray_job}", json={"categoryId": category_id("Deploy")}))
    assert (moved["categoryName"], moved["categoryId"]) == ("Deploy", category_id("Deploy"))
    assert moved["priorityName"] == "low"  # untouched
    assert moved["updatedBy"] == ADMIN_CLIENT_ID
    assert parse_time(moved["updatedAt"]) > parse_time(before["updatedAt"])
    assert (moved["createdAt"], moved["createdBy"]) == (before["createdAt"], before["createdBy"])
    assert _ok(client.get(f"{TYPES}/{ray_job}")) == moved

    reprioritised = _ok(client.put(f"{TYPES}/{ray_job}", json={"priorityId": priority_id("medium-high")}))
    assert (reprioritised["categoryName"], reprioritised["priorityName"]) == ("Deploy", "medium-high")
    both = _ok(
        client.put(
            f"{TYPES}/{ray_job}", json={"categoryId": category_id("Build"), "priorityId": priority_id("low")}
        )
    )
    assert (both["categoryName"], both["priorityName"]) == ("Build", "low")
    unchanged = _ok(client.put(f"{TYPES}/{ray_job}", json={}))
    assert (unchanged["categoryName"], unchanged["priorityName"]) == ("Build", "low")
    # Only that type moved.
    assert _ok(client.get(f"{TYPES}/{type_id('RayService', 'ray.io')}"))["categoryName"] == "Deploy"


def test_put_refuses_unknown_ids(client: TestClient) -> None:
    ray_job = f"{TYPES}/{type_id('RayJob', 'ray.io')}"
    unknown = str(uuid.uuid4())
    assert_error(client.put(ray_job, json={"categoryId": unknown}), 400, "categoryId", unknown)
    assert_error(client.put(ray_job, json={"priorityId": unknown}), 400, "priorityId", unknown)
    # A category id in the priority field is no priority.
    assert_error(client.put(ray_job, json={"priorityId": category_id("Train")}), 400, "priorityId")
    assert_error(
        client.put(ray_job, json={"categoryId": category_id("Build"), "priorityId": unknown}),
        400,
        "priorityId",
    )
    assert_error(client.put(ray_job, json={"categoryId": "Build"}), 400, "categoryId", "Build")
    assert _ok(client.get(ray_job))["categoryName"] == "Train"  # a refused PUT changes nothing
    assert_error(client.put(f"{TYPES}/{unknown}", json={"categoryId": category_id("Build")}), 404, unknown)
    assert_error(
        client.put(f"{TYPES}/RayJob", json={"categoryId": category_id("Build")}), 400, "workloadTypeId"
    )


def test_after_a_put_every_workload_of_the_type_follows_unless_it_has_its_own(
    client: TestClient, database: Database
) -> None:
    load(
        database,
        workload("follows-1", type="RayJob", createdAt="2024-05-01T00:00:00Z"),
        workload("follows-2", type="RayJob", phase="Pending", createdAt="2024-05-02T00:00:00Z"),
        workload("own-category", type="RayJob", category="Train", createdAt="2024-05-03T00:00:00Z"),
        workload(
            "own-priority", type="RayJob", priorityClassName="very-low", createdAt="2024-05-04T00:00:00Z"
        ),
        workload("other-type", type="PyTorchJob", createdAt="2024-05-05T00:00:00Z"),
        workload("a-build", type="Workspace", createdAt="2024-05-06T00:00:00Z"),
    )

    def listed(**params: Any) -> list[str]:
        return [w["name"] for w in _ok(client.get(WORKLOADS, params=params))["workloads"]]

    def count(**params: Any) -> int:
        counted: int = _ok(client.get(f"{WORKLOADS}/count", params=params))["count"]
        return counted

    def one(label: str) -> dict[str, Any]:
        record: dict[str, Any] = _ok(client.get(f"{WORKLOADS}/{wid(label)}"))
        return record

    assert listed(filterBy="category==Deploy") == []
    assert one("follows-1")["category"] == "Train"

    _ok(
        client.put(
            f"{TYPES}/{type_id('RayJob', 'ray.io')}",
            json={"categoryId": category_id("Deploy"), "priorityId": priority_id("high")},
        )
    )

    followers = ["follows-1", "follows-2", "own-priority"]  # no category of their own
    for label in followers:
        assert one(label)["category"] == "Deploy", label
    assert one("own-category")["category"] == "Train"
    assert one("other-type")["category"] == "Train"
    assert (one("follows-1")["priorityClassName"], one("follows-1")["priority"]) == ("high", 125)
    assert one("follows-1")["preemptible"] is False  # 125 >= 100
    assert (one("own-priority")["priorityClassName"], one("own-priority")["priority"]) == ("very-low", 25)
    assert (one("own-category")["priorityClassName"], one("own-category")["priority"]) == ("high", 125)

    by_name = {w["name"]: w for w in _ok(client.get(WORKLOADS))["workloads"]}
    assert [n for n, w in by_name.items() if w["category"] == "Deploy"] == followers

    assert listed(filterBy="category==Deploy") == followers
    assert count(filterBy="category==Deploy") == 3
    assert listed(filterBy="category!=Deploy") == ["own-category", "other-type", "a-build"]
    assert listed(filterBy="category=^dep,type==RayJob") == followers
    assert count(filterBy="category==Train") == 2
    assert listed(filterBy="priorityClassName==high") == ["follows-1", "follows-2", "own-category", "a-build"]
    assert listed(filterBy="priority>=125") == ["follows-1", "follows-2", "own-category", "a-build"]
    assert count(filterBy="priority<=40") == 2  # own-priority (25) and other-type (low, 40)
    assert listed(search="deploy") == followers

    # sortBy category: Build < Deploy < Train; ties by id in the same direction.
    def by_id(labels: list[str]) -> list[str]:
        return sorted(labels, key=lambda label: str(wid(label)))

    expected = ["a-build", *by_id(followers), *by_id(["own-category", "other-type"])]
    assert listed(sortBy="category") == expected
    assert listed(sortBy="category", sortOrder="desc") == list(reversed(expected))
    assert listed(sortBy="category", limit=2, offset=1) == expected[1:3]


# --- types: POST and DELETE ------------------------------------------------------------------------


def _new_type(
    name: str = "SparkApplication", group: str = "sparkoperator.k8s.io", **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "group": group,
        "categoryId": category_id("Train"),
        "priorityId": priority_id("medium"),
        **extra,
    }


def test_post_registers_a_user_external_type(client: TestClient, database: Database) -> None:
    created = _ok(client.post(TYPES, json=_new_type()), 201)
    assert set(created) == TYPE_KEYS
    assert created["id"] == type_id("SparkApplication", "sparkoperator.k8s.io")
    assert (created["name"], created["group"]) == ("SparkApplication", "sparkoperator.k8s.io")
    assert (created["categoryName"], created["priorityName"]) == ("Train", "medium")
    assert created["createdBy"] == created["updatedBy"] == ADMIN_CLIENT_ID
    assert _ok(client.get(f"{TYPES}/{created['id']}")) == created
    assert "SparkApplication" in _type_names(client, externalTypesOnly="true")

    # Workloads of the new type resolve their category and priority through it.
    load(database, workload("spark-1", type="SparkApplication"))
    record = _ok(client.get(f"{WORKLOADS}/{wid('spark-1')}"))
    assert (record["category"], record["priorityClassName"], record["priority"]) == ("Train", "medium", 80)


def test_post_conflicts_and_bad_input(client: TestClient) -> None:
    _ok(client.post(TYPES, json=_new_type()), 201)
    assert_error(client.post(TYPES, json=_new_type()), 409, "SparkApplication")
    assert_error(client.post(TYPES, json=_new_type("Job", "batch")), 409, "Job")
    # A type's name is unique (workloads name their type by name alone), whatever the group.
    assert_error(client.post(TYPES, json=_new_type("Job", "example.com")), 409, "Job")

    for bad_name in ["sparkApp", "Spark App", "Spark_App", "Spark-App", "", "1Spark", "Spärk"]:
        assert_error(client.post(TYPES, json=_new_type(bad_name)), 400, "name")
    for bad_group in ["Spark.io", "-spark.io", "spark.io.", "spark_io", "spark io", "1"]:
        assert_error(client.post(TYPES, json=_new_type("GoodName", bad_group)), 400, "group")
    unknown = str(uuid.uuid4())
    assert_error(
        client.post(TYPES, json=_new_type("GoodName", categoryId=unknown)), 400, "categoryId", unknown
    )
    assert_error(
        client.post(TYPES, json=_new_type("GoodName", priorityId=unknown)), 400, "priorityId", unknown
    )
    for missing in ["name", "group", "categoryId", "priorityId"]:
        body = {k: v for k, v in _new_type("GoodName").items() if k != missing}
        assert_error(client.post(TYPES, json=body), 400, missing)
    assert "GoodName" not in _type_names(client)


def test_delete(client: TestClient, database: Database) -> None:
    created = _ok(client.post(TYPES, json=_new_type()), 201)
    in_use = _ok(client.post(TYPES, json=_new_type("FlinkDeployment", "flink.apache.org")), 201)
    load(database, workload("flink-1", type="FlinkDeployment"))

    answer = client.delete(f"{TYPES}/{created['id']}")
    assert answer.status_code == 204
    assert answer.content == b""
    assert_error(client.get(f"{TYPES}/{created['id']}"), 404)
    assert_error(client.delete(f"{TYPES}/{created['id']}"), 404)
    assert "SparkApplication" not in _type_names(client)

    assert_error(client.delete(f"{TYPES}/{in_use['id']}"), 409, "FlinkDeployment")
    assert_error(client.delete(f"{TYPES}/{type_id('Training', 'run.ai')}"), 400, "Training")
    assert_error(client.delete(f"{TYPES}/{type_id('PyTorchJob', 'kubeflow.org')}"), 400, "PyTorchJob")
    assert_error(client.delete(f"{TYPES}/{uuid.uuid4()}"), 404)
    assert_error(client.delete(f"{TYPES}/SparkApplication"), 400, "workloadTypeId")
    assert set(_type_names(client)) == set(NATIVE) | set(EXTERNAL) | {"FlinkDeployment"}


def test_a_put_is_committed_before_its_answer_is_sent(services: Services, database: Database) -> None:
    """A client that reads right after a 200 must see its change (and a commit that fails must not have
    been answered 200): when the answer starts leaving, another connection already sees the new value."""
    app = create_app(services.settings, services)
    ray_job = type_id("RayJob", "ray.io")
    seen_when_sent: list[str] = []

    async def watching(scope: Any, receive: Any, send: Any) -> None:
        async def watched_send(message: Any) -> None:
            if message["type"] == "http.response.start" and scope.get("method") == "PUT":
                with database.read() as conn:  # another connection: it sees committed data only
                    seen_when_sent.append(
                        conn.execute(
                            sa.select(workload_types.c.category_name).where(workload_types.c.id == ray_job)
                        ).scalar_one()
                    )
            await send(message)

        await app(scope, receive, watched_send)

    token = services.signer.issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600)
    with TestClient(watching) as watched:
        answer = watched.put(
            f"{TYPES}/{ray_job}",
            json={"categoryId": category_id("Deploy")},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.json()["categoryName"] == "Deploy"
    assert seen_when_sent == ["Deploy"]
