"""Bad values are refused at the edge with a 400 ``Error`` naming what is wrong, never a 5xx, and
nothing of the request reaches the store: non-finite and out-of-range numbers, integers beyond 64 bits,
NUL characters anywhere (PostgreSQL cannot store one), and tokens whose claims are not finite."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import bearer
from tests.factories import CLUSTER, wid
from tests.server import assert_error
from workplane.api.deps import Services
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.auth.tokens import key_id

SYNC = f"/api/v1/clusters/{CLUSTER}/sync"


def _item(label: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(wid(label)),
        "revision": 1,
        "name": label,
        "projectId": "1",
        "projectName": "proj-a",
        "departmentId": "10",
        "departmentName": "dept-x",
        "type": "Training",
        "phase": "Running",
        "createdAt": "2024-05-01T12:00:00Z",
        **extra,
    }


def _post_raw(client: TestClient, text: str) -> Any:
    return client.post(SYNC, content=text.encode(), headers={"Content-Type": "application/json"})


def _stored(client: TestClient) -> int:
    answer = client.get("/api/v1/workloads/count")
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["count"]
    return count


SAMPLE_ID = str(wid("sampled"))
BAD_SAMPLES = {
    "NaN value": f'{{"workloadId":"{SAMPLE_ID}","metric":"GPU_UTILIZATION","timestamps":[1],"values":[NaN]}}',
    "Infinity value": (
        f'{{"workloadId":"{SAMPLE_ID}","metric":"GPU_UTILIZATION","timestamps":[1],"values":[Infinity]}}'
    ),
    "overflowing value": (
        f'{{"workloadId":"{SAMPLE_ID}","metric":"GPU_UTILIZATION","timestamps":[1],"values":[-1e400]}}'
    ),
    "timestamp beyond 64 bits": (
        f'{{"workloadId":"{SAMPLE_ID}","metric":"GPU_UTILIZATION","timestamps":[{2**70}],"values":[1]}}'
    ),
    "timestamp past year 9999": (
        f'{{"workloadId":"{SAMPLE_ID}","metric":"GPU_UTILIZATION","timestamps":[{2**62}],"values":[1]}}'
    ),
    "negative timestamp": (
        f'{{"workloadId":"{SAMPLE_ID}","metric":"GPU_UTILIZATION","timestamps":[-5],"values":[1]}}'
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLES))
def test_bad_samples_are_400_and_nothing_is_applied(client: TestClient, case: str) -> None:
    workload = _item("sampled")
    text = f'{{"workloads":[{_json(workload)}],"samples":[{BAD_SAMPLES[case]}]}}'
    assert_error(_post_raw(client, text), 400, "samples[0]")
    assert _stored(client) == 0


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


BAD_ITEMS: dict[str, tuple[str, str]] = {
    "runningPods beyond 64 bits": ('"runningPods": 100000000000000000000000', "runningPods"),
    "totalPendingTimeSeconds beyond 64 bits": (f'"totalPendingTimeSeconds": {2**64}', "totalPendingTime"),
    "idleGpus beyond 64 bits": (f'"idleGpus": {2**70}', "idleGpus"),
    "idleAllocatedGpus infinite": ('"idleAllocatedGpus": 1e400', "idleAllocatedGpus"),
    "idleAllocatedGpus NaN": ('"idleAllocatedGpus": NaN', "idleAllocatedGpus"),
    "allocated GPUs infinite": ('"allocatedResources": {"gpu": 1e999}', "allocatedResources"),
    "pods beyond 64 bits": (f'"requestedPods": {2**65}', "requestedPods"),
    "NUL in a name": ('"name": "a\\u0000b"', "NUL"),
    "NUL in a key": ('"additionalFields": {"a\\u0000": "x"}', "NUL"),
    "nesting too deep": ('"additionalFields": ' + '{"a": ' * 40 + "1" + "}" * 40, "deeper"),
}


@pytest.mark.parametrize("case", sorted(BAD_ITEMS))
def test_bad_workload_values_are_400_and_nothing_is_applied(client: TestClient, case: str) -> None:
    field, mention = BAD_ITEMS[case]
    good = _json(_item("good"))
    bad = _json(_item("bad"))[:-1] + ", " + field + "}"
    answer = _post_raw(client, f'{{"workloads":[{good},{bad}]}}')
    assert_error(answer, 400, mention)
    assert _stored(client) == 0


def test_a_nul_in_the_cluster_name_is_400(client: TestClient) -> None:
    answer = _post_raw(client, f'{{"clusterName":"c\\u0000","workloads":[{_json(_item("a"))}]}}')
    assert_error(answer, 400, "NUL")
    assert _stored(client) == 0


QUERIES = {
    "audit after beyond 64 bits": f"/api/v1/audit?after={2**64}",
    "audit after far beyond": "/api/v1/audit?after=" + "9" * 400,
    "audit actor with NUL": "/api/v1/audit?actor=a%00b",
    "audit action with NUL": "/api/v1/audit?action=%00",
    "workloads offset beyond 64 bits": f"/api/v1/workloads?offset={2**64}",
    "workload id with NUL": "/api/v1/workloads/ab%00cd",
    "metrics of an id with NUL": "/api/v1/workloads/ab%00cd/metrics?metricType=GPU_UTILIZATION"
    "&start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z",
    "metrics start far in the future": f"/api/v1/workloads/{wid('x')}/metrics?metricType=GPU_UTILIZATION"
    "&start=2024-01-01T00:00:00Z&end=99999-01-02T00:00:00Z",
    "metrics numberOfSamples beyond 64 bits": f"/api/v1/workloads/{wid('x')}/metrics?"
    f"metricType=GPU_UTILIZATION&start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z&numberOfSamples={2**64}",
    "access key with NUL": "/api/v1/access-keys/a%00b",
    "workload type with NUL": "/api/v1/workload-types/a%00b",
    "category with NUL": "/api/v1/workload-categories/a%00b",
    "telemetry type with NUL": "/api/v1/workloads/telemetry?telemetryType=%00",
    "sortBy with NUL": "/api/v1/workloads?sortBy=na%00me",
    "deleted with NUL": "/api/v1/workloads?deleted=%00",
    "unknown parameter with NUL": "/api/v1/workloads?x%00=1",
}


@pytest.mark.parametrize("case", sorted(QUERIES))
def test_bad_query_values_are_400(client: TestClient, case: str) -> None:
    answer = client.get(QUERIES[case])
    assert answer.status_code in (400, 404), answer.text
    assert_error(answer, answer.status_code)
    if "NUL" in case or "64 bits" in case or "far" in case:
        assert answer.status_code == 400, answer.text


BODIES: dict[str, tuple[str, str, str]] = {
    "access key name with NUL": ("POST", "/api/v1/access-keys", '{"name": "k\\u0000"}'),
    "access key client id with NUL": (
        "POST",
        "/api/v1/access-keys",
        '{"name": "k", "clientId": "a\\u0000b"}',
    ),
    "rule subject with NUL": (
        "POST",
        "/api/v1/authorization/access-rules",
        '{"subjectId": "s\\u0000", "roleName": "viewer", "scopeType": "tenant"}',
    ),
    "rule scope id with NUL": (
        "POST",
        "/api/v1/authorization/access-rules",
        '{"subjectId": "s", "roleName": "viewer", "scopeType": "project", "scopeId": "p\\u0000"}',
    ),
    "token request with NUL": (
        "POST",
        "/api/v1/token",
        '{"grantType": "client_credentials", "clientId": "a\\u0000", "clientSecret": "b"}',
    ),
}


@pytest.mark.parametrize("case", sorted(BODIES))
def test_nul_in_a_body_is_400_and_nothing_is_written(client: TestClient, case: str) -> None:
    method, path, text = BODIES[case]
    before = client.get("/api/v1/access-keys").json()
    answer = client.request(method, path, content=text.encode(), headers={"Content-Type": "application/json"})
    assert_error(answer, 400, "NUL")
    assert client.get("/api/v1/access-keys").json() == before


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("exp", ["1e400", "-1e400", "NaN", "Infinity", str(2**70), '"soon"', "1.5e3"])
def test_a_signed_token_with_a_bad_exp_is_401(anonymous: TestClient, services: Services, exp: str) -> None:
    key = bytes.fromhex((services.settings.data_dir / "signing.key").read_text().strip())
    now = int(time.time())
    header = _b64url(f'{{"alg":"HS256","kid":"{key_id(key)}","typ":"JWT"}}'.encode())
    payload = _b64url(
        f'{{"iss":"workplane","sub":"{ADMIN_CLIENT_ID}","iat":{now},"exp":{exp},"tid":"1"}}'.encode()
    )
    signature = _b64url(hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    answer = anonymous.get("/api/v1/workloads", headers=bearer(f"{header}.{payload}.{signature}"))
    assert_error(answer, 401)


def test_ids_are_checked_before_the_store(client: TestClient) -> None:
    # A well-formed id that does not exist is 404, a malformed one never reaches SQL either way.
    assert client.get(f"/api/v1/workloads/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize("quantity", ["1e999", "-1e999", "1e400Gi", 1e308 * 10])
def test_quantities_that_overflow_are_unreadable(quantity: Any) -> None:
    from workplane.domain.observation import quantity_to_number

    assert quantity_to_number(quantity) is None
    assert quantity_to_number("2Gi") == 2 * 2**30  # a readable one still reads
