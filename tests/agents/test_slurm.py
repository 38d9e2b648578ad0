"""The Slurm agent against a real single-node Slurm with slurmdbd (tests/slurm_cluster.py), one per module.

Real jobs are submitted with sbatch; the agent is driven poll by poll (``resync``/``poll``/``step``) into
an in-process server, and what the API serves is compared with what Slurm itself says through another
of its interfaces (``squeue --json``, ``sacct --json``), phases and times included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.agents.conftest import InProcess, fresh_app, list_all
from tests.server import running_server
from tests.slurm_cluster import DEFAULT_MUNGE_SOCKET, SlurmCluster, missing
from workplane.agents.slurm.agent import SlurmAgent
from workplane.agents.slurm.commands import Slurm
from workplane.agents.slurm.jobs import PHASES, workload_id
from workplane.domain.timefmt import parse_to_ms
from workplane.store import ingest

CLUSTER_ID = "5e0c6a2e-3c1d-4f7a-9b2e-0d4f1a2b3c4d"
NAME = "wptest"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    absent = missing()
    if absent:
        pytest.skip(f"Slurm is not installed ({', '.join(absent)}); scripts/install-slurm installs it")
    if DEFAULT_MUNGE_SOCKET.exists():
        pytest.skip(f"{DEFAULT_MUNGE_SOCKET} belongs to a munged already running on this machine")
    # MinJobAge=2: finished jobs leave slurmctld within seconds, so accounting must supply them.
    with SlurmCluster(tmp_path_factory.mktemp("slurm"), min_job_age_s=2) as cluster:
        cluster.sacctmgr("add", "account", "research")
        cluster.sacctmgr("add", "account", "team-a", "parent=research")
        cluster.sacctmgr("add", "user", "root", "account=team-a")
        yield cluster


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with fresh_app(tmp_path_factory.mktemp("store")) as client:
        yield client


def make_agent(slurm: SlurmCluster, api: TestClient, lines: list[str] | None = None) -> SlurmAgent:
    agent = SlurmAgent(
        InProcess(api),
        CLUSTER_ID,
        slurm=Slurm(env=slurm.env, timeout_s=20),
        poll_s=1,
        sample_interval_s=0,
        log=(lines if lines is not None else []).append,
    )
    agent.connect()
    return agent


def until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.25)


# ------------------------------------------------------------------------------- Slurm's own view


def slurm_key(job: dict[str, Any]) -> str:
    """The id Slurm prints for a job record of squeue/sacct --json."""
    het = job.get("het") or {"job_id": job.get("het_job_id"), "job_offset": job.get("het_job_offset")}
    array = job.get("array") or {"job_id": job.get("array_job_id"), "task_id": job.get("array_task_id")}
    if het.get("job_id"):
        return f"{het['job_id']}+{het['job_offset']}"
    if array.get("job_id") and array.get("task_id") is not None:
        return f"{array['job_id']}_{array['task_id']}"
    return str(job["job_id"])


def queue_view(slurm: SlurmCluster) -> dict[str, dict[str, Any]]:
    jobs = json.loads(slurm.run("squeue", "--json"))["jobs"]
    return {slurm_key(j): j for j in jobs if not j.get("array_task_string")}


def accounting_view(slurm: SlurmCluster, ids: list[str]) -> dict[str, dict[str, Any]]:
    jobs = json.loads(slurm.run("sacct", "--json", "--allusers", "--jobs=" + ",".join(ids)))["jobs"]
    return {slurm_key(j): j for j in jobs}


def state(slurm: SlurmCluster, key: str) -> str:
    view = accounting_view(slurm, [key])
    return str(view[key]["state"]["current"]) if key in view else "?"


def runs(slurm: SlurmCluster, key: str) -> bool:
    """Whether slurmctld says the job runs: it knows at once, while accounting (``state``) learns of
    a start seconds later."""
    return queue_view(slurm).get(key, {}).get("job_state") == "RUNNING"


def workload(api: TestClient, key: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/workloads/{workload_id(NAME, key)}")
    assert answer.status_code == 200, (key, answer.text)
    record: dict[str, Any] = answer.json()
    return record


def ms(seconds: int) -> int:
    return seconds * 1000


def assert_matches_accounting(api: TestClient, key: str, job: dict[str, Any]) -> dict[str, Any]:
    """The workload of ``key`` says what ``sacct --json`` says of the job."""
    record = workload(api, key)
    slurm_state = job["state"]["current"].split()[0]
    assert record["phase"] == PHASES[slurm_state][0], (key, slurm_state, record["phase"])
    times = job["time"]
    assert parse_to_ms(record["createdAt"]) == ms(times["submission"]), key
    if slurm_state in ("COMPLETED", "FAILED", "CANCELLED"):
        assert parse_to_ms(record["phaseUpdatedAt"]) == ms(times["end"]), key
    elif slurm_state == "RUNNING":
        assert parse_to_ms(record["phaseUpdatedAt"]) == ms(times["start"]), key
    if slurm_state in ("COMPLETED", "FAILED") and times["start"]:
        assert record["totalRunningTimeSeconds"] == times["end"] - times["start"], key
        assert parse_to_ms(record["completedAt"]) == ms(times["end"]), key
    assert record["projectName"] == (job["account"] or "default"), key
    assert record["submittedBy"] == job["user"], key
    assert record["additionalFields"]["slurmJobId"] == key
    return record


def history(api: TestClient, key: str) -> list[str]:
    with api.app.state.services.db.read() as conn:  # type: ignore[attr-defined]
        return [h["phase"] for h in ingest.history_of(conn, workload_id(NAME, key))]


# ------------------------------------------------------------------------------------------ tests


def test_jobs_as_workloads(slurm: SlurmCluster, api: TestClient) -> None:
    agent = make_agent(slurm, api)
    agent.resync()
    gpu = slurm.sbatch("-A", "team-a", "--gres=gpu:1", "-J", "gpu", "--wrap", "sleep 8")
    array = slurm.sbatch("-A", "team-a", "--array=0-2", "-J", "arr", "--wrap", "sleep 2")
    failing = slurm.sbatch("-J", "failing", "--wrap", "exit 3")
    cancelled = slurm.sbatch("-A", "team-a", "-J", "cancelled", "--wrap", "sleep 60")
    # Needs both GPUs while the first job holds one: pending on resources.
    blocked = slurm.sbatch("-A", "team-a", "--gres=gpu:2", "-J", "blocked", "--wrap", "sleep 1")
    # The scheduler names the blocked job's reason (Priority at first, then Resources) on its own
    # pass: the agent and the squeue below must see the same one.
    until(
        lambda: (
            runs(slurm, gpu)
            and runs(slurm, cancelled)
            and queue_view(slurm)[blocked]["state_reason"] == "Resources"
        ),
        "jobs start",
    )
    first = agent.poll()
    assert first.sent >= 3

    queue = queue_view(slurm)
    running = workload(api, gpu)
    assert running["phase"] == "Running"
    assert parse_to_ms(running["phaseUpdatedAt"]) == ms(queue[gpu]["start_time"])
    assert parse_to_ms(running["createdAt"]) == ms(queue[gpu]["submit_time"])
    assert running["allocatedResources"]["gpu"] == 1
    assert running["workloadRequestedResources"]["gpu"] == {"request": 1}
    assert running["runningPods"] == 1
    assert running["type"] == "Training"
    assert (running["projectName"], running["departmentName"]) == ("team-a", "research")
    assert running["currentNodePools"] == ["debug"]
    pending = workload(api, blocked)
    assert queue[blocked]["job_state"] == "PENDING"
    assert (pending["phase"], pending["phaseMessage"]) == ("Pending", queue[blocked]["state_reason"])
    assert pending["workloadRequestedResources"]["gpu"] == {"request": 2}
    assert pending["allocatedResources"]["gpu"] == 0

    slurm.run("scancel", cancelled)
    keys = [gpu, f"{array}_0", f"{array}_1", f"{array}_2", failing, cancelled]
    finished = ("COMPLETED", "FAILED", "CANCELLED")
    until(lambda: all(state(slurm, k).split()[0] in finished for k in keys if k != gpu), "jobs end")
    agent.poll()
    view = accounting_view(slurm, [array, failing, cancelled])
    for key in keys[1:]:  # the GPU job may end at any moment now: it is compared below
        assert_matches_accounting(api, key, view[key])
    assert workload(api, failing)["phaseMessage"] == "Failed: exit code 3"
    assert workload(api, cancelled)["phaseMessage"] == "Cancelled"
    assert history(api, cancelled) == ["Running", "Stopped"]
    assert history(api, f"{array}_2")[-1] == "Completed"

    # The GPU job ends; the blocked one gets both GPUs, runs and ends: every change arrives.
    until(lambda: state(slurm, blocked) == "COMPLETED", "the blocked job runs", timeout_s=60)
    agent.poll()
    view = accounting_view(slurm, [gpu, blocked])
    for key in (gpu, blocked):
        assert_matches_accounting(api, key, view[key])
    assert history(api, gpu) == ["Running", "Completed"]
    assert history(api, blocked)[0] == "Pending"
    assert history(api, blocked)[-1] == "Completed"
    assert workload(api, blocked)["totalPendingTimeSeconds"] > 0


def test_job_between_two_polls_comes_from_accounting(slurm: SlurmCluster, api: TestClient) -> None:
    agent = make_agent(slurm, api)
    agent.resync()
    quick = slurm.sbatch("-A", "team-a", "-J", "quick", "--wrap", "true")
    # Finished, and forgotten by slurmctld (MinJobAge): only accounting knows it now.
    until(lambda: quick not in queue_view(slurm) and state(slurm, quick) == "COMPLETED", "the job is purged")
    stats = agent.poll()
    assert stats.from_accounting >= 1
    assert_matches_accounting(api, quick, accounting_view(slurm, [quick])[quick])
    assert workload(api, quick)["type"] == "Training"  # its batch step says it was a batch job
    assert agent.poll().sent == 0  # and it is not sent again


def test_interactive_allocation_is_a_workspace(slurm: SlurmCluster, api: TestClient) -> None:
    slurm.run("salloc", "--no-shell", "-A", "team-a", "-J", "interactive", "--time=5")
    key = next(k for k, job in queue_view(slurm).items() if job["name"] == "interactive")
    agent = make_agent(slurm, api)
    agent.resync()
    record = workload(api, key)
    assert (record["type"], record["phase"], record["runningPods"]) == ("Workspace", "Running", 1)
    slurm.run("scancel", key)


def test_heterogeneous_job_components_are_workloads(slurm: SlurmCluster, api: TestClient) -> None:
    het = slurm.sbatch(
        "-A", "team-a", "-J", "het", "-c1", "--hold", "--wrap", "true", ":", "-c2", "--wrap", "true"
    )
    agent = make_agent(slurm, api)
    agent.resync()
    first, second = workload(api, f"{het}+0"), workload(api, f"{het}+1")
    assert (first["name"], second["name"]) == (f"het-{het}+0", f"het-{het}+1")
    assert first["workloadRequestedResources"]["cpu"] == {"request": 1}
    assert second["workloadRequestedResources"]["cpu"] == {"request": 2}
    slurm.run("scancel", het)


def test_pending_array_task_cancelled(slurm: SlurmCluster, api: TestClient) -> None:
    # Cancelled before it started, a pending array task leaves no record, not even in accounting.
    agent = make_agent(slurm, api)
    held = slurm.sbatch("-A", "team-a", "--hold", "--array=0-2", "-J", "held", "--wrap", "true")
    agent.resync()
    assert workload(api, f"{held}_1")["phaseMessage"] == "JobHeldUser"
    slurm.run("scancel", f"{held}_1")
    agent.poll()
    cancelled = workload(api, f"{held}_1")
    assert (cancelled["phase"], cancelled["phaseMessage"], cancelled["deletedAt"]) == (
        "Stopped",
        "Cancelled",
        None,
    )
    assert workload(api, f"{held}_0")["phase"] == "Pending"
    slurm.run("scancel", held)


def test_restart_of_agent_and_slurmctld_loses_and_duplicates_nothing(
    slurm: SlurmCluster, api: TestClient, tmp_path: Path
) -> None:
    lines: list[str] = []
    agent = make_agent(slurm, api, lines)
    assert not agent.step(need_resync=True)
    long = slurm.sbatch("-A", "team-a", "-J", "long", "--wrap", "sleep 30")
    until(lambda: runs(slurm, long), "the job starts")
    assert not agent.step(need_resync=False)
    before = {w["id"]: w for w in list_all(api)}
    assert workload_id(NAME, long) in before

    slurm.stop_slurmctld()
    try:
        # slurmctld is down: the poll fails, nothing is taken for gone.
        assert not agent.step(need_resync=False)
        assert any("trying again at the next poll" in line for line in lines), lines
        assert {w["id"] for w in list_all(api)} == set(before)
    finally:
        slurm.start_slurmctld()
    slurm.wait_node_idle()
    after_restart = slurm.sbatch("-A", "team-a", "-J", "after", "--wrap", "sleep 1")

    # A new agent (nothing remembered) resyncs: every workload is still there, once, and the new job too.
    restarted = make_agent(slurm, api)
    stats = restarted.resync()
    assert stats.jobs >= 2
    live = list_all(api)
    names = Counter(w["name"] for w in live)
    assert all(count == 1 for count in names.values()), names
    # Every workload from before is still there, and nothing was deleted, unless Slurm itself no longer
    # knows the job (a pending array task cancelled before it started leaves no record anywhere).
    gone = {before[i]["additionalFields"]["slurmJobId"] for i in set(before) - {w["id"] for w in live}}
    gone |= {w["additionalFields"]["slurmJobId"] for w in list_all(api, deleted=True)}
    if gone:
        known = set(queue_view(slurm)) | set(accounting_view(slurm, sorted(gone)))
        assert not known & gone, gone
    assert workload(api, long)["phase"] == "Running"
    assert workload(api, after_restart)["createdAt"]
    # The queue, as Slurm shows it, is in the API with the same phases.
    for key, job in queue_view(slurm).items():
        assert workload(api, key)["phase"] == PHASES[job["job_state"]][0], key
    slurm.run("scancel", long)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (the job runs on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cpu_and_memory_samples(slurm: SlurmCluster, api: TestClient) -> None:
    agent = make_agent(slurm, api)
    marker = f"busy-{time.time_ns()}"
    busy = f"import time; a = bytearray(100 * 2**20); t = time.time(); m = '{marker}'\n"
    busy += "while time.time() - t < 120: pass"
    job = slurm.sbatch("-A", "team-a", "-J", "busy", "--wrap", f'python3 -c "{busy}"')

    def started() -> bool:  # slurmctld says it runs, and its process is there (slurmd launches it)
        found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
        return runs(slurm, job) and bool(found.stdout.split())

    until(started, "the job starts")
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    pid = int(found.stdout.split()[0])
    agent.resync()
    url = f"/api/v1/workloads/{workload_id(NAME, job)}/metrics"
    params = {
        "metricType": "CPU_MEMORY_USAGE_BYTES,CPU_USAGE_CORES",
        "start": "2020-01-01T00:00:00Z",
        "end": "2100-01-01T00:00:00Z",
    }

    def measured() -> dict[str, list[float]]:
        answer = api.get(url, params=params)
        assert answer.status_code == 200, answer.text
        return {m["type"]: [float(v["value"]) for v in m["values"]] for m in answer.json()["measurements"]}

    # What the job really used meanwhile, by the kernel's count: on a busy machine a busy loop gets
    # less than a core, and slurmd's accounting (every second) may lag behind a sample or two.
    cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
    time.sleep(2)
    assert agent.sample() >= 1  # memory only: CPU needs two samples
    until(lambda: agent.sample() >= 2 and max(measured()["CPU_USAGE_CORES"], default=0) > 0, "CPU", 30)
    true_cores = (_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    values = measured()
    assert max(values["CPU_MEMORY_USAGE_BYTES"]) > 100 * 2**20
    # In cores (not percent, not seconds): near what the kernel counted, never beyond one core.
    assert 0.5 * true_cores < max(values["CPU_USAGE_CORES"]) < 1.5, (values, true_cores)
    slurm.run("scancel", job)


def test_command_line_with_an_agent_key(slurm: SlurmCluster, tmp_path: Path) -> None:
    """``workplane agent slurm --once`` against a real server, with an agent key bound to the cluster."""
    # Long enough to be still queued or running when the agent looks, however slow the machine is.
    job = slurm.sbatch("-A", "team-a", "-J", "cli", "--wrap", "sleep 600")
    with running_server(tmp_path / "data") as server:
        with server.client() as admin:
            body = {"name": "slurm-agent", "kind": "agent", "clusterId": CLUSTER_ID}
            key = admin.post("/api/v1/access-keys", json=body).json()
        command = [sys.executable, "-m", "workplane.cli", "agent", "slurm", "--server", server.base_url]
        command += ["--cluster-id", CLUSTER_ID, "--client-id", key["clientId"]]
        command += ["--client-secret", key["clientSecret"], "--once"]
        answer = subprocess.run(
            command, env=slurm.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert answer.returncode == 0, answer.stdout + answer.stderr
        assert "full resync" in answer.stdout
        with server.client() as client:
            record = client.get(f"/api/v1/workloads/{workload_id(NAME, job)}").json()
        assert record["clusterId"] == CLUSTER_ID
        assert record["name"] == f"cli-{job}"
        assert record["phase"] in ("Pending", "Running")
    slurm.run("scancel", job)


def test_without_accounting_a_vanished_job_is_deleted(slurm: SlurmCluster, api: TestClient) -> None:
    # Last in the module: it leaves a workload deleted that accounting knows.
    agent = make_agent(slurm, api)
    agent.accounting = False  # as on a cluster without slurmdbd
    # Earlier tests' jobs gone first: one of them ending and being purged between this test's resync
    # and its poll (a busy machine) would vanish too.
    slurm.cancel_all()
    until(lambda: not queue_view(slurm), "earlier jobs are purged")
    job = slurm.sbatch("-A", "team-a", "-J", "unaccounted", "--wrap", "sleep 2")
    until(lambda: runs(slurm, job), "the job runs")
    agent.resync()
    until(lambda: job not in queue_view(slurm), "the job is purged")
    stats = agent.poll()
    assert stats.vanished == 1
    record = workload(api, job)
    assert record["phase"] == "Running"  # as last seen: only slurmctld told, and it forgot
    assert record["deletedAt"] is not None
