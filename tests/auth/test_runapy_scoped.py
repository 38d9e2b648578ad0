"""The official client, ``runapy``, unmodified, with a scoped credential against a real server: it sees
exactly its scope — in lists, counts and gets — and is refused what its role does not allow."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from runai import models
from runai.api_client import ApiClient
from runai.configuration import Configuration
from runai.exceptions import ApiException
from runai.runai_client import RunaiClient

from tests.factories import load, wid, workload
from tests.server import Server
from workplane.store.database import Database

pytestmark = [pytest.mark.server, pytest.mark.shared_server]

OTHER_CLUSTER = "33333333-3333-4333-8333-333333333333"


def _load(database: Database) -> None:
    load(
        database,
        workload(
            "mine-1", projectId="1", projectName="proj-a", departmentId="10", createdAt="2024-05-01T00:00:00Z"
        ),
        workload(
            "mine-2", projectId="1", departmentId="10", phase="Pending", createdAt="2024-05-02T00:00:00Z"
        ),
        workload(
            "dept-sibling",
            projectId="2",
            projectName="proj-b",
            departmentId="10",
            createdAt="2024-05-03T00:00:00Z",
        ),
        workload("other-dept", projectId="3", projectName="proj-c", departmentId="20", departmentName="d-20"),
        workload(
            "other-cluster", clusterId=OTHER_CLUSTER, projectId="4", projectName="proj-d", departmentId="30"
        ),
    )


def _scoped_credential(server: Server, role: str, scope_type: str, scope_id: str) -> tuple[str, str]:
    with server.client() as admin:
        key = admin.post("/api/v1/access-keys", json={"name": f"{role} on {scope_id}"}).json()
        answer = admin.post(
            "/api/v1/authorization/access-rules",
            json={
                "subjectId": key["clientId"],
                "roleName": role,
                "scopeType": scope_type,
                "scopeId": scope_id,
            },
        )
        assert answer.status_code == 201, answer.text
    return key["clientId"], key["clientSecret"]


def _runai(server: Server, client_id: str, secret: str) -> RunaiClient:
    configuration = Configuration(client_id=client_id, client_secret=secret, runai_base_url=server.base_url)
    return RunaiClient(ApiClient(configuration))


def _names(page: dict[str, Any]) -> list[str]:
    return [w["name"] for w in page["workloads"]]


@pytest.mark.parametrize(
    ("role", "scope_type", "scope_id", "expected"),
    [
        ("researcher", "project", "1", ["mine-1", "mine-2"]),
        ("department-viewer", "department", "10", ["mine-1", "mine-2", "dept-sibling"]),
    ],
)
def test_the_official_client_sees_exactly_its_scope(
    server: Server, database: Database, role: str, scope_type: str, scope_id: str, expected: list[str]
) -> None:
    _load(database)
    client = _runai(server, *_scoped_credential(server, role, scope_type, scope_id))
    try:
        api = client.workloads.workloads
        page = api.get_workloads().data
        models.GetWorkloads200Response.from_dict(page)
        assert _names(page) == expected
        assert api.count_workloads().data == {"count": len(expected)}
        assert api.count_workloads(filter_by=["phase==Running"]).data == {
            "count": len([n for n in expected if n != "mine-2"])
        }
        # Paging within the scope: next points past the caller's own rows, not the tenant's.
        first = api.get_workloads(limit=1).data
        assert (_names(first), first.get("next")) == ([expected[0]], 1)
        assert api.get_workload(str(wid("mine-1"))).data["name"] == "mine-1"
        for outside in ("other-dept", "other-cluster"):
            with pytest.raises(ApiException) as raised:
                api.get_workload(str(wid(outside)))
            assert raised.value.status == 404
            assert models.Error.from_dict(json.loads(raised.value.body)).code == 404
        # Reading the catalog is allowed; changing it is not.
        types = client.workloads.workload_properties.list_workload_types().data["types"]
        assert types
        with pytest.raises(ApiException) as raised:
            client.workloads.workload_properties.update_workload_type(
                types[0]["id"], models.WorkloadTypeUpdateFields(category_id=types[0]["categoryId"])
            )
        assert raised.value.status == 403
    finally:
        client.close()


def test_the_administrator_still_sees_everything(server: Server, database: Database) -> None:
    _load(database)
    with server.client() as admin:
        assert admin.get("/api/v1/workloads/count").json() == {"count": 5}
    assert httpx.get(server.url("/api/v1/workloads")).status_code == 401
