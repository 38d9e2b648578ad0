"""Every failure the server produces is the Run:ai ``Error`` body (docs/contract.md §2).

Malformed parameters are 400 naming the parameter and the offending text; unknown ids and paths 404;
wrong methods 405; missing or bad tokens 401 on every protected endpoint; a locked or unreachable
database 503 with ``Retry-After``. No error body carries a trace, SQL or a driver's name
(``assert_error`` checks that on every answer here).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import load, wid, workload
from tests.server import assert_error, free_port
from workplane.app import build_services, create_app
from workplane.auth.credentials import ADMIN_CLIENT_ID, ADMIN_ROLE
from workplane.domain.catalog import catalog_id
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store.database import Database

WORKLOADS = "/api/v1/workloads"
COUNT = "/api/v1/workloads/count"
TYPES = "/api/v1/workload-types"
RAY_JOB = catalog_id("type", "RayJob", "ray.io")


# --- 400: malformed parameters --------------------------------------------------------------------

BAD_LIST_PARAMETERS = [
    ({"limit": "0"}, "limit", "'0'"),
    ({"limit": "501"}, "limit", "'501'"),
    ({"limit": "ten"}, "limit", "'ten'"),
    ({"limit": "1.5"}, "limit", "'1.5'"),
    ({"offset": "-1"}, "offset", "'-1'"),
    ({"offset": "first"}, "offset", "'first'"),
    ({"sortBy": "colour"}, "sortBy", "colour"),
    ({"sortBy": "WorkloadsSort.colour"}, "sortBy", "colour"),
    ({"sortOrder": "up"}, "sortOrder", "up"),
    ({"deleted": "maybe"}, "deleted", "maybe"),
]

BAD_FILTERS = [
    ("colour==red", "unknown field"),  # unknown field
    ("name", "name"),  # no operator
    ("phase=Running", "phase=Running"),  # '=' is not an operator
    ("==Running", "==Running"),  # no field
    ("name==", "empty"),  # empty value
    ("createdAt=@2024", "=@"),  # text operator on a time field
    ("completedAt=^2024-05-01", "=^"),
    ("allocatedGPU!@1", "!@"),  # text operator on a number field
    ("priority=$0", "=$"),
    ("createdAt>=yesterday", "yesterday"),  # bad date
    ("createdAt>=2024-02-30", "2024-02-30"),
    ("deletedAt<=2024-05-01T25:00:00Z", "2024-05-01T25:00:00Z"),
    ("allocatedGPU>=two", "two"),  # bad number
    ("priority==high", "high"),
    ("idleGpus>=nan", "nan"),
    ("totalPendingTimeSeconds<=inf", "inf"),
]


def test_a_malformed_list_parameter_is_400_naming_it(client: TestClient) -> None:
    for params, name, text in BAD_LIST_PARAMETERS:
        assert_error(client.get(WORKLOADS, params=params), 400, name, text)


@pytest.mark.parametrize("path", [WORKLOADS, COUNT])
def test_a_malformed_filter_term_is_400_naming_it(client: TestClient, path: str) -> None:
    for term, mention in BAD_FILTERS:
        _check_filter_term(client, path, term, mention)


def _check_filter_term(client: TestClient, path: str, term: str, mention: str) -> None:
    assert_error(client.get(path, params={"filterBy": term}), 400, "filterBy", term, mention)
    # The same term after a good one, as a repeated parameter and (when it begins like a term, else the
    # comma would belong to the value before it) joined with a comma, as the official client sends it.
    if re.match(r"[A-Za-z][A-Za-z0-9]*(==|!=|<=|>=|=@|!@|=\^|=\$)", term):
        assert_error(client.get(path, params={"filterBy": f"phase==Running,{term}"}), 400, "filterBy", term)
    assert_error(client.get(path, params=[("filterBy", "phase==Running"), ("filterBy", term)]), 400, term)


@pytest.mark.parametrize("path", [WORKLOADS, COUNT])
def test_count_checks_deleted_like_the_list(client: TestClient, path: str) -> None:
    assert_error(client.get(path, params={"deleted": "yes please"}), 400, "deleted", "yes please")


def test_a_malformed_types_parameter_is_400(client: TestClient) -> None:
    for params, mention in [
        ({"filterBy": "category==Train"}, "category"),  # types filter on name and group only
        ({"filterBy": "name"}, "name"),
        ({"filterBy": "group=="}, "empty"),
        ({"externalTypesOnly": "perhaps"}, "externalTypesOnly"),
    ]:
        assert_error(client.get(TYPES, params=params), 400, mention)


def test_a_malformed_path_uuid_is_400_naming_it(client: TestClient) -> None:
    for method, path, name in [
        ("GET", "/api/v1/workloads/{}", "workloadId"),
        ("GET", "/api/v1/workload-categories/{}", "categoryId"),
        ("GET", "/api/v1/workload-types/{}", "workloadTypeId"),
        ("PUT", "/api/v1/workload-types/{}", "workloadTypeId"),
        ("DELETE", "/api/v1/workload-types/{}", "workloadTypeId"),
    ]:
        for bad in ["not-a-uuid", "1234", "11111111-1111-4111-8111-11111111111Z"]:
            body = {"categoryId": catalog_id("category", "Build")}
            assert_error(client.request(method, path.format(bad), json=body), 400, name, bad)


def test_a_malformed_body_is_400(client: TestClient) -> None:
    for body, mention in [
        (b"{not json", "not valid JSON"),
        (b"", "body"),
        (b"[1, 2]", "body"),
        (b'{"categoryId": "build"}', "categoryId"),
        (b'{"priorityId": 7}', "priorityId"),
    ]:
        headers = {"Content-Type": "application/json"}
        assert_error(client.put(f"{TYPES}/{RAY_JOB}", content=body, headers=headers), 400, mention)


# --- the `SomeEnum.` prefix the official client puts on enum arguments -----------------------------


def test_enum_arguments_may_carry_their_type_name(client: TestClient, database: Database) -> None:
    load(
        database,
        workload("b-one", createdAt="2024-05-01T00:00:00Z"),
        workload("a-two", createdAt="2024-05-02T00:00:00Z"),
        workload("c-three", createdAt="2024-05-03T00:00:00Z"),
    )

    def names(params: dict[str, str]) -> list[str]:
        answer = client.get(WORKLOADS, params=params)
        assert answer.status_code == 200, answer.text
        return [w["name"] for w in answer.json()["workloads"]]

    assert names({"sortOrder": "SortOrder.desc", "sortBy": "WorkloadsSort.name"}) == [
        "c-three",
        "b-one",
        "a-two",
    ]
    assert names({"sortOrder": "desc", "sortBy": "name"}) == ["c-three", "b-one", "a-two"]
    assert names({"sortOrder": "SortOrder.asc"}) == ["b-one", "a-two", "c-three"]
    assert names({"deleted": "Deleted.false"}) == ["b-one", "a-two", "c-three"]
    assert names({"deleted": "Deleted.true"}) == []
    every = client.get(TYPES, params={"externalTypesOnly": "ExternalTypesOnly.true"}).json()["types"]
    assert every == client.get(TYPES, params={"externalTypesOnly": "true"}).json()["types"]
    assert "Training" not in {t["name"] for t in every}


# --- 404 and 405 -----------------------------------------------------------------------------------


def test_an_unknown_id_is_404(client: TestClient, database: Database) -> None:
    load(database, workload("known"))
    assert client.get(f"{WORKLOADS}/{wid('known')}").status_code == 200
    missing = wid("unknown")
    assert_error(client.get(f"{WORKLOADS}/{missing}"), 404, str(missing))
    # A UUID in another spelling (upper case) names the same workload.
    assert client.get(f"{WORKLOADS}/{str(wid('known')).upper()}").json()["name"] == "known"
    other = str(uuid.uuid4())
    assert_error(client.get(f"/api/v1/workload-categories/{other}"), 404, other)
    assert_error(client.get(f"{TYPES}/{other}"), 404, other)
    assert_error(client.put(f"{TYPES}/{other}", json={}), 404, other)
    assert_error(client.delete(f"{TYPES}/{other}"), 404, other)


def test_an_unknown_path_is_404(client: TestClient, anonymous: TestClient) -> None:
    # "/" is the dashboard's page (tests/api/test_ui.py); everything else unknown is a 404.
    for path in ["/nope", "/api", "/api/v1", "/api/v1/nope", "/api/v2/workloads", "/api/v1/workloads/a/b"]:
        assert_error(client.get(path), 404)
        assert_error(anonymous.get(path), 404)
        assert_error(anonymous.post(path, json={}), 404)


def test_a_wrong_method_is_405(client: TestClient) -> None:
    for method, path, allowed in [
        ("DELETE", WORKLOADS, "GET"),
        ("POST", COUNT, "GET"),
        ("PUT", f"{WORKLOADS}/{wid('x')}", "GET"),
        ("POST", "/api/v1/workload-categories", "GET"),
        ("PATCH", f"{TYPES}/{RAY_JOB}", "GET"),
        ("GET", "/api/v1/token", "POST"),
        ("DELETE", "/api/v1/workload-priorities", "GET"),
    ]:
        answer = client.request(method, path)
        assert_error(answer, 405)
        assert allowed in answer.headers["allow"], (method, path, answer.headers)


# --- 401 -------------------------------------------------------------------------------------------


def _protected_operations(app_client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every operation the API description says needs a token."""
    document = app_client.get("/api/openapi.json").json()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security", document.get("security")) == []:
                continue
            concrete = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    concrete = concrete.replace("{" + parameter["name"] + "}", str(uuid.uuid4()))
            found.append((method.upper(), concrete))
    return found


