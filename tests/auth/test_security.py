"""What is refused, and how: every refusal is 401, 403, 404 or 429 with the Run:ai ``Error`` body,
says nothing about internals or secrets, and lands in the audit log."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import Credential, bearer, create_key, grant, token
from tests.factories import CLUSTER, load, workload
from tests.server import assert_error
from workplane.agents.client import add_connection_flags
from workplane.api.deps import Services
from workplane.app import create_app
from workplane.auth import credentials
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.auth.throttle import TokenThrottle
from workplane.auth.tokens import TokenSigner, key_id, rotate_signing_key
from workplane.store.database import Database

WORKLOADS = "/api/v1/workloads"
OTHER_CLUSTER = "99999999-9999-4999-8999-999999999999"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(key: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def _current_key(services: Services) -> bytes:
    return bytes.fromhex((services.settings.data_dir / "signing.key").read_text().strip())


def _no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
    assert "scrypt$" not in text


def _audit(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/audit", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


# --- tokens ------------------------------------------------------------------------------------------


def test_requests_without_a_valid_token_are_401(client: TestClient, services: Services) -> None:
    key = _current_key(services)
    now = int(time.time())
    claims = {"iss": "workplane", "sub": ADMIN_CLIENT_ID, "iat": now, "exp": now + 600, "tid": "1"}
    header = {"alg": "HS256", "kid": key_id(key), "typ": "JWT"}
    good = _sign(key, header, claims)
    works = client.get(WORKLOADS, headers=bearer(good))
    assert works.status_code == 200, works.text  # each variant below breaks one thing
    head, payload, signature = good.split(".")
    refused = {
        "no token": {"Authorization": ""},
        "not bearer": {"Authorization": f"Basic {good}"},
        "expired": bearer(_sign(key, header, {**claims, "iat": now - 7200, "exp": now - 3600})),
        "another key": bearer(_sign(b"k" * 32, header, claims)),
        "another key, its own kid": bearer(_sign(b"k" * 32, {**header, "kid": key_id(b"k" * 32)}, claims)),
        "alg none": bearer(f"{_b64url(json.dumps({'alg': 'none'}).encode())}.{payload}."),
        "tampered payload": bearer(
            f"{head}.{_b64url(json.dumps({**claims, 'sub': 'x'}).encode())}.{signature}"
        ),
        "another tenant": bearer(_sign(key, header, {**claims, "tid": "2"})),
        "unknown subject": bearer(_sign(key, header, {**claims, "sub": "nobody-here"})),
    }
    for name, headers in refused.items():
        answer = client.get(WORKLOADS, headers=headers)
        body = assert_error(answer, 401)
        assert answer.headers["www-authenticate"].startswith("Bearer"), name
        _no_secrets(answer.text, key.hex())
        assert "nobody-here" not in body["message"], name


def test_a_revoked_key_stops_working_at_once(client: TestClient, anonymous: TestClient) -> None:
    credential = create_key(client, "leaving soon")
    grant(client, credential.client_id, "project-viewer", "project", "1")
    issued = token(anonymous, credential)
    assert anonymous.get(WORKLOADS, headers=bearer(issued)).status_code == 200
    assert client.delete(f"/api/v1/access-keys/{credential.client_id}").status_code == 204
    assert_error(anonymous.get(WORKLOADS, headers=bearer(issued)), 401, "no longer valid")
    assert_error(
        anonymous.post(
            "/api/v1/token",
            json={
                "grantType": "client_credentials",
                "clientId": credential.client_id,
                "clientSecret": credential.secret,
            },
        ),
        401,
    )
    # Revoked keys are listed as such; no secret or hash is ever listed.
    listing = client.get("/api/v1/access-keys")
    _no_secrets(listing.text, credential.secret)
    revoked = next(k for k in listing.json()["accessKeys"] if k["clientId"] == credential.client_id)
    assert revoked["revokedAt"] is not None


def test_a_rotated_secret_replaces_the_old_one(client: TestClient, anonymous: TestClient) -> None:
    credential = create_key(client, "rotating")
    answer = client.post(f"/api/v1/access-keys/{credential.client_id}/secret")
    assert answer.status_code == 200, answer.text
    fresh = Credential(credential.client_id, answer.json()["clientSecret"])
    assert fresh.secret != credential.secret
    token(anonymous, fresh)
    refused = anonymous.post(
        "/api/v1/token",
        json={"grantType": "app_token", "AppId": credential.client_id, "AppSecret": credential.secret},
    )
    assert_error(refused, 401)


def test_no_secret_starts_with_a_dash(
    client: TestClient, anonymous: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command line takes ``--client-secret SECRET``, and argparse reads a value starting with
    "-" as an option: such a secret (one in 64 of ``token_urlsafe``'s) is drawn again, for new and
    rotated keys alike."""
    draws = iter(["-dash-first", "created-secret", "-dash-again", "-and-again", "rotated-secret"])
    monkeypatch.setattr(credentials.secrets, "token_urlsafe", lambda _: next(draws))
    credential = create_key(client, "dashless")
    assert credential.secret == "created-secret"
    answer = client.post(f"/api/v1/access-keys/{credential.client_id}/secret")
    assert answer.json()["clientSecret"] == "rotated-secret"
    token(anonymous, Credential(credential.client_id, "rotated-secret"))
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_connection_flags(parser)
    args = parser.parse_args(["--client-id", credential.client_id, "--client-secret", "rotated-secret"])
    assert args.client_secret == "rotated-secret"
    with pytest.raises(argparse.ArgumentError):  # what a dash-first secret would meet
        parser.parse_args(["--client-secret", "-dash-first"])


