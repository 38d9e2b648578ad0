"""``workplane access-key`` / ``access-rule`` / ``audit`` as a user runs them: a ``workplane`` process
talking HTTP to a real ``workplane serve`` process (tests/auth/test_cli.py drives the same commands
in process). Their output is the answer alone, and a server that is not there is one line naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.auth.helpers import printed_credential
from tests.server import Server, free_port
from workplane.services.setup import ADMIN_FILE

pytestmark = [pytest.mark.server, pytest.mark.shared_server]

COMMAND_TIMEOUT_S = 60


def workplane(*argv: str) -> subprocess.CompletedProcess[str]:
    """``workplane ARGV`` in a process of its own, without the test run's WORKPLANE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPLANE_")}
    return subprocess.run(
        [sys.executable, "-m", "workplane.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def against(server: Server, *argv: str) -> subprocess.CompletedProcess[str]:
    done = workplane(
        *argv, "--server", server.base_url, "--credentials-file", str(server.data_dir / ADMIN_FILE)
    )
    # Nothing but the answer: no log lines of the HTTP client, no traceback.
    assert "HTTP Request" not in done.stdout + done.stderr, done
    assert "Traceback" not in done.stderr, done.stderr
    return done


def ok(server: Server, *argv: str) -> str:
    done = against(server, *argv)
    assert done.returncode == 0, done
    assert done.stderr == "", done.stderr
    return done.stdout


def _token_status(server: Server, client_id: str, secret: str) -> int:
    answer = httpx.post(
        server.url("/api/v1/token"),
        json={"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret},
        timeout=30,
    )
    return answer.status_code


def test_every_command_works_against_a_running_server(server: Server, tmp_path: Path) -> None:
    written = tmp_path / "ci.env"
    create = ["access-key", "create", "--name", "CI pipeline", "--kind", "service", "--id", "ci-bot"]
    created = printed_credential(ok(server, *create, "--write-credentials", str(written)))
    client_id, secret = created.client_id, created.secret
    assert client_id == "ci-bot"
    assert written.stat().st_mode & 0o777 == 0o600
    assert _token_status(server, client_id, secret) == 200

    listed = {k["clientId"]: k for k in json.loads(ok(server, "access-key", "list"))}
    assert listed["ci-bot"]["name"] == "CI pipeline"
    assert secret not in json.dumps(listed)

    rotated = printed_credential(ok(server, "access-key", "rotate", "ci-bot")).secret
    assert rotated != secret
    assert _token_status(server, client_id, secret) == 401
    assert _token_status(server, client_id, rotated) == 200

    rule = json.loads(ok(server, "access-rule", "grant", "ci-bot", "project-viewer", "project", "7"))
    assert (rule["subjectId"], rule["roleName"], rule["scopeId"]) == ("ci-bot", "project-viewer", "7")
    rules = json.loads(ok(server, "access-rule", "list", "--subject", "ci-bot"))
    assert [r["id"] for r in rules] == [rule["id"]]
    assert ok(server, "access-rule", "revoke", rule["id"]).strip() == f"revoked rule {rule['id']}"
    assert json.loads(ok(server, "access-rule", "list", "--subject", "ci-bot")) == []

    assert ok(server, "access-key", "revoke", "ci-bot").strip() == "revoked ci-bot"
    assert _token_status(server, client_id, rotated) == 401

    audit = json.loads(ok(server, "audit", "--action", "access-key.create"))
    assert [e["target"] for e in audit["entries"]] == ["ci-bot"]


def test_the_servers_refusal_is_one_line(server: Server) -> None:
    done = against(server, "access-key", "revoke", "no-such-key")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "workplane access-key: 404: no live access key no-such-key\n"


def test_a_wrong_secret_is_the_servers_message(server: Server) -> None:
    done = workplane(
        "audit", "--server", server.base_url, "--client-id", server.client_id, "--client-secret", "wrong"
    )
    assert done.returncode == 1
    assert done.stderr.startswith("workplane audit: 401: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("command", [["access-key", "list"], ["access-rule", "list"], ["audit"]])
def test_no_server_is_one_line_naming_the_url(command: list[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    credentials = tmp_path / "admin.env"
    credentials.write_text("WORKPLANE_CLIENT_ID=admin\nWORKPLANE_CLIENT_SECRET=secret\n")
    done = workplane(*command, "--server", url, "--credentials-file", str(credentials))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"workplane {command[0]}: cannot reach the server at {url}: "), done.stderr
    assert "connection refused" in done.stderr