BAD_AUTHORIZATION = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic d29ya3BsYW5lOnNlY3JldA==",
    "Bearer not-a-token",
    "Bearer a.b.c",
    "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
    "Token abc",
]


def test_every_protected_endpoint_is_401_without_a_good_token(anonymous: TestClient) -> None:
    operations = _protected_operations(anonymous)
    assert ("GET", WORKLOADS) in operations
    assert len(operations) >= 11
    for authorization in BAD_AUTHORIZATION:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in operations:
            # Malformed parameters too: authentication is checked before anything else is read.
            answer = anonymous.request(method, path, params={"limit": "x"}, headers=headers, json={"x": 1})
            assert_error(answer, 401)
            assert answer.headers["www-authenticate"].startswith("Bearer"), (method, path)


def test_open_endpoints_need_no_token(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/health").json() == {"status": "ok"}
    assert anonymous.get("/api/openapi.json").status_code == 200
    assert anonymous.get("/api/docs").json()["openapi"].startswith("3.")
    assert anonymous.get("/openapi.json").json()["openapi"].startswith("3.")
    assert anonymous.get("/api/docs", headers={"Accept": "text/html"}).text.startswith("<!doctype html>")


# --- 503: the database is locked or unreachable ----------------------------------------------------


def _quiet(settings: Settings) -> Settings:
    """No background purge: only the requests under test touch the database."""
    return settings.model_copy(update={"retention_interval_s": 0})


@contextmanager
def _in_process(settings: Settings, prepare: bool) -> Iterator[tuple[TestClient, str | None]]:
    """An app on ``settings`` holding an administrator token signed with its key (no database needed),
    and the administrator secret when ``prepare`` (migrate and seed the store first)."""
    services = build_services(settings)
    secret = prepare_store(services.db, settings, announce=False) if prepare else None
    services.db.dispose()  # no pooled connection predates what the test does to the database
    token = services.signer.issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600)
    try:
        with TestClient(create_app(settings, services), raise_server_exceptions=False) as app_client:
            app_client.headers["Authorization"] = f"Bearer {token}"
            yield app_client, secret
    finally:
        services.db.dispose()


