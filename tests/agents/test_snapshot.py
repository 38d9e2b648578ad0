"""Snapshots through the real sync endpoint, checked against figures computed from the raw CSV files."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.agents import expected
from tests.agents.conftest import InProcess, count, list_all, one
from workplane.agents.replay import snapshot
from workplane.agents.traces import Inventory, Trace
from workplane.api.deps import Services
from workplane.domain.timefmt import now_ms, parse_to_ms

PHASES = ("Pending", "Running", "Completed", "Failed", "Stopped")


def gpu_request(record: dict[str, Any]) -> float:
    return float(record["workloadRequestedResources"]["gpu"]["request"])


def check_phase_counts(client: TestClient, cluster_id: str, live: Counter[str], gone: Counter[str]) -> None:
    for phase in PHASES:
        terms = f"clusterId=={cluster_id},phase=={phase}"
        assert count(client, terms) == live[phase], phase
        assert count(client, terms, deleted=True) == gone[phase], f"deleted {phase}"


def test_openb_snapshot(client: TestClient, openb: Trace) -> None:
    at = 11_820_500  # seconds: openb's busiest hour, with pods waiting
    wall = now_ms()
    snapshot(Inventory([openb]), InProcess(client), at * 1000, wall_ms=wall, log=lambda _: None)
    pods = {p.name: p for p in expected.openb_pods()}
    states = {name: s for name, p in pods.items() if (s := p.state_at(at)) is not None}
    live, gone = expected.counts(iter(states.values()))
    assert live["Running"] > 30
    assert live["Pending"] > 0
    assert gone["Failed"] > 100
    check_phase_counts(client, openb.cluster.id, live, gone)
    assert count(client, "type==Pod") == sum(live.values())

    # QoS → project.
    for qos, project in expected.QOS_PROJECT.items():
        want = sum(1 for n, (_, deleted) in states.items() if not deleted and pods[n].qos == qos)
        assert count(client, f"projectName=={project}") == want, project

    # GPU: requested by every live pod, allocated to the running ones (fractions for shared GPUs).
    records = list_all(client)
    by_name = {r["name"]: r for r in records}
    assert sum(gpu_request(r) for r in records) == pytest.approx(sum(pods[n].gpu_request for n in by_name))
    running = [n for n, (phase, deleted) in states.items() if phase == "Running" and not deleted]
    allocated = sum(float(by_name[n]["allocatedResources"]["gpu"]) for n in running)
    assert allocated == pytest.approx(sum(pods[n].gpu_allocated_when_running for n in running))
    assert any(0 < pods[n].gpu_allocated_when_running < 1 for n in running)  # shared GPUs are there
    assert sum(float(r["allocatedResources"]["gpu"]) for r in records) == pytest.approx(allocated)
    sample = by_name[running[0]]
    assert sample["workloadRequestedResources"]["cpu"]["request"] == pods[running[0]].cpu_milli / 1000
    assert sample["runningPods"] == 1

    # Times: closed intervals exactly as in the trace; open ones up to "now".
    elapsed = (now_ms() - wall) // 1000 + 2
    waited = sorted(
        (
            p
            for p in pods.values()
            if p.scheduled is not None and p.scheduled <= at and p.created < p.scheduled
        ),
        key=lambda p: (p.created - p.scheduled, p.name),
    )[:4]
    for pod in waited:
        record = one(client, pod.name)
        assert pod.scheduled is not None
        assert record["totalPendingTimeSeconds"] == pod.scheduled - pod.created, pod.name
        assert parse_to_ms(record["createdAt"]) == wall + (pod.created - at) * 1000
    for name in running[:3]:
        pod = pods[name]
        assert pod.scheduled is not None
        record = one(client, name)
        assert 0 <= record["totalRunningTimeSeconds"] - (at - pod.scheduled) <= elapsed
        assert record["totalPendingTimeSeconds"] == pod.scheduled - pod.created
    pending = [n for n, (phase, deleted) in states.items() if phase == "Pending" and not deleted][:3]
    for name in pending:
        record = one(client, name)
        assert 0 <= record["totalPendingTimeSeconds"] - (at - pods[name].created) <= elapsed
    failed = next(n for n, (phase, deleted) in states.items() if phase == "Failed" and deleted)
    record = one(client, failed)
    pod = pods[failed]
    assert pod.scheduled is not None
    assert record["deletedAt"] == record["completedAt"] == record["phaseUpdatedAt"]
    assert parse_to_ms(record["deletedAt"]) == wall + (pod.deleted - at) * 1000
    assert record["totalRunningTimeSeconds"] == pod.deleted - pod.scheduled
    assert record["allocatedResources"]["gpu"] == 0
    check_openb_pods(client, states, failed, record)


def _pod_count(client: TestClient, **params: Any) -> int:
    answer = client.get("/api/v1/workloads/pods/count", params=params)
    assert answer.status_code == 200, answer.text
    found: int = answer.json()["count"]
    return found


def check_openb_pods(
    client: TestClient, states: dict[str, tuple[str, bool]], failed: str, failed_workload: dict[str, Any]
) -> None:
    """Each openb workload reports its pod: the same pods live and deleted, their phases as
    Kubernetes says them, and a deleted failed pod completed when it went away."""
    assert _pod_count(client) == sum(1 for _, deleted in states.values() if not deleted)
    assert _pod_count(client, deleted="true") == sum(1 for _, deleted in states.values() if deleted)
    running = sum(1 for phase, deleted in states.values() if phase == "Running" and not deleted)
    assert _pod_count(client, search="running") == running
    pods = client.get(f"/api/v1/workloads/{failed_workload['id']}/pods", params={"deleted": "true"}).json()
    (pod,) = pods["pods"]
    assert (pod["name"], pod["k8sPhase"], pod["currentNodePool"]) == (failed, "Failed", "default")
    assert pod["completedAt"] == pod["deletedAt"] == failed_workload["deletedAt"]
    assert pod["requestedResources"] == failed_workload["workloadRequestedResources"]


def test_dlrm_snapshot(client: TestClient, dlrm: Trace) -> None:
    at = 1_300_017  # seconds, inside app_123's gap (no instance between day 4.6 and day 20.5)
    instances = expected.dlrm_instances()
    assert all(at not in (i.created, i.scheduled, i.deleted) for i in instances)
    progress = snapshot(Inventory([dlrm]), InProcess(client), at * 1000, log=lambda _: None)
    assert progress.applied == progress.items
    services = expected.dlrm_services_at(instances, at)
    live = {app: s for app, s in services.items() if not s.deleted}
    assert count(client, "type==Inference") == len(live) > 100
    assert count(client, "type==Inference", deleted=True) == len(services) - len(live)

    records = {r["name"]: r for r in list_all(client)}
    assert set(records) == {app.replace("_", "-") for app in live}
    for app, service in live.items():
        record = records[app.replace("_", "-")]
        assert record["phase"] == service.phase(), app
        assert record["runningPods"] == service.running, app
        assert record["requestedPods"]["number"] == service.running + service.pending, app
        assert record["allocatedResources"]["gpu"] == service.gpu, app
    assert records["app-123"]["phase"] == "Stopped"
    assert records["app-123"]["runningPods"] == 0
    assert sum(r["runningPods"] for r in records.values()) == sum(s.running for s in live.values())
    assert sum(r["allocatedResources"]["gpu"] for r in records.values()) == sum(s.gpu for s in live.values())
    roles = {i.role.lower() for i in instances if i.app == "app_0" and i.scheduled <= at < i.deleted}
    assert records["app-0"]["currentNodePools"] == sorted(roles)
    biggest = max(live, key=lambda app: live[app].running)
    assert records[biggest.replace("_", "-")]["runningPods"] > 500

    # The same snapshot again changes nothing (the revisions are the trace times).
    again = snapshot(Inventory([dlrm]), InProcess(client), at * 1000, log=lambda _: None)
    assert (again.applied, again.deleted, again.ignored) == (0, 0, again.items)
    assert count(client, "type==Inference") == len(live)


def test_itp_snapshot(client: TestClient, itp: Trace) -> None:
    at = 5 * 86_400
    snapshot(Inventory([itp]), InProcess(client), at * 1000, log=lambda _: None)
    jobs = [j for j in expected.itp_jobs() if j.submitted <= at]
    phases = Counter(j.phase_at(at) for j in jobs)
    assert phases["Running"] > 100
    assert phases["Completed"] > 1000
    check_phase_counts(client, itp.cluster.id, Counter({p: n for p, n in phases.items() if p}), Counter())
    assert count(client, "type==Training") == len(jobs)
    per_project = Counter(f"itp-cluster{j.cluster}" for j in jobs)
    for project, n in per_project.items():
        assert count(client, f"projectName=={project}") == n
    running = [j for j in jobs if j.phase_at(at) == "Running"]
    records = list_all(client, "phase==Running")
    assert sum(r["allocatedResources"]["gpu"] for r in records) == sum(j.gpus for j in running)
    assert sum(gpu_request(r) for r in records) == sum(j.gpus for j in running)
    assert count(client, "allocatedGPU>=8") == sum(1 for j in running if j.gpus >= 8)
    for job in sorted(jobs, key=lambda j: j.job_id)[:3]:
        record = one(client, job.name)
        assert record["totalPendingTimeSeconds"] == 0  # no queueing in ITP
        assert record.get("submittedBy") is None  # the trace has no user
        if job.phase_at(at) == "Completed":
            assert record["totalRunningTimeSeconds"] == job.duration
            assert record["completedAt"] is not None
            assert record["allocatedResources"]["gpu"] == 0


@pytest.mark.no_cover
def test_all_traces_fully(
    client: TestClient, services: Services, itp: Trace, openb: Trace, dlrm: Trace
) -> None:
    """All three traces, to their end, as one snapshot (SQLite only: the same code path runs on
    PostgreSQL in the tests above, and this one takes a while)."""
    if services.db.dialect != "sqlite":
        pytest.skip("the full replay runs on SQLite; the smaller snapshots cover PostgreSQL")
    inventory = Inventory([itp, openb, dlrm])
    started = time.monotonic()
    progress = snapshot(inventory, InProcess(client), inventory.end_ms, log=lambda _: None)
    elapsed = time.monotonic() - started
    print(f"full snapshot: {progress.items:,} workloads in {elapsed:.1f} s ({progress.rate:,.0f}/s)")
    assert progress.items == progress.applied == 69_351 + 8_152 + 156
    end = inventory.end_ms / 1000
    assert count(client) + count(client, deleted=True) == progress.items
    assert count(client, "type==Training,phase==Completed") == 69_351
    assert count(client, "type==Training", deleted=True) == 0

    live, gone = expected.counts(s for p in expected.openb_pods() if (s := p.state_at(int(end))) is not None)
    assert sum(gone.values()) == 8_152
    assert not live
    check_phase_counts(client, openb.cluster.id, live, gone)

    instances = expected.dlrm_instances()
    services_at_end = expected.dlrm_services_at(instances, end)
    still = {app: s for app, s in services_at_end.items() if not s.deleted}
    assert count(client, "type==Inference") == len(still)
    assert count(client, "type==Inference", deleted=True) == 156 - len(still)
    records = list_all(client, "type==Inference")
    assert sum(r["runningPods"] for r in records) == sum(1 for i in instances if i.deleted == float("inf"))
    assert sum(r["allocatedResources"]["gpu"] for r in records) == sum(
        i.gpu for i in instances if i.deleted == float("inf")
    )
