"""Differential test of scoping: what a scoped caller reads equals the administrator's answer filtered
by the caller's scopes, for list (page by page, following ``next``), count (the live-count rollup path
and the row path), telemetry, get and metrics.

Each endpoint is an ``Endpoint``: how to ask it as some caller, and how to derive its answer from the
administrator's full listing and a scope set. Adding an endpoint (telemetry, say) is one more entry in
``ENDPOINTS``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import bearer, create_key, grant, token
from tests.conftest import _wipe, admin_client
from tests.factories import at, workload
from tests.server import assert_error
from workplane.app import build_services
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store import workloads as store
from workplane.store.database import create_database

CLUSTERS = [str(uuid.UUID(int=0xC1 << 120 | i)) for i in (1, 2, 3)]
WORDS = ("bert", "llama", "resnet", "whisper", "diffusion")
TYPES = ("Training", "Workspace", "Inference", "Distributed", "Job")
PHASES = ("Running", "Pending", "Completed", "Failed", "Stopped")


def _organisation() -> list[tuple[str, str, str]]:
    """(cluster, department, project): 3 clusters, 2 departments each, 2 or 3 projects each."""
    triples = []
    for c, cluster in enumerate(CLUSTERS):
        for d in range(2):
            department = f"dep-{c}{d}"
            for p in range(2 + (c + d) % 2):
                triples.append((cluster, department, f"proj-{c}{d}{p}"))
    return triples


ORGANISATION = _organisation()


def _records(seed: int = 7) -> tuple[list[Any], list[str]]:
    rng = random.Random(seed)
    records, deleted = [], []
    for i in range(140):
        cluster, department, project = rng.choice(ORGANISATION)
        label = f"{rng.choice(WORDS)}-{i:03d}"
        records.append(
            workload(
                label,
                clusterId=cluster,
                departmentId=department,
                departmentName=department.upper(),
                projectId=project,
                projectName=project.upper(),
                type=rng.choice(TYPES),
                phase=rng.choice(PHASES),
                createdAt=at(f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"),
                submittedBy=rng.choice(["alice", "bob", None]),
            )
        )
        if rng.random() < 0.15:
            deleted.append(label)
    return records, deleted


@dataclass
class Loaded:
    admin: TestClient
    # The administrator's view of every workload: id → (cluster, department, project).
    placement: dict[str, tuple[str, str, str]]


@pytest.fixture(scope="module")
def loaded(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("scoped"),
        database_url=backend_url,
        migrate_on_start=False,
        retention_interval_s=0,
    )
    db = create_database(settings)
    _wipe(db)
    prepare_store(db, settings, announce=False)
    services = build_services(settings, db)
    records, deleted = _records()
    with db.write() as conn:
        catalog = services.catalog.get(conn)
        ids = store.create_workloads(conn, records, catalog=catalog, tenant_id=1, now_ms=1_717_200_000_000)
        by_name = {r.name: workload_id for r, workload_id in zip(records, ids, strict=True)}
        for label in deleted:
            store.delete_workload(conn, by_name[label], deleted_at_ms=1_717_200_000_000)
    placement = {
        workload_id: (str(r.cluster_id), r.department_id, r.project_id)
        for r, workload_id in zip(records, ids, strict=True)
    }
    with admin_client(settings, services) as admin:
        yield Loaded(admin, placement)
    db.dispose()


# --- the endpoints under test ------------------------------------------------------------------------


def list_all(client: TestClient, headers: dict[str, str], params: dict[str, str], limit: int) -> list[str]:
    """Every page of a listing, following ``next``; checks that ``next`` is right on every page."""
    ids: list[str] = []
    offset = 0
    while True:
        answer = client.get(
            "/api/v1/workloads", params={**params, "offset": offset, "limit": limit}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        ids += [w["id"] for w in page["workloads"]]
        if "next" not in page:
            assert len(page["workloads"]) <= limit
            return ids
        assert page["next"] == offset + limit
        assert len(page["workloads"]) == limit
        offset = page["next"]


@dataclass(frozen=True)
class Endpoint:
    name: str
    # What the endpoint answers to a caller (by its headers) for a selection.
    ask: Callable[[TestClient, dict[str, str], dict[str, str]], Any]
    # The same answer derived from the administrator's complete listing (ids in order) and scopes.
    derive: Callable[[list[str], Callable[[str], bool]], Any]


def _count(client: TestClient, headers: dict[str, str], params: dict[str, str]) -> int:
    counted = {k: v for k, v in params.items() if k in ("deleted", "filterBy", "search")}
    answer = client.get("/api/v1/workloads/count", params=counted, headers=headers)
    assert answer.status_code == 200, answer.text
    value: int = answer.json()["count"]
    return value


ENDPOINTS = [
    Endpoint(
        "list, pages of 7",
        lambda c, h, p: list_all(c, h, p, 7),
        lambda ids, inside: [i for i in ids if inside(i)],
    ),
    Endpoint("count", _count, lambda ids, inside: sum(1 for i in ids if inside(i))),
]

# Selections: the first four are counted from the live-count rollup, the others from the rows (and,
# on SQLite, the substring ones go through the trigram index's candidate narrowing).
SELECTIONS: list[dict[str, str]] = [
    {},
    {"filterBy": "phase==Running"},
    {"filterBy": "type==Training,phase!=Failed", "sortBy": "name", "sortOrder": "desc"},
    {"filterBy": "departmentName=^DEP-1", "sortBy": "projectName"},
    {"filterBy": "name=@lla"},
    {"search": "resnet"},
    {"search": "whisper alice"},
    {"deleted": "true"},
    {"filterBy": "submittedBy==bob", "sortBy": "createdAt", "sortOrder": "desc"},
]


def _scope_sets(count: int, seed: int = 11) -> list[list[tuple[str, Scope]]]:
    """Random sets of (role, scope) rules, from one project to a mix across clusters."""
    rng = random.Random(seed)
    departments = sorted({d for _, d, _ in ORGANISATION})
    projects = sorted({p for _, _, p in ORGANISATION})
    sets: list[list[tuple[str, Scope]]] = [
        [("department-viewer", Scope(ScopeType.TENANT, "*"))],
    ]
    while len(sets) < count:
        rules: list[tuple[str, Scope]] = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["cluster", "department", "project", "project"])
            if kind == "cluster":
                rules.append(("department-viewer", Scope(ScopeType.CLUSTER, rng.choice(CLUSTERS))))
            elif kind == "department":
                role = rng.choice(["department-viewer", "department-editor", "researcher"])
                rules.append((role, Scope(ScopeType.DEPARTMENT, rng.choice(departments))))
            else:
                role = rng.choice(["project-viewer", "researcher"])
                rules.append((role, Scope(ScopeType.PROJECT, rng.choice(projects))))
        sets.append(rules)
    return sets


@pytest.mark.no_cover
@pytest.mark.parametrize("rules", _scope_sets(9), ids=lambda rules: "+".join(f"{s.type}" for _, s in rules))
def test_a_scoped_caller_reads_the_administrators_answer_restricted_to_its_scopes(
    loaded: Loaded, rules: list[tuple[str, Scope]]
) -> None:
    admin = loaded.admin
    credential = create_key(admin, "scoped reader")
    for role, scope in rules:
        grant(
            admin, credential.client_id, role, scope.type.value, None if scope.type == "tenant" else scope.id
        )
    scoped = bearer(token(admin, credential))
    scopes = ScopeSet.of(scope for _, scope in rules)

    def inside(workload_id: str) -> bool:
        return scopes.covers(*loaded.placement[workload_id])

    for params in SELECTIONS:
        everything = list_all(admin, {}, params, 500)
        for endpoint in ENDPOINTS:
            expected = endpoint.derive(everything, inside)
            assert endpoint.ask(admin, scoped, params) == expected, (endpoint.name, params)

    # get: a workload outside the scopes is exactly as absent as one that does not exist.
    for workload_id in list(loaded.placement)[:40]:
        answer = admin.get(f"/api/v1/workloads/{workload_id}", headers=scoped)
        if inside(workload_id):
            assert answer.status_code == 200, answer.text
        else:
            body = assert_error(answer, 404)
            assert body["message"] == f"workload {workload_id} not found"
    missing = str(uuid.uuid4())
    assert assert_error(admin.get(f"/api/v1/workloads/{missing}", headers=scoped), 404)["message"] == (
        f"workload {missing} not found"
    )

    # metrics: the same rule as get.
    window = {"metricType": "POD_COUNT", "start": "2024-05-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}
    for workload_id in list(loaded.placement)[:20]:
        answer = admin.get(f"/api/v1/workloads/{workload_id}/metrics", params=window, headers=scoped)
        if inside(workload_id):
            assert answer.status_code == 200, answer.text
        else:
            assert assert_error(answer, 404)["message"] == f"workload {workload_id} not found"

    # telemetry: the administrator's live records inside the scopes, grouped by hand.
    live = [w for w in _records_of(admin) if inside(w["id"])]
    for group_by, key_of in TELEMETRY_GROUPINGS:
        for kind in ("WORKLOADS_COUNT", "GPU_ALLOCATION"):
            params = {"telemetryType": kind, "groupBy": group_by}
            answer = admin.get("/api/v1/workloads/telemetry", params=params, headers=scoped)
            assert answer.status_code == 200, answer.text
            seen = {
                tuple(g["value"] for g in v["groups"]): Decimal(v["value"]) for v in answer.json()["values"]
            }
            expected: dict[tuple[str, ...], Decimal] = {}
            for w in live:
                amount = Decimal(1) if kind == "WORKLOADS_COUNT" else Decimal(str(_gpus(w)))
                expected[key_of(w)] = expected.get(key_of(w), Decimal(0)) + amount
            assert seen == expected, (group_by, kind)


@pytest.mark.no_cover
@pytest.mark.parametrize(
    "rules", _scope_sets(9)[:3], ids=lambda rules: "+".join(f"{s.type}" for _, s in rules)
)
def test_a_broad_scope_kept_off_its_index_reads_the_same(
    loaded: Loaded, rules: list[tuple[str, Scope]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scope that holds most rows is kept off its columns' indexes in a list page's SQL
    (``store.workloads._broad_scope``: on SQLite, ``+project_id IN (...)``); no test store is large
    enough to be judged broad, so here every scope is, and every answer is the same as above."""
    monkeypatch.setattr(store, "_broad_scope", lambda *_args, **_kwargs: True)
    test_a_scoped_caller_reads_the_administrators_answer_restricted_to_its_scopes(loaded, rules)


