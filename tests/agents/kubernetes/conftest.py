"""Fixtures of the Kubernetes agent's tests: the test API server, a workplane server, the agent.

The agent runs as ``workplane agent kubernetes`` in a process of its own, unmodified, with a kubeconfig
that points at the test API server (``apiserver.FakeCluster``, which speaks the Kubernetes protocol:
no real API server can be run where these tests run), and reports to a real ``workplane serve``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.agents.kubernetes.apiserver import BUILTIN, FakeCluster, Kind
from tests.conftest import BACKENDS, POSTGRES_URL, _drop_postgres, _fresh_postgres
from tests.server import Server, running_server
from workplane.agents.kubernetes.command import cluster_id_for

# The CRDs installed in the test cluster: Kubeflow's PyTorchJob, Run:ai's TrainingWorkload and the
# RunaiJob under it, Knative Serving's Service, Configuration and Revision, and KAI's queues. Every
# other CRD the agent knows of is absent.
CRDS = (
    Kind("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs"),
    Kind("serving.knative.dev", "v1", "Service", "services"),
    Kind("serving.knative.dev", "v1", "Configuration", "configurations"),
    Kind("serving.knative.dev", "v1", "Revision", "revisions"),
    Kind("run.ai", "v2alpha1", "TrainingWorkload", "trainingworkloads"),
    Kind("run.ai", "v1", "RunaiJob", "runaijobs"),
    Kind("scheduling.run.ai", "v2", "Queue", "queues", namespaced=False),
)
WAIT_S = 30.0
T = TypeVar("T")


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A ``workplane serve`` process on a store of its own: SQLite, or a fresh PostgreSQL database."""
    database_url = name = None
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("WORKPLANE_TEST_POSTGRES_URL is not set")
        database_url, name = _fresh_postgres(POSTGRES_URL)
    try:
        with running_server(tmp_path_factory.mktemp("workplane"), database_url) as started:
            yield started
    finally:
        if name is not None and POSTGRES_URL:
            _drop_postgres(POSTGRES_URL, name)


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster((*BUILTIN, *CRDS))
    fake.start()
    yield fake
    fake.stop()


@dataclass
class Agent:
    """How to start ``workplane agent kubernetes`` for one cluster, and read what it printed."""

    server: Server
    cluster: FakeCluster
    name: str
    workdir: Path
    client_id: str
    client_secret: str

    @property
    def cluster_id(self) -> str:
        return cluster_id_for(self.name)

    @property
    def log(self) -> str:
        path = self.workdir / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextmanager
    def running(self, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
        kubeconfig = self.workdir / "kubeconfig"
        kubeconfig.write_text(self.cluster.kubeconfig())
        command = [
            sys.executable, "-m", "workplane.cli", "agent", "kubernetes",
            "--server", self.server.base_url,
            "--client-id", self.client_id,
            # Joined: a secret may begin with "-", which argparse would take for a flag.
            f"--client-secret={self.client_secret}",
            "--cluster-name", self.name,
            "--kubeconfig", str(kubeconfig),
            "--interval", "0.2",
            "--watch-timeout", "5",
            *extra,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPLANE_")}
        with (self.workdir / "agent.log").open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def agent(server: Server, cluster: FakeCluster, tmp_path: Path, request: pytest.FixtureRequest) -> Agent:
    """An agent for this test's cluster, signing in with an agent key bound to that cluster."""
    name = f"k8s-{request.node.name.replace('_', '-')[:40]}"
    with server.client() as admin:
        answer = admin.post(
            "/api/v1/access-keys", json={"name": name, "kind": "agent", "clusterId": cluster_id_for(name)}
        )
        assert answer.status_code == 201, answer.text
        key = answer.json()
    return Agent(server, cluster, name, tmp_path, key["clientId"], key["clientSecret"])


def workloads(server: Server, cluster_id: str, *, deleted: bool = False) -> dict[str, dict[str, Any]]:
    """The API's workloads of one cluster, by name."""
    params: dict[str, Any] = {"filterBy": f"clusterId=={cluster_id}", "limit": 500}
    if deleted:
        params["deleted"] = "true"
    with server.client() as client:
        answer = client.get("/api/v1/workloads", params=params)
    assert answer.status_code == 200, answer.text
    return {w["name"]: w for w in answer.json()["workloads"]}


def wait_for(what: str, probe: Callable[[], T | None], agent: Agent | None = None) -> T:
    """``probe()`` once it is truthy (polled for at most WAIT_S seconds)."""
    deadline = time.monotonic() + WAIT_S
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (AssertionError, KeyError, httpx.TransportError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    tail = agent.log[-3000:] if agent is not None else ""
    raise AssertionError(f"timed out waiting for {what}; agent output:\n{tail}")
