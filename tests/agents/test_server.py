"""Against real server processes: an agent outliving a killed server, the replay command, the demo."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents import expected
from tests.agents.conftest import ROOT, InProcess, count, fresh_app, list_all
from workplane.agents.client import SyncClient
from workplane.agents.replay import LiveReplay, snapshot
from workplane.agents.traces import Inventory, Trace

pytestmark = pytest.mark.server


def inventory_of(client: Any) -> dict[bool, set[tuple[str, str]]]:
    """(id, phase) of every workload, live (False) and deleted (True)."""
    return {
        deleted: {(r["id"], r["phase"]) for r in list_all(client, deleted=deleted)}
        for deleted in (False, True)
    }


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_agent_resumes_after_the_server_is_killed(
    server_factory: Any, tmp_path: Path, openb: Trace, dlrm: Trace
) -> None:
    server = server_factory()
    server.start()
    client_id, secret = server.credentials()
    transport = SyncClient(server.url, client_id, secret, retries=100, backoff_s=0.1, max_backoff_s=0.5)
    inventory = Inventory([openb, dlrm])
    lines: list[str] = []
    replay = LiveReplay(
        inventory,
        transport,
        starts={"openb": 11_820_500_000, "dlrm": 1_300_017_000},
        speed=1800,  # half a trace hour per second
        span_ms=4 * 3_600_000,  # eight seconds
        tick_s=0.25,
        log=lines.append,
    )
    thread = threading.Thread(target=replay.run)
    thread.start()
    try:
        wait_for(lambda: replay.changes_sent > 0, 60, "the first changes")
        server.kill()  # mid-replay
        time.sleep(0.5)
        server.start()  # same data directory, same port
        thread.join(120)
    finally:
        replay.stop.set()
        thread.join(10)
    assert replay.finished, lines
    assert transport.outages > 0
    assert replay.resyncs >= 2, lines  # the first, and the one after the server came back
    assert any("went away" in line or "unavailable" in line for line in lines), lines

    # The same inventory as an uninterrupted snapshot at the same trace instants.
    with server.client() as api, fresh_app(tmp_path / "reference") as reference:
        for trace in inventory.traces:
            at = replay.until[trace.cluster.key]
            snapshot(Inventory([trace]), InProcess(reference), at, log=lambda _: None)
        resumed, uninterrupted = inventory_of(api), inventory_of(reference)
        assert resumed == uninterrupted
        assert len(resumed[False]) > 100
        assert len(resumed[True]) > 1000
        for deleted in (False, True):
            phases = Counter(phase for _, phase in resumed[deleted])
            for phase, n in phases.items():
                assert count(api, f"phase=={phase}", deleted=deleted) == n


def test_replay_command(server_factory: Any) -> None:
    server = server_factory()
    server.start()
    credentials = server.data_dir / "admin-credentials.env"
    command = [sys.executable, "-m", "workplane.cli", "replay", "--server", server.url]
    done = subprocess.run(
        [*command, "--credentials-file", str(credentials), "--traces", "dlrm", "--snapshot-at", "15d"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "workloads/s" in done.stdout
    assert "alibaba-dlrm" in done.stdout
    instances = expected.dlrm_instances()
    services = expected.dlrm_services_at(instances, 15 * 86_400)
    with server.client() as api:
        assert count(api, "type==Inference") == sum(1 for s in services.values() if not s.deleted)
        # Each instance is a pod of its service: those that exist, running in their role's node pool.
        _check_instance_pods(api, instances, 15 * 86_400)
        busiest = max(services, key=lambda app: services[app].running)
        (service,) = list_all(api, f"name=={busiest.replace('_', '-')}")
        own: list[dict[str, Any]] = []
        while len(own) < 10_000:  # bounded: the busiest service has about 1,200 pods then
            window = {"offset": len(own), "limit": 500}
            page = api.get(f"/api/v1/workloads/{service['id']}/pods", params=window)
            own += page.json()["pods"]
            if "next" not in page.json():
                break
        live, _ = expected.dlrm_pods_at([i for i in instances if i.app == busiest], 15 * 86_400)
        assert sorted(p["name"] for p in own) == sorted(f"{i.app}-{i.sn}".replace("_", "-") for i in live)

    client_id, secret = server.credentials()
    live = subprocess.run(
        [
            *command,
            *("--client-id", client_id, "--client-secret", secret, "--traces", "dlrm"),
            *("--live", "--start", "15d", "--speed", "3600", "--duration", "2", "--tick", "0.25"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert live.returncode == 0, live.stderr
    assert "finished at dlrm 15d 02:00:00" in live.stdout, live.stdout
    later = expected.dlrm_services_at(expected.dlrm_instances(), 15 * 86_400 + 7200)
    with server.client() as api:
        running = sum(r["runningPods"] for r in list_all(api, "type==Inference"))
    assert running == sum(s.running for s in later.values())
    with server.client() as api:
        _check_instance_pods(api, instances, 15 * 86_400 + 7200)
        # The instances that went during the two hours were reported deleted.
        gone = sum(1 for i in instances if 15 * 86_400 < i.deleted <= 15 * 86_400 + 7200)
        assert gone > 0
        deleted = api.get("/api/v1/workloads/pods/count", params={"deleted": "true"}).json()["count"]
        assert deleted == gone

    wrong = subprocess.run(
        [*command, "--client-id", client_id, "--client-secret", "wrong", "--traces", "dlrm"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 1
    assert "401" in wrong.stderr


def test_serve_demo(server_factory: Any) -> None:
    server = server_factory("--demo")
    server.start()
    wait_for(lambda: "workplane demo:" in server.output(), 90, "the demo banner")
    banner = server.output()
    assert server.url in banner
    assert "workplane-admin" in banner
    assert str(server.data_dir / "admin-credentials.env") in banner
    assert "curl" in banner
    wait_for(lambda: "alibaba-dlrm at" in server.output(), 120, "the demo's first resync")
    with server.client() as api:
        assert count(api, "clusterId!=x") > 10_000

        def snapshot_of_phases() -> tuple[int, ...]:
            phases = ("Pending", "Running", "Completed", "Stopped")
            return (*(count(api, f"phase=={p}") for p in phases), count(api, "phase==Running", deleted=True))

        first = snapshot_of_phases()
        wait_for(lambda: snapshot_of_phases() != first, 30, "the demo to change something")
    try:
        httpx.get(f"{server.url}/api/v1/health", timeout=5).raise_for_status()
    finally:
        server.stop()
    assert (server.data_dir / "demo-replay.json").is_file()


def _check_instance_pods(api: httpx.Client, instances: list[expected.Instance], t: float) -> None:
    """The API's pods are the DLRM instances that exist at trace second ``t``; the running ones are in
    their role's node pool (the pending ones in none)."""
    live, running = expected.dlrm_pods_at(instances, t)
    assert api.get("/api/v1/workloads/pods/count").json()["count"] == len(live)
    for role in ("CN", "HN"):
        pool = api.get(
            "/api/v1/workloads/pods/count", params={"filterBy": f"currentNodepool=={role.lower()}"}
        )
        assert pool.json()["count"] == sum(1 for i in running if i.role == role), role