def test_tokens_of_a_rotated_signing_key_stay_valid_until_they_expire(
    client: TestClient, services: Services, admin_secret: str
) -> None:
    before = client.headers["Authorization"]
    old_kid = services.signer.kid
    new_kid = rotate_signing_key(services.settings.data_dir, keep_s=3600)
    # Another process would see the rotation by itself; this one is made to look at once.
    signer = TokenSigner.from_dir(services.settings.data_dir, tenant="1")
    services.signer = signer
    assert signer.kid == new_kid != old_kid
    assert client.get(WORKLOADS).status_code == 200  # issued under the old key
    fresh = client.post(
        "/api/v1/token",
        json={"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": admin_secret},
        headers={"Authorization": ""},
    ).json()["accessToken"]
    header = json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))
    assert header["kid"] == new_kid
    assert client.get(WORKLOADS, headers=bearer(fresh)).status_code == 200
    # Once the old key's retention has passed, its tokens are refused.
    for path in (services.settings.data_dir / "signing-keys").iterdir():
        path.rename(path.with_name(f"{old_kid}.0.key"))
    services.signer = TokenSigner.from_dir(services.settings.data_dir, tenant="1")
    assert_error(client.get(WORKLOADS, headers={"Authorization": before}), 401)


# --- permissions -------------------------------------------------------------------------------------


def test_a_missing_permission_is_403(client: TestClient, anonymous: TestClient) -> None:
    viewer = create_key(client, "viewer")
    grant(client, viewer.client_id, "department-viewer", "department", "10")
    headers = bearer(token(anonymous, viewer))
    assert anonymous.get(WORKLOADS, headers=headers).status_code == 200
    assert anonymous.get("/api/v1/workload-types", headers=headers).status_code == 200
    types = anonymous.get("/api/v1/workload-types", headers=headers).json()["types"]
    refused = [
        ("PUT", f"/api/v1/workload-types/{types[0]['id']}", {"categoryId": None}),
        ("DELETE", f"/api/v1/workload-types/{types[0]['id']}", None),
        ("GET", "/api/v1/access-keys", None),
        ("POST", "/api/v1/access-keys", {"name": "mine", "kind": "user"}),
        ("GET", "/api/v1/authorization/access-rules", None),
        ("GET", "/api/v1/audit", None),
        ("POST", f"/api/v1/clusters/{CLUSTER}/sync", {"workloads": []}),
    ]
    for method, path, body in refused:
        answer = anonymous.request(method, path, json=body, headers=headers)
        assert_error(answer, 403, "permission denied")
    # Refusals are audited with who, what and the answer.
    entries = _audit(client, action="request.refused", actor=viewer.client_id)
    assert {(e["target"], e["status"]) for e in entries} >= {(f"{m} {p}", 403) for m, p, _ in refused}


