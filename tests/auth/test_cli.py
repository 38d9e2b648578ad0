"""``workplane access-key`` / ``access-rule`` / ``audit`` / ``signing-key``: the administrator API from the
command line. The commands talk HTTP to the in-process app here, as they would to a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import bearer, printed_credential, token
from tests.factories import CLUSTER
from workplane import access_cli
from workplane.api.deps import Services
from workplane.app import create_app
from workplane.auth.tokens import key_id
from workplane.cli import main
from workplane.services.setup import ADMIN_FILE


@pytest.fixture
def cli(services: Services, admin_secret: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    app = create_app(services.settings, services)

    def connect(_server: str) -> httpx.Client:
        return TestClient(app, raise_server_exceptions=False)

    monkeypatch.setattr(access_cli, "connect", connect)
    credentials = str(services.settings.data_dir / ADMIN_FILE)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--credentials-file", credentials])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_create_list_rotate_and_revoke_a_key(cli: Any, anonymous: TestClient, tmp_path: Path) -> None:
    written = tmp_path / "ci.env"
    code, out, _ = cli(
        "access-key",
        "create",
        "--name",
        "CI pipeline",
        "--kind",
        "service",
        "--id",
        "ci-bot",
        "--write-credentials",
        str(written),
    )
    assert code == 0
    created = printed_credential(out)
    assert created.client_id == "ci-bot"
    assert written.stat().st_mode & 0o777 == 0o600
    assert f"WORKPLANE_CLIENT_SECRET={created.secret}" in written.read_text()
    token(anonymous, created)

    code, out, _ = cli("access-key", "list")
    assert code == 0
    listed = {k["clientId"]: k for k in json.loads(out)}
    assert listed["ci-bot"]["kind"] == "service"
    assert listed["ci-bot"]["name"] == "CI pipeline"
    assert created.secret not in out

    code, out, _ = cli("access-key", "rotate", "ci-bot")
    rotated = printed_credential(out)
    assert code == 0
    assert rotated.secret != created.secret
    token(anonymous, rotated)

    assert cli("access-key", "revoke", "ci-bot")[0] == 0
    refused = anonymous.post(
        "/api/v1/token",
        json={"grantType": "client_credentials", "clientId": "ci-bot", "clientSecret": rotated.secret},
    )
    assert refused.status_code == 401
    code, _, err = cli("access-key", "revoke", "ci-bot")
    assert code == 1
    assert "404: no live access key ci-bot" in err


def test_agent_keys_need_their_cluster(cli: Any) -> None:
    code, _, err = cli("access-key", "create", "--name", "agent", "--kind", "agent")
    assert code == 1
    assert "400" in err
    code, out, _ = cli(
        "access-key", "create", "--name", "agent", "--kind", "agent", "--cluster", str(CLUSTER)
    )
    assert code == 0
    agent = printed_credential(out)
    code, out, _ = cli("access-rule", "list", "--subject", agent.client_id)
    (rule,) = json.loads(out)
    assert (rule["roleName"], rule["scopeType"], rule["scopeId"]) == (
        "cluster-agent",
        "cluster",
        str(CLUSTER),
    )


def test_grant_list_and_revoke_rules(cli: Any, anonymous: TestClient) -> None:
    code, out, _ = cli("access-key", "create", "--name", "researcher")
    researcher = printed_credential(out)
    headers = bearer(token(anonymous, researcher))
    assert anonymous.get("/api/v1/workloads", headers=headers).status_code == 403

    code, out, _ = cli("access-rule", "grant", researcher.client_id, "researcher", "project", "1")
    assert code == 0
    rule = json.loads(out)
    assert (rule["subjectId"], rule["roleName"], rule["scopeType"], rule["scopeId"]) == (
        researcher.client_id,
        "researcher",
        "project",
        "1",
    )
    assert anonymous.get("/api/v1/workloads", headers=headers).status_code == 200

    code, out, _ = cli("access-rule", "list", "--subject", researcher.client_id)
    assert [r["id"] for r in json.loads(out)] == [rule["id"]]

    assert cli("access-rule", "revoke", rule["id"])[0] == 0
    assert anonymous.get("/api/v1/workloads", headers=headers).status_code == 403

    code, _, err = cli("access-rule", "grant", researcher.client_id, "cluster-agent", "project", "1")
    assert code == 1
    assert "can be granted on scope types cluster" in err

    code, out, _ = cli("audit", "--action", "access-rule.grant")
    assert code == 0
    assert [e["target"] for e in json.loads(out)["entries"]] == [researcher.client_id]


def test_commands_need_an_administrator(cli: Any, services: Services, tmp_path: Path) -> None:
    code, out, _ = cli(
        "access-key", "create", "--name", "viewer", "--write-credentials", str(tmp_path / "v.env")
    )
    viewer = printed_credential(out)
    cli("access-rule", "grant", viewer.client_id, "project-viewer", "project", "1")
    code = main(["access-key", "list", "--credentials-file", str(tmp_path / "v.env")])
    assert code == 1


def test_rotating_the_signing_key(services: Services, capsys: Any) -> None:
    before = services.signer.kid
    assert main(["signing-key", "rotate", "--data-dir", str(services.settings.data_dir)]) == 0
    out = capsys.readouterr().out
    current = bytes.fromhex((services.settings.data_dir / "signing.key").read_text().strip())
    assert key_id(current) in out
    assert key_id(current) != before
    assert len(list((services.settings.data_dir / "signing-keys").glob(f"{before}.*.key"))) == 1
