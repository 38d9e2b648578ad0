"""GET /workloads/telemetry against an independent computation over the same inventory.

The expected answer of every request is computed here from the records the list endpoint serves
(the same workloads, the same resolved category, the same node pools), never from the store's
tables: every telemetry type, no groupBy, every key, every pair of keys, and the population filters
alone and together; the pending-time buckets at their exact bounds under a fixed clock; the CSV
form; and every kind of bad input as a 400 naming its parameter.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import CLUSTER, load, update_workload, wid, workload
from tests.server import assert_error
from workplane.api import telemetry as telemetry_route
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.timefmt import format_ms, parse_to_ms
from workplane.store import catalog as catalog_store
from workplane.store import workloads as store
from workplane.store.database import Database

TELEMETRY = "/api/v1/workloads/telemetry"
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the clock the route reads in these tests
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
CLUSTER2 = uuid.UUID("33333333-3333-4333-8333-333333333333")
KEYS = ["ClusterId", "DepartmentId", "ProjectId", "Type", "CurrentNodepools", "Phase", "Category"]
GROUPINGS = [[], *([k] for k in KEYS), *(list(p) for p in itertools.combinations(KEYS, 2))]
BUCKETS = [("0-5m", 0), ("5m-1h", 5 * MINUTE), ("1h-24h", HOUR), ("24h+", DAY)]


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry_route, "now_ms", lambda: NOW)


# --- the inventory ----------------------------------------------------------------------------------

PROJECTS = [("1", "proj-a", "10", "dept-x"), ("2", "proj-b", "10", "dept-x"), ("3", "proj-c", "20", "dept-y")]
# A project or department belongs to one cluster: the second cluster's have ids of their own.
PROJECTS2 = [
    ("4", "proj-d", "30", "dept-z"),
    ("5", "proj-e", "30", "dept-z"),
    ("6", "proj-f", "20b", "dept-w"),
]
TYPES = [("Training", None), ("Workspace", None), ("RayJob", None), ("RayJob", "Build"), ("Inference", None)]
PHASES = ["Running", "Pending", "Completed", "Running", "Failed", "Pending", "Stopped"]
POOLS = [[], ["pool-1"], ["pool-2"], ["pool-1", "pool-2"], ["pool-2", "pool-1", "pool-2"]]
GPUS = [None, 0.5, 1, 2, 0.25, 7.5]
# Time in Pending, spread over every bucket, and one from a clock ahead of ours.
PENDING_AGES = [
    0,
    4 * MINUTE,
    6 * MINUTE,
    59 * MINUTE,
    2 * HOUR,
    23 * HOUR,
    25 * HOUR,
    30 * DAY,
    -10 * MINUTE,
]


def _inventory(database: Database, catalog: CatalogSnapshot, n: int = 45) -> None:
    """``n`` workloads varied along every grouped dimension (each list has its own period, so the
    combinations mix), some updated after creation and some deleted."""
    records = []
    for i in range(n):
        cluster = CLUSTER if i % 4 else CLUSTER2
        project_id, project_name, department_id, department_name = (PROJECTS if i % 4 else PROJECTS2)[i % 3]
        type_name, category = TYPES[i % 5]
        phase = PHASES[i % 7]
        fields: dict[str, Any] = {
            "clusterId": cluster,
            "projectId": project_id,
            "projectName": project_name,
            "departmentId": department_id,
            "departmentName": department_name,
            "type": type_name,
            "phase": phase,
            "currentNodePools": POOLS[i % 5] if phase != "Pending" or i % 2 else POOLS[(i // 2) % 5],
            "phaseUpdatedAt": format_ms(NOW - PENDING_AGES[i % 9] if phase == "Pending" else NOW - DAY),
        }
        if category:
            fields["category"] = category
        gpu = GPUS[i % 6]
        if gpu is not None:
            fields["allocatedResources"] = {"gpu": gpu}
        records.append(workload(f"w{i}", **fields))
    load(database, *records)
    with database.write() as conn:
        # Moves between groups after creation: another phase and project, other pools, more GPUs.
        for i in (1, 8, 13):
            project_id, project_name, department_id, department_name = (PROJECTS if i % 4 else PROJECTS2)[2]
            moved = records[i].model_copy(
                update={
                    "phase": "Running",
                    "current_node_pools": ["pool-3"],
                    "project_id": project_id,
                    "project_name": project_name,
                    "department_id": department_id,
                    "department_name": department_name,
                }
            )
            update_workload(conn, moved, catalog=catalog, tenant_id=1, now_ms=NOW)
        for i in (5, 6, 10, 12, 17, 21):  # deleted: pooled, pending and GPU-holding ones among them
            store.delete_workload(conn, str(wid(f"w{i}")), deleted_at_ms=NOW - HOUR)


def _records(client: TestClient) -> list[dict[str, Any]]:
    """Every live workload, as the list endpoint serves it."""
    out: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = client.get("/api/v1/workloads", params={"limit": 500, "offset": offset}).json()
        out.extend(page["workloads"])
        offset = page.get("next")
    return out


# --- the independent computation ----------------------------------------------------------------


def _group_values(record: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """(value, display name) of ``record`` for a groupBy key: several for node pools, each once."""
    match key:
        case "ClusterId":
            return [(record["clusterId"], record["clusterId"])]  # clusters are named by their id here
        case "DepartmentId":
            return [(record["departmentId"], record["departmentName"])]
        case "ProjectId":
            return [(record["projectId"], record["projectName"])]
        case "Type":
            return [(record["type"], record["type"])]
        case "Phase":
            return [(record["phase"], record["phase"])]
        case "Category":
            return [(record["category"], record["category"])]
        case "CurrentNodepools":
            return [(p, p) for p in sorted(set(record["currentNodePools"]))]
    raise AssertionError(key)


def _selected(records: list[dict[str, Any]], filters: dict[str, str]) -> list[dict[str, Any]]:
    phases = set(filters["filterByPhases"].split(",")) if "filterByPhases" in filters else None
    return [
        r
        for r in records
        if ("clusterId" not in filters or r["clusterId"] == filters["clusterId"])
        and ("departmentId" not in filters or r["departmentId"] == filters["departmentId"])
        and ("nodepoolName" not in filters or filters["nodepoolName"] in r["currentNodePools"])
        and (phases is None or r["phase"] in phases)
    ]


Groups = tuple[tuple[str, str, str], ...]


def _combinations(record: dict[str, Any], keys: list[str]) -> list[Groups]:
    per_key = [[(key, value, name) for value, name in _group_values(record, key)] for key in keys]
    return [tuple(c) for c in itertools.product(*per_key)]


def _bucket(record: dict[str, Any]) -> str:
    age = NOW - _ms(record["phaseUpdatedAt"])
    return [label for label, lower in BUCKETS if age >= lower or lower == 0][-1]


def _ms(text: str) -> int:
    return parse_to_ms(text)


def expected(
    records: list[dict[str, Any]], kind: str, keys: list[str], filters: dict[str, str]
) -> dict[Groups, str]:
    chosen = _selected(records, filters)
    if kind == "PENDING_TIME_DISTRIBUTION":
        counts: Counter[Groups] = Counter()
        seen: set[Groups] = set() if keys else {()}
        for record in chosen:
            if record["phase"] != "Pending":
                continue
            for combination in _combinations(record, keys):
                seen.add(combination)
                counts[(("PendingTime", _bucket(record), _bucket(record)), *combination)] += 1
        return {
            (("PendingTime", label, label), *c): str(counts[(("PendingTime", label, label), *c)])
            for c in seen
            for label, _ in BUCKETS
        }
    totals: dict[Groups, Decimal] = {}
    for record in chosen:
        gpu = Decimal(str((record["allocatedResources"] or {}).get("gpu") or 0))
        for combination in _combinations(record, keys):
            totals[combination] = totals.get(combination, Decimal(0)) + (
                1 if kind == "WORKLOADS_COUNT" else gpu
            )
    if not keys:
        totals.setdefault((), Decimal(0))
    return {c: format(v.normalize(), "f") for c, v in totals.items()}


def answered(body: dict[str, Any], kind: str) -> dict[Groups, str]:
    assert set(body) == {"type", "timestamp", "values"}, body
    assert body["type"] == kind
    assert body["timestamp"] == format_ms(NOW)
    out: dict[Groups, str] = {}
    for value in body["values"]:
        groups = tuple((g["key"], g["value"], g["name"]) for g in value.get("groups", []))
        assert set(value) == ({"value", "groups"} if groups else {"value"}), value
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", value["value"]), value  # a plain decimal string
        assert groups not in out, f"combination {groups} answered twice"
        out[groups] = value["value"]
    return out


# --- tests --------------------------------------------------------------------------------------

FILTER_SETS: list[dict[str, str]] = [
    {},
    {"clusterId": str(CLUSTER2)},
    {"departmentId": "10"},
    {"nodepoolName": "pool-1"},
    {"filterByPhases": "Running,Pending"},
    {"clusterId": str(CLUSTER), "departmentId": "20", "nodepoolName": "pool-2", "filterByPhases": "Running"},
]


@pytest.fixture
def records(client: TestClient, database: Database, catalog: CatalogSnapshot) -> list[dict[str, Any]]:
    _inventory(database, catalog)
    found = _records(client)
    assert len(found) == 39
    return found


@pytest.mark.parametrize("kind", ["WORKLOADS_COUNT", "GPU_ALLOCATION"])
def test_counts_and_gpus_for_every_grouping_and_filter(
    client: TestClient, records: list[dict[str, Any]], kind: str
) -> None:
    for filters, keys in itertools.product(FILTER_SETS, GROUPINGS):
        params: dict[str, str] = {"telemetryType": kind, **filters}
        if keys:
            params["groupBy"] = ",".join(keys)
        answer = client.get(TELEMETRY, params=params)
        assert answer.status_code == 200, answer.text
        want = expected(records, kind, keys, filters)
        assert answered(answer.json(), kind) == want, (filters, keys)


def test_pending_time_distribution_for_every_grouping(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    # One key at most: the bucket is the other group.
    for filters, keys in itertools.product(
        [{}, {"departmentId": "20"}, {"filterByPhases": "Pending,Running"}], GROUPINGS[: 1 + len(KEYS)]
    ):
        params: dict[str, str] = {"telemetryType": "PENDING_TIME_DISTRIBUTION", **filters}
        if keys:
            params["groupBy"] = ",".join(keys)
        answer = client.get(TELEMETRY, params=params)
        assert answer.status_code == 200, answer.text
        want = expected(records, "PENDING_TIME_DISTRIBUTION", keys, filters)
        assert answered(answer.json(), "PENDING_TIME_DISTRIBUTION") == want, (filters, keys)
    # The population really holds workloads in every bucket, and deleted Pending ones are not among them.
    assert {_bucket(r) for r in records if r["phase"] == "Pending"} == {label for label, _ in BUCKETS}


def test_a_workload_in_two_pools_counts_in_both(client: TestClient, database: Database) -> None:
    load(
        database,
        workload("both", currentNodePools=["a", "b"], allocatedResources={"gpu": 1.5}),
        workload("twice", currentNodePools=["b", "b"], allocatedResources={"gpu": 0.5}),
        workload("none", allocatedResources={"gpu": 4}),
    )
    by_pool = client.get(TELEMETRY, params={"telemetryType": "GPU_ALLOCATION", "groupBy": "CurrentNodepools"})
    assert by_pool.json()["values"] == [
        {"value": "1.5", "groups": [{"key": "CurrentNodepools", "value": "a", "name": "a"}]},
        {"value": "2", "groups": [{"key": "CurrentNodepools", "value": "b", "name": "b"}]},
    ]
    total = client.get(TELEMETRY, params={"telemetryType": "WORKLOADS_COUNT", "nodepoolName": "b"})
    assert total.json()["values"] == [{"value": "2"}]
    everything = client.get(TELEMETRY, params={"telemetryType": "GPU_ALLOCATION"})
    assert everything.json()["values"] == [{"value": "6"}]


def test_no_workloads(client: TestClient, catalog: CatalogSnapshot) -> None:
    for kind in ("WORKLOADS_COUNT", "GPU_ALLOCATION"):
        assert client.get(TELEMETRY, params={"telemetryType": kind}).json()["values"] == [{"value": "0"}]
        grouped = client.get(TELEMETRY, params={"telemetryType": kind, "groupBy": "Phase"})
        assert grouped.json()["values"] == []
    pending = client.get(TELEMETRY, params={"telemetryType": "PENDING_TIME_DISTRIBUTION"}).json()["values"]
    assert pending == [
        {"value": "0", "groups": [{"key": "PendingTime", "value": label, "name": label}]}
        for label, _ in BUCKETS
    ]


def test_pending_buckets_are_lower_bound_inclusive(client: TestClient, database: Database) -> None:
    ages = {
        "0-5m": [0, 5 * MINUTE - 1, -HOUR],
        "5m-1h": [5 * MINUTE, HOUR - 1],
        "1h-24h": [HOUR, DAY - 1],
        "24h+": [DAY, 400 * DAY],
    }
    load(
        database,
        *(
            workload(f"{label}-{age}", phase="Pending", phaseUpdatedAt=format_ms(NOW - age))
            for label, spread in ages.items()
            for age in spread
        ),
        workload("running", phase="Running"),
    )
    values = client.get(TELEMETRY, params={"telemetryType": "PENDING_TIME_DISTRIBUTION"}).json()["values"]
    assert [(v["groups"][0]["value"], v["value"]) for v in values] == [
        (label, str(len(spread))) for label, spread in ages.items()
    ]
    # Without Pending among the phases asked for, every bucket is empty (and still present).
    other = client.get(
        TELEMETRY, params={"telemetryType": "PENDING_TIME_DISTRIBUTION", "filterByPhases": "Running"}
    ).json()["values"]
    assert [v["value"] for v in other] == ["0", "0", "0", "0"]


def test_category_follows_the_type_default(client: TestClient, database: Database) -> None:
    load(database, workload("a", type="RayJob"), workload("b", type="RayJob", category="Build"))

    def by_category() -> dict[str, str]:
        body = client.get(
            TELEMETRY, params={"telemetryType": "WORKLOADS_COUNT", "groupBy": "Category"}
        ).json()
        return {v["groups"][0]["value"]: v["value"] for v in body["values"]}

    assert by_category() == {"Build": "1", "Train": "1"}
    with database.write() as conn:
        type_id = conn.execute(sa.text("SELECT id FROM workload_types WHERE name = 'RayJob'")).scalar_one()
        catalog_store.update_type(
            conn, type_id, catalog_store.TypeChange("Deploy", None), by="test", now_ms=NOW
        )
    assert by_category() == {"Build": "1", "Deploy": "1"}


def test_list_parameters_comma_joined_repeated_and_prefixed(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    reference = client.get(
        TELEMETRY,
        params={
            "telemetryType": "GPU_ALLOCATION",
            "groupBy": "Type,Phase",
            "filterByPhases": "Running,Failed",
        },
    ).json()
    variants = [
        [
            ("telemetryType", "WorkloadTelemetryType.GPU_ALLOCATION"),
            ("groupBy", "Type,Phase"),
            ("filterByPhases", "Running,Failed"),
        ],
        [
            ("telemetryType", "GPU_ALLOCATION"),
            ("groupBy", "Type"),
            ("groupBy", "Phase"),
            ("filterByPhases", "Running"),
            ("filterByPhases", "Failed"),
        ],
        [
            ("telemetryType", "GPU_ALLOCATION"),
            ("groupBy", "TelemetryGroupBy.Type,TelemetryGroupBy.Phase"),
            ("filterByPhases", "Phase.Running,Phase.Failed"),
        ],
    ]
    for params in variants:
        assert client.get(TELEMETRY, params=params).json() == reference, params
    assert reference["values"]


@pytest.mark.parametrize(
    ("keys", "kind"),
    [
        ([], "WORKLOADS_COUNT"),
        (["ProjectId", "CurrentNodepools"], "GPU_ALLOCATION"),
        (["Category"], "PENDING_TIME_DISTRIBUTION"),
    ],
)
def test_csv(client: TestClient, records: list[dict[str, Any]], keys: list[str], kind: str) -> None:
    params = {"telemetryType": kind, **({"groupBy": ",".join(keys)} if keys else {})}
    as_json = client.get(TELEMETRY, params=params).json()
    answer = client.get(TELEMETRY, params=params, headers={"Accept": "text/csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    header = (["PendingTime"] if kind == "PENDING_TIME_DISTRIBUTION" else []) + keys
    assert rows[0] == [*header, "value"]
    assert rows[1:] == [[*(g["value"] for g in v.get("groups", [])), v["value"]] for v in as_json["values"]]
    # JSON stays the answer when the client prefers it, or accepts anything.
    for accept in ("application/json, text/csv", "text/csv;q=0.5, application/json", "*/*"):
        assert client.get(TELEMETRY, params=params, headers={"Accept": accept}).json() == as_json


BAD = [
    ({}, "telemetryType"),
    ({"telemetryType": "CPU"}, "telemetryType"),
    ({"telemetryType": "WorkloadTelemetryType.NOPE"}, "telemetryType"),
    ({"telemetryType": "WORKLOADS_COUNT", "groupBy": "Type,Phase,ProjectId"}, "groupBy"),
    ({"telemetryType": "WORKLOADS_COUNT", "groupBy": "Colour"}, "groupBy"),
    ({"telemetryType": "WORKLOADS_COUNT", "groupBy": "Type,Type"}, "groupBy"),
    ({"telemetryType": "PENDING_TIME_DISTRIBUTION", "groupBy": "Type,Phase"}, "groupBy"),
    ({"telemetryType": "WORKLOADS_COUNT", "filterByPhases": "Running,Sleeping"}, "filterByPhases"),
    ({"telemetryType": "WORKLOADS_COUNT", "clusterId": "not-a-uuid"}, "clusterId"),
    ({"telemetryType": "WORKLOADS_COUNT", "departmentId": "a\x00b"}, "departmentId"),
    ({"telemetryType": "WORKLOADS_COUNT", "nodepoolName": "x" * 2000}, "nodepoolName"),
]


@pytest.mark.parametrize(("params", "param"), BAD)
def test_bad_input_is_a_400_naming_the_parameter(
    client: TestClient, params: dict[str, str], param: str
) -> None:
    assert_error(client.get(TELEMETRY, params=params), 400, param)


def test_repeated_group_by_beyond_two_is_refused(client: TestClient) -> None:
    params = [
        ("telemetryType", "WORKLOADS_COUNT"),
        ("groupBy", "Type"),
        ("groupBy", "Phase"),
        ("groupBy", "ProjectId"),
    ]
    assert_error(client.get(TELEMETRY, params=params), 400, "groupBy")


def test_the_route_is_not_taken_for_a_workload_id(client: TestClient, anonymous: TestClient) -> None:
    assert_error(anonymous.get(TELEMETRY, params={"telemetryType": "WORKLOADS_COUNT"}), 401)
    assert client.get(TELEMETRY, params={"telemetryType": "WORKLOADS_COUNT"}).status_code == 200
    # A workload id still reaches the workload route.
    assert_error(client.get(f"/api/v1/workloads/{wid('nothing')}"), 404)


def test_the_api_description_documents_it(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/v1/workloads/telemetry"]["get"]
    assert operation["operationId"] == "get_workloads_telemetry"
    ok = operation["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/TelemetryResponse"}
    assert "text/csv" in ok
    assert "TelemetryResponse" in document["components"]["schemas"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) >= {
        "telemetryType",
        "clusterId",
        "nodepoolName",
        "departmentId",
        "groupBy",
        "filterByPhases",
    }
    assert params["groupBy"]["schema"]["maxItems"] == 2
    assert "422" not in operation["responses"]


_KEYS_OR_TEXT = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
_TELEMETRY_PARAMETERS = st.fixed_dictionaries(
    {},
    optional={
        "telemetryType": st.one_of(
            st.sampled_from(["WORKLOADS_COUNT", "GPU_ALLOCATION", "PENDING_TIME_DISTRIBUTION"]),
            st.text(max_size=30),
        ),
        "groupBy": st.lists(_KEYS_OR_TEXT, max_size=3).map(",".join),
        "filterByPhases": st.lists(st.one_of(st.sampled_from(PHASES), st.text(max_size=10)), max_size=3).map(
            ",".join
        ),
        "clusterId": st.one_of(st.just(str(CLUSTER)), st.uuids().map(str), st.text(max_size=40)),
        "departmentId": st.one_of(st.just("10"), st.text(max_size=20)),
        "nodepoolName": st.one_of(st.sampled_from(["pool-1", "pool-2"]), st.text(max_size=20)),
    },
)


def test_arbitrary_parameters_are_answered_200_or_400(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    @given(params=_TELEMETRY_PARAMETERS, csv_form=st.booleans())
    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(params: dict[str, str], csv_form: bool) -> None:
        headers = {"Accept": "text/csv"} if csv_form else {}
        answer = client.get(TELEMETRY, params=params, headers=headers)
        assert answer.status_code in (200, 400), (params, answer.status_code, answer.text)
        if answer.status_code == 400:
            assert_error(answer, 400)
        elif not csv_form:
            assert isinstance(answer.json()["values"], list)

    run()
