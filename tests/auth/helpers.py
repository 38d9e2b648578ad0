"""Creating scoped callers through the administrator API, as an operator would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

TOKEN = "/api/v1/token"


@dataclass(frozen=True)
class Credential:
    client_id: str
    secret: str


def create_key(admin: TestClient, name: str, kind: str = "user", **extra: Any) -> Credential:
    answer = admin.post("/api/v1/access-keys", json={"name": name, "kind": kind, **extra})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Credential(body["clientId"], body["clientSecret"])


def grant(admin: TestClient, subject: str, role: str, scope_type: str, scope_id: str | None = None) -> str:
    body = {"subjectId": subject, "roleName": role, "scopeType": scope_type}
    if scope_id is not None:
        body["scopeId"] = scope_id
    answer = admin.post("/api/v1/authorization/access-rules", json=body)
    assert answer.status_code == 201, answer.text
    rule_id: str = answer.json()["id"]
    return rule_id


def token(client: TestClient, credential: Credential) -> str:
    answer = client.post(
        TOKEN,
        json={
            "grantType": "client_credentials",
            "clientId": credential.client_id,
            "clientSecret": credential.secret,
        },
        headers={"Authorization": ""},
    )
    assert answer.status_code == 200, answer.text
    issued: str = answer.json()["accessToken"]
    return issued


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def printed_credential(out: str) -> Credential:
    """The credential ``workplane access-key create|rotate`` printed (its ``client id:``/``client secret:``
    lines)."""
    fields = dict(
        line.strip().split(":", 1) for line in out.splitlines() if line.strip().startswith("client ")
    )
    return Credential(fields["client id"].strip(), fields["client secret"].strip())