def test_an_agent_reports_for_its_own_cluster_only(client: TestClient, anonymous: TestClient) -> None:
    agent = create_key(client, "agent of cluster 1", kind="agent", clusterId=str(CLUSTER))
    headers = bearer(token(anonymous, agent))
    record = {
        "id": str(uuid.uuid4()),
        "name": "w",
        "projectId": "1",
        "projectName": "p",
        "departmentId": "10",
        "departmentName": "d",
        "type": "Training",
        "phase": "Running",
        "createdAt": "2024-05-01T00:00:00Z",
        "revision": 1,
    }
    ok = anonymous.post(f"/api/v1/clusters/{CLUSTER}/sync", json={"workloads": [record]}, headers=headers)
    assert ok.status_code == 200, ok.text
    elsewhere = anonymous.post(
        f"/api/v1/clusters/{OTHER_CLUSTER}/sync", json={"workloads": [record]}, headers=headers
    )
    assert_error(elsewhere, 403, "may not report for cluster")
    # A rule on another cluster cannot widen an agent key either.
    answer = client.post(
        "/api/v1/authorization/access-rules",
        json={
            "subjectId": agent.client_id,
            "roleName": "cluster-agent",
            "scopeType": "cluster",
            "scopeId": OTHER_CLUSTER,
        },
    )
    assert_error(answer, 400, "own cluster")
    # An agent reads nothing.
    assert_error(anonymous.get(WORKLOADS, headers=headers), 403)
    entries = _audit(client, actor=agent.client_id, action="request.refused")
    assert any(
        e["target"] == f"POST /api/v1/clusters/{OTHER_CLUSTER}/sync" and e["status"] == 403 for e in entries
    )
    assert client.get(WORKLOADS).json()["workloads"][0]["clusterId"] == str(CLUSTER)


def test_the_last_administrator_cannot_be_revoked(client: TestClient) -> None:
    assert_error(client.delete(f"/api/v1/access-keys/{ADMIN_CLIENT_ID}"), 409, "no live administrator")
    rules = client.get("/api/v1/authorization/access-rules", params={"subjectId": ADMIN_CLIENT_ID})
    (rule,) = rules.json()["accessRules"]
    assert rule["roleName"] == "administrator"
    assert rule["scopeType"] == "tenant"
    assert_error(client.delete(f"/api/v1/authorization/access-rules/{rule['id']}"), 409)


