"""Sync batches applied by worker processes (``services.store_workers``), as the server does by
default on a multi-core machine; the other protocol tests apply them in the server process."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.test_sync import CLUSTER_A, CLUSTER_B, obs, sync
from tests.conftest import admin_client
from tests.server import descendants, running_server, still_running
from tests.store_tasks import collector_state, page_cache_kib, worker_pid
from workplane.api.deps import Services
from workplane.app import build_services
from workplane.services.store_workers import GC_YOUNG_THRESHOLD, StoreWorkers
from workplane.settings import Settings
from workplane.store.catalog import CatalogCache


@pytest.fixture
def pooled(settings: Settings, services: Services) -> Iterator[tuple[TestClient, Services]]:
    """An in-process server whose sync batches go to two worker processes."""
    with_workers = settings.model_copy(update={"sync_processes": 2})
    svc = build_services(with_workers, services.db)
    with admin_client(with_workers, svc) as client:
        yield client, svc


def test_batches_are_applied_by_worker_processes(pooled: tuple[TestClient, Services]) -> None:
    client, svc = pooled
    portal = client.portal
    assert portal is not None
    pids = {portal.call(svc.workers.run, worker_pid) for _ in range(8)}
    assert pids
    assert os.getpid() not in pids
    assert sync(client, {"workloads": [obs(n, 1, "Pending") for n in range(30)]}) == {
        "applied": 30,
        "ignored": 0,
        "deleted": 0,
        "samples": 0,
    }
    assert sync(client, {"workloads": [obs(n, 1, "Running") for n in range(30)]})["ignored"] == 30
    assert sync(client, {"workloads": [obs(n, 2, "Running") for n in range(30)]})["applied"] == 30
    counts = client.get("/api/v1/workloads/count", params={"filterBy": "phase==Running"}).json()
    assert counts == {"count": 30}


def test_workers_collect_garbage_for_batches(pooled: tuple[TestClient, Services]) -> None:
    """Worker processes leave what they imported out of garbage collections and collect the young
    generation rarely; the server process keeps Python's defaults."""
    client, svc = pooled
    portal = client.portal
    assert portal is not None
    for _ in range(4):
        threshold, frozen = portal.call(svc.workers.run, collector_state)
        assert threshold == GC_YOUNG_THRESHOLD
        assert frozen > 10_000  # the application's modules, schema and validators
    assert gc.get_threshold()[0] != GC_YOUNG_THRESHOLD


def test_sqlite_workers_write_with_a_larger_page_cache(settings: Settings, services: Services) -> None:
    """A sync worker's connections get ``sqlite_writer_cache_mib`` of page cache; the server's own keep
    16 MiB (their memory counts towards the server's resident set under read load)."""
    if not settings.is_sqlite:
        pytest.skip("a SQLite setting")
    tuned = settings.model_copy(update={"sync_processes": 1, "sqlite_writer_cache_mib": 48})
    svc = build_services(tuned, services.db)
    with admin_client(tuned, svc) as client:
        portal = client.portal
        assert portal is not None
        assert portal.call(svc.workers.run, page_cache_kib) == 48 * 1024
    assert page_cache_kib(services.db, CatalogCache()) == 16 * 1024


def test_a_bad_batch_is_refused_whole_by_a_worker(pooled: tuple[TestClient, Services]) -> None:
    client, _ = pooled
    body = {"workloads": [obs(1, 1), obs(2, 1, projectId=""), obs(3, 1)]}
    answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json=body)
    assert answer.status_code == 400, answer.text
    assert "workloads[1]" in answer.json()["message"]
    answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", content=b"{not json")
    assert answer.status_code == 400
    assert answer.json()["message"] == "invalid batch: body: not valid JSON"
    assert client.get("/api/v1/workloads/count").json() == {"count": 0}


def test_concurrent_agents_through_workers(pooled: tuple[TestClient, Services]) -> None:
    """Two clusters' agents at once, each batch partly repeating the previous one: every workload
    once, at its newest revision, whichever worker wrote which batch."""
    client, _ = pooled
    errors: list[str] = []

    def agent(cluster: str) -> None:
        for batch in range(6):
            items = [obs(n, batch + 1, cluster=cluster) for n in range(batch * 20, batch * 20 + 30)]
            answer = client.post(f"/api/v1/clusters/{cluster}/sync", json={"workloads": items})
            if answer.status_code != 200:
                errors.append(answer.text)

    threads = [threading.Thread(target=agent, args=(c,)) for c in (CLUSTER_A, CLUSTER_B)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for cluster in (CLUSTER_A, CLUSTER_B):
        count = client.get("/api/v1/workloads/count", params={"filterBy": f"clusterId=={cluster}"}).json()
        assert count == {"count": 130}


def test_a_killed_worker_is_replaced(pooled: tuple[TestClient, Services]) -> None:
    """A worker that dies (killed, out of memory) costs at most a 503 for the batch it held; the
    next batches are applied by new workers."""
    client, svc = pooled
    portal = client.portal
    assert portal is not None
    victim = portal.call(svc.workers.run, worker_pid)
    os.kill(victim, signal.SIGKILL)
    answers = []
    for attempt in range(5):
        answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [obs(1, attempt + 1)]})
        answers.append(answer.status_code)
        if answer.status_code == 200:
            break
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
    assert answers[-1] == 200, answers
    assert victim not in {portal.call(svc.workers.run, worker_pid) for _ in range(4)}


def test_workers_leave_with_a_killed_server(tmp_path: Path) -> None:
    """SIGKILL gives the server no chance to stop its workers: they notice and leave by themselves."""
    with running_server(tmp_path / "data", env={"WORKPLANE_SYNC_PROCESSES": "2"}) as server:
        with server.client() as client:
            answer = client.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [obs(1, 1)]})
            assert answer.status_code == 200, answer.text
        workers = descendants(server.process.pid)
        assert len(workers) >= 2
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(still_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if still_running(pid)]


def test_workers_start_with_the_first_task_and_stop_when_idle(settings: Settings, services: Services) -> None:
    """A server that only answers reads has no worker processes; they start with the first batch,
    stop after ``idle_s`` without one, and start again with the next."""
    workers = StoreWorkers(settings, services.db, services.catalog, 2, idle_s=0.3)

    async def scenario() -> None:
        assert not workers.started
        first = {await workers.run(worker_pid) for _ in range(6)}
        assert workers.started
        assert os.getpid() not in first
        assert not workers.retire()  # just used
        await asyncio.sleep(0.4)
        assert workers.retire()
        assert not workers.started
        deadline = time.monotonic() + 10
        while any(still_running(pid) for pid in first) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not [pid for pid in first if still_running(pid)]
        again = await workers.run(worker_pid)
        assert again not in first
        workers.stop()
        assert await workers.run(worker_pid) == os.getpid()  # after stop: the server's own threads

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("cpus", "server_processes", "expected"),
    [(1, 1, 0), (2, 1, 2), (2, 2, 1), (2, 3, 0), (8, 2, 4), (64, 1, 4)],
)
def test_the_default_shares_the_cpus_among_server_processes(
    monkeypatch: pytest.MonkeyPatch, cpus: int, server_processes: int, expected: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert Settings(workers=server_processes).sync_process_count == expected
    assert Settings(workers=server_processes, sync_processes=3).sync_process_count == 3