def _requests_touching_the_database(secret: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", WORKLOADS, {"params": {"filterBy": "phase==Running"}}),
        ("GET", COUNT, {}),
        ("GET", f"{WORKLOADS}/{wid('x')}", {}),
        ("GET", "/api/v1/workload-categories", {}),
        ("GET", "/api/v1/workload-priorities", {}),
        ("GET", TYPES, {}),
        ("PUT", f"{TYPES}/{RAY_JOB}", {"json": {"categoryId": catalog_id("category", "Build")}}),
        (
            "POST",
            "/api/v1/token",
            {
                "json": {
                    "grantType": "client_credentials",
                    "clientId": ADMIN_CLIENT_ID,
                    "clientSecret": secret,
                }
            },
        ),
        ("GET", "/api/v1/health", {}),
    ]


@contextmanager
def _sqlite_locked(path: Path) -> Iterator[None]:
    """Another connection holding SQLite's exclusive lock: in WAL mode an ordinary write transaction
    leaves readers free, so the lock is taken in exclusive locking mode (held until the connection
    closes)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("PRAGMA locking_mode=EXCLUSIVE")
        other.execute("BEGIN EXCLUSIVE")
        other.execute("UPDATE catalog_state SET version = version")
        yield
    finally:
        other.close()


def test_a_locked_sqlite_database_is_503_with_retry_after(tmp_path: Path) -> None:
    settings = _quiet(Settings(data_dir=tmp_path / "data", db_busy_timeout_ms=100))
    with _in_process(settings, prepare=True) as (app_client, secret):
        assert secret is not None
        requests = _requests_touching_the_database(secret)
        with _sqlite_locked(tmp_path / "data" / "workplane.db"):
            for method, path, kwargs in requests:
                answer = app_client.request(method, path, **kwargs)
                assert_error(answer, 503)
                assert answer.headers["retry-after"] == "1", (method, path)
        # The lock gone, the same requests succeed on the same app (no connection left broken).
        for method, path, kwargs in requests:
            answer = app_client.request(method, path, **kwargs)
            assert answer.status_code in (200, 404), (method, path, answer.text)


def test_a_locked_sqlite_write_is_503_while_reads_go_on(tmp_path: Path) -> None:
    """An ordinary competing writer (BEGIN IMMEDIATE) blocks writes only: WAL readers carry on."""
    settings = _quiet(Settings(data_dir=tmp_path / "data", db_busy_timeout_ms=100))
    with _in_process(settings, prepare=True) as (app_client, _secret):
        other = sqlite3.connect(tmp_path / "data" / "workplane.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            answer = app_client.put(
                f"{TYPES}/{RAY_JOB}", json={"categoryId": catalog_id("category", "Build")}
            )
            assert_error(answer, 503)
            assert answer.headers["retry-after"] == "1"
            assert app_client.get(f"{TYPES}/{RAY_JOB}").json()["categoryName"] == "Train"
        finally:
            other.close()
        answer = app_client.put(f"{TYPES}/{RAY_JOB}", json={"categoryId": catalog_id("category", "Build")})
        assert answer.json()["categoryName"] == "Build"


def test_an_unreachable_postgresql_is_503_with_retry_after(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    url = f"postgresql+psycopg://workplane@127.0.0.1:{closed}/workplane"
    settings = _quiet(Settings(data_dir=tmp_path / "data", database_url=url))
    with _in_process(settings, prepare=False) as (app_client, _secret):
        for method, path, kwargs in _requests_touching_the_database("any secret"):
            answer = app_client.request(method, path, **kwargs)
            assert_error(answer, 503)
            assert answer.headers["retry-after"] == "1", (method, path)
            assert str(closed) not in answer.text  # not even where it tried to connect