def test_health_and_the_api_description_stay_open(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/health").status_code == 200
    assert anonymous.get("/api/docs").status_code == 200
    assert anonymous.get("/api/openapi.json").status_code == 200
    for path in (WORKLOADS, "/api/v1/workload-categories", "/api/v1/access-keys", "/api/v1/audit"):
        assert_error(anonymous.get(path), 401)


# --- the token endpoint under attack -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ask(anonymous: TestClient, client_id: str, secret: str) -> Any:
    return anonymous.post(
        "/api/v1/token",
        json={"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret},
    )


def test_repeated_failures_are_slowed_down_and_recover(
    services: Services, anonymous: TestClient, admin_secret: str
) -> None:
    clock = FakeClock()
    services.throttle = TokenThrottle(clock=clock)
    for _ in range(5):  # the first failures are free
        assert_error(_ask(anonymous, ADMIN_CLIENT_ID, "wrong"), 401)
    assert_error(_ask(anonymous, ADMIN_CLIENT_ID, "wrong"), 401)  # the sixth closes the door for 1 s
    throttled = _ask(anonymous, ADMIN_CLIENT_ID, admin_secret)  # even the right secret waits
    assert_error(throttled, 429, "too many failed token requests")
    assert throttled.headers["retry-after"] == "1"
    clock.now += 1
    assert_error(_ask(anonymous, ADMIN_CLIENT_ID, "wrong"), 401)
    assert _ask(anonymous, ADMIN_CLIENT_ID, admin_secret).headers["retry-after"] == "2"  # doubling
    # The delay is capped: however long the guessing, the owner waits at most a minute.
    for _ in range(20):
        clock.now += 61
        _ask(anonymous, ADMIN_CLIENT_ID, "wrong")
    assert int(_ask(anonymous, ADMIN_CLIENT_ID, admin_secret).headers["retry-after"]) <= 60
    # After the wait the owner gets in; the success gives back its own count only, so the next wrong
    # guess is checked and closes the door again.
    clock.now += 61
    assert _ask(anonymous, ADMIN_CLIENT_ID, admin_secret).status_code == 200
    assert_error(_ask(anonymous, ADMIN_CLIENT_ID, "wrong"), 401)
    assert_error(_ask(anonymous, ADMIN_CLIENT_ID, admin_secret), 429)


def test_an_address_that_succeeded_before_is_not_locked_out_by_guessing_elsewhere(database: Database) -> None:
    clock = FakeClock()
    throttle = TokenThrottle(clock=clock)

    def attempt(address: str, ok: bool = False) -> int:
        with database.write() as conn:
            begun = throttle.begin(conn, "svc", address)
            if begun.wait_s == 0 and ok:
                throttle.succeeded(conn, begun, "svc", address)
            return begun.wait_s

    assert attempt("10.0.0.1", ok=True) == 0  # the owner's usual address
    for _ in range(30):
        attempt("10.6.6.6")
    assert attempt("10.6.6.6") > 0
    assert attempt("10.9.9.9") > 0  # a new address waits for the client id
    assert attempt("10.0.0.1", ok=True) == 0
    # Failures are forgotten after a quiet quarter of an hour.
    clock.now += 901
    assert attempt("10.9.9.9") == 0


def test_unknown_and_known_client_ids_take_the_same_time(
    client: TestClient, anonymous: TestClient, services: Services, strong_hashing: None
) -> None:
    """Both run one scrypt check. Alternating the two and comparing medians keeps machine load from
    biasing one side; the bound is generous (a missing check would be a 100-fold difference)."""
    known_id = create_key(client, "timed").client_id  # hashed at the server's real strength
    # Time stands still and nothing is throttled.
    services.throttle = TokenThrottle(clock=lambda: 0.0, client_free=10**9, address_free=10**9)
    known, unknown = [], []
    for _ in range(6):
        for client_id, times in ((known_id, known), (f"nobody-{uuid.uuid4().hex}", unknown)):
            started = time.perf_counter()
            assert _ask(anonymous, client_id, "wrong secret").status_code == 401
            times.append(time.perf_counter() - started)
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


# --- audit and the unauthenticated mode --------------------------------------------------------------


def test_changes_are_audited_with_who_what_and_when(client: TestClient) -> None:
    credential = create_key(client, "audited")
    rule = grant(client, credential.client_id, "researcher", "project", "7")
    client.delete(f"/api/v1/authorization/access-rules/{rule}")
    client.post(f"/api/v1/access-keys/{credential.client_id}/secret")
    client.delete(f"/api/v1/access-keys/{credential.client_id}")
    types = client.get("/api/v1/workload-types").json()["types"]
    assert client.put(f"/api/v1/workload-types/{types[0]['id']}", json={}).status_code == 200
    entries = _audit(client, actor=ADMIN_CLIENT_ID)
    actions = [(e["action"], e["target"]) for e in entries]
    assert actions == [
        ("access-key.create", credential.client_id),
        ("access-rule.grant", credential.client_id),
        ("access-rule.revoke", credential.client_id),
        ("access-key.rotate", credential.client_id),
        ("access-key.revoke", credential.client_id),
        ("workload-type.update", types[0]["name"]),
    ]
    assert all(e["at"].endswith("Z") and e["address"] for e in entries)
    assert entries[1]["detail"] == "researcher on project 7"
    _no_secrets(json.dumps(entries), credential.secret)


def test_failed_token_requests_are_audited_under_the_client_id_they_named(
    client: TestClient, anonymous: TestClient
) -> None:
    assert_error(_ask(anonymous, "someone", "guess"), 401)
    (entry,) = _audit(client, actor="someone")
    assert (entry["action"], entry["target"], entry["status"]) == (
        "request.refused",
        "POST /api/v1/token",
        401,
    )
    assert "guess" not in json.dumps(entry)


def test_without_authentication_every_request_acts_as_administrator(
    services: Services, database: Database
) -> None:
    services.auth_disabled = True
    load(database, workload("open"))
    with TestClient(create_app(services.settings, services)) as anonymous:
        assert anonymous.get(WORKLOADS).json()["workloads"][0]["name"] == "open"
        assert anonymous.get("/api/v1/access-keys").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])  # noqa: S104
def test_no_auth_refuses_to_listen_beyond_loopback(host: str, tmp_path: Any, capsys: Any) -> None:
    from workplane.cli import main

    assert main(["serve", "--no-auth", "--host", host, "--data-dir", str(tmp_path)]) == 2
    assert "loopback only" in capsys.readouterr().err


def test_the_server_hashes_secrets_at_full_strength() -> None:
    """The suite hashes cheaply in its own process (tests/conftest.py); the server must not."""
    code = "from workplane.auth.credentials import hash_secret; print(hash_secret('x'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"scrypt${2**14}$8$5$"), out
