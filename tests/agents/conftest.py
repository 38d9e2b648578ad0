"""Fixtures of the replay tests: the loaded traces, an in-process transport, API helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.server import await_health, free_port, http_client
from workplane.agents.traces import Trace, load_dlrm, load_itp, load_openb
from workplane.app import build_services, create_app
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.services.setup import prepare_store
from workplane.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def itp() -> Trace:
    return load_itp()


@pytest.fixture(scope="session")
def openb() -> Trace:
    return load_openb()


@pytest.fixture(scope="session")
def dlrm() -> Trace:
    return load_dlrm()


class InProcess:
    """A replay transport over the in-process test client."""

    outages = 0

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.batches: list[dict[str, Any]] = []

    def sync(self, cluster_id: str, body: bytes) -> dict[str, Any]:
        answer = self.client.post(
            f"/api/v1/clusters/{cluster_id}/sync", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def count(client: TestClient | httpx.Client, filter_by: str = "", *, deleted: bool = False) -> int:
    params: dict[str, str] = {"deleted": str(deleted).lower()}
    if filter_by:
        params["filterBy"] = filter_by
    answer = client.get("/api/v1/workloads/count", params=params)
    assert answer.status_code == 200, answer.text
    value: int = answer.json()["count"]
    return value


def list_all(
    client: TestClient | httpx.Client, filter_by: str = "", *, deleted: bool = False
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        params: dict[str, str | int] = {"deleted": str(deleted).lower(), "limit": 500, "offset": offset}
        if filter_by:
            params["filterBy"] = filter_by
        answer = client.get("/api/v1/workloads", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        out.extend(page["workloads"])
        if not page.get("next"):
            return out
        offset = page["next"]


def one(client: TestClient | httpx.Client, name: str) -> dict[str, Any]:
    found = list_all(client, f"name=={name}") + list_all(client, f"name=={name}", deleted=True)
    assert len(found) == 1, f"{name}: {len(found)} workloads"
    answer = client.get(f"/api/v1/workloads/{found[0]['id']}")
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()
    return record


@contextmanager
def fresh_app(data_dir: Path) -> Iterator[TestClient]:
    """An in-process server on its own new SQLite store, holding an administrator token."""
    settings = Settings(data_dir=data_dir, retention_interval_s=0)
    services = build_services(settings)
    secret = prepare_store(services.db, settings, announce=False)
    assert secret is not None
    with TestClient(create_app(settings, services), raise_server_exceptions=False) as client:
        token = client.post(
            "/api/v1/token",
            json={"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": secret},
        ).json()["accessToken"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client
    services.db.dispose()


class ServerProcess:
    """``python -m workplane.cli serve`` in a child process."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.extra = extra
        self.url = f"http://127.0.0.1:{port}"
        self.log = data_dir.parent / f"server-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        env = {**os.environ, "WORKPLANE_RETENTION_INTERVAL_S": "0"}
        env.pop("WORKPLANE_DATABASE_URL", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workplane.cli",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    *self.extra,
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        outcome = await_health(self.process, self.url, timeout_s, interval_s=0.05)
        assert outcome != "exited", self.output()
        if outcome == "timeout":
            raise AssertionError(f"the server did not answer: {self.output()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what is committed is all that survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def credentials(self) -> tuple[str, str]:
        values = dict(
            line.split("=", 1)
            for line in (self.data_dir / "admin-credentials.env").read_text().splitlines()
            if "=" in line
        )
        return values["WORKPLANE_CLIENT_ID"], values["WORKPLANE_CLIENT_SECRET"]

    def client(self) -> httpx.Client:
        client_id, secret = self.credentials()
        token = httpx.post(
            f"{self.url}/api/v1/token",
            json={"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret},
        ).json()["accessToken"]
        return http_client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def make(*extra: str, data_dir: Path | None = None, port: int | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / f"data{len(servers)}", port or free_port(), *extra)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