TELEMETRY_GROUPINGS: list[tuple[str, Callable[[dict[str, Any]], tuple[str, ...]]]] = [
    ("ProjectId,Phase", lambda w: (w["projectId"], w["phase"])),
    ("ClusterId,DepartmentId", lambda w: (w["clusterId"], w["departmentId"])),
    ("Type", lambda w: (w["type"],)),
]


def _records_of(admin: TestClient) -> list[dict[str, Any]]:
    """Every live workload record, as the administrator lists it."""
    records: list[dict[str, Any]] = []
    while True:
        page = admin.get("/api/v1/workloads", params={"offset": len(records), "limit": 500}).json()
        records += page["workloads"]
        if "next" not in page:
            return records


def _gpus(record: dict[str, Any]) -> float:
    allocated = record.get("allocatedResources") or {}
    return float(allocated.get("gpu") or 0)


def test_scopes_nest_a_cluster_rule_covers_its_departments_and_projects(loaded: Loaded) -> None:
    admin = loaded.admin
    credential = create_key(admin, "cluster viewer")
    grant(admin, credential.client_id, "department-viewer", "cluster", CLUSTERS[0])
    scoped = bearer(token(admin, credential))
    seen = list_all(admin, scoped, {}, 500)
    expected = [i for i in list_all(admin, {}, {}, 500) if loaded.placement[i][0] == CLUSTERS[0]]
    assert seen == expected
    assert expected
    assert {loaded.placement[i][1] for i in seen} == {"dep-00", "dep-01"}


def test_a_caller_without_a_reading_rule_is_403_not_an_empty_list(loaded: Loaded) -> None:
    admin = loaded.admin
    credential = create_key(admin, "no rules")
    scoped = bearer(token(admin, credential))
    for path in ("/api/v1/workloads", "/api/v1/workloads/count", f"/api/v1/workloads/{uuid.uuid4()}"):
        assert_error(admin.get(path, headers=scoped), 403, "workloads:read")
