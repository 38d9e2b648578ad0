"""The Slurm agent at 10,000 queued jobs, against a real single-node Slurm (with slurmdbd).

    .venv/bin/python -m bench.slurm [--jobs 10000] [--poll-interval 5] [--changes 6]

Starts a private Slurm cluster (tests/slurm_cluster.py; ``scripts/install-slurm`` installs it) and
``workplane serve`` on a fresh SQLite store, queues ``--jobs`` jobs (held array tasks, a few running
ones), then measures and prints:

- **one full poll and sync**: ``workplane agent slurm --once`` (a full resync of every job) in a child
  process: wall time, and peak RSS of the agent itself and, separately, of the largest Slurm client it
  ran (squeue, sacct) — from ``getrusage`` in that process;
- **latency**: the agent running with ``--poll-interval``, how long after a job is cancelled or
  submitted the API shows it (target: within two poll intervals), and the time of a poll with nothing
  to send; the long-running agent's peak RSS (VmHWM).

Targets (issue): full poll and sync ≤ 10 s and agent memory ≤ 200 MB at 10,000 jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.server import running_server
from tests.slurm_cluster import SlurmCluster, missing

from workplane.agents.slurm.commands import Slurm
from workplane.agents.slurm.jobs import workload_id

CLUSTER_ID = "0b6f6c1e-2a44-4c8e-9d1a-3f5e7a9b1c2d"
ARRAY_SIZE = 1000
# Runs the agent's command line, then reports its wall time and peak RSS. VmHWM, not getrusage: after
# exec, ru_maxrss also counts the process it was forked from (here the benchmark itself).
ONCE = """
import json, re, resource, sys, time
from pathlib import Path
from workplane.cli import main
started = time.monotonic()
code = main(sys.argv[1:])
wall = time.monotonic() - started
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"code": code, "wall_s": wall, "cpu_s": cpu, "agent_mb": hwm / 1024}), file=sys.stderr)
"""


def say(line: str) -> None:
    print(line, flush=True)


def queue_jobs(slurm: SlurmCluster, jobs: int) -> None:
    started = time.monotonic()
    submitted = 0
    while submitted < jobs:
        size = min(ARRAY_SIZE, jobs - submitted)
        array = slurm.sbatch(
            "--hold", f"--array=0-{size - 1}", "-A", "bench", "-J", "bench", "--wrap", "sleep 600"
        )
        # Updating each task on its own gives it a job record of its own: slurmctld then holds as many
        # records as if every job had been submitted alone (quicker than 10,000 sbatch calls).
        slurm.run("scontrol", "update", "jobid=" + ",".join(f"{array}_{i}" for i in range(size)), "nice=1")
        submitted += size
    for _ in range(4):  # a few running jobs, so that running ones are read too
        slurm.sbatch("-A", "bench", "-J", "running", "--wrap", "sleep 600")
    records = len(json.loads(slurm.run("squeue", "--json"))["jobs"])
    say(
        f"queued {jobs:,} held jobs (array tasks, each its own job record: slurmctld holds {records:,}) "
        f"and 4 running jobs in {time.monotonic() - started:.1f} s"
    )


def held_jobs(slurm: SlurmCluster, count: int) -> list[str]:
    """Single held jobs, to be cancelled one by one (a change Slurm records at once)."""
    return [slurm.sbatch("--hold", "-A", "bench", "-J", "target", "--wrap", "true") for _ in range(count)]


def agent_command(base_url: str, key: dict[str, str], *extra: str) -> list[str]:
    return [
        "agent",
        "slurm",
        "--server",
        base_url,
        "--cluster-id",
        CLUSTER_ID,
        "--client-id",
        key["clientId"],
        "--client-secret",
        key["clientSecret"],
        *extra,
    ]


def client_peak_mb(slurm: SlurmCluster, command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one Slurm client run as the agent runs it, its VmHWM read every
    few milliseconds until it exits (output discarded)."""
    env = {**slurm.env, "SLURM_TIME_FORMAT": "%s"}
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            match = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
        except OSError:
            break
        if match:
            peak = max(peak, int(match.group(1)))
        time.sleep(0.002)
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed with {process.returncode}")
    return peak / 1024, time.monotonic() - started


def full_sync(slurm: SlurmCluster, base_url: str, key: dict[str, str]) -> dict[str, Any]:
    args = agent_command(base_url, key, "--once", "--sample-interval", "0")
    answer = subprocess.run(
        [sys.executable, "-c", ONCE, *args],
        env=slurm.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if answer.returncode != 0:
        raise SystemExit(f"the agent failed:\n{answer.stdout}\n{answer.stderr}")
    figures: dict[str, Any] = json.loads(answer.stderr.strip().splitlines()[-1])
    say(answer.stdout.strip())
    return figures


def phase_of(client: httpx.Client, key: str) -> str | None:
    answer = client.get(f"/api/v1/workloads/{workload_id('wptest', key)}")
    return str(answer.json()["phase"]) if answer.status_code == 200 else None


def wait_for(client: httpx.Client, key: str, phase: str, since: float, limit_s: float) -> float:
    while time.monotonic() - since < limit_s:
        if phase_of(client, key) == phase:
            return time.monotonic() - since
        time.sleep(0.05)
    return float("inf")


def latencies(
    slurm: SlurmCluster,
    client: httpx.Client,
    base_url: str,
    key: dict[str, str],
    poll_s: float,
    targets: list[str],
) -> tuple[list[float], list[float], int]:
    log = Path(tempfile.mkstemp(prefix="slurm-agent-", suffix=".log")[1])
    args = agent_command(base_url, key, "--poll-interval", str(poll_s), "--sample-interval", "0")
    with log.open("w") as output:
        agent = subprocess.Popen(
            [sys.executable, "-m", "workplane.cli", *args],
            env=slurm.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "full resync" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(poll_s)
        cancel: list[float] = []
        submit: list[float] = []
        for target in targets:
            slurm.run("scancel", target)
            cancel.append(wait_for(client, target, "Stopped", time.monotonic(), 6 * poll_s))
            started = time.monotonic()
            job = slurm.sbatch("--hold", "-A", "bench", "-J", "new", "--wrap", "true")
            submit.append(wait_for(client, job, "Pending", started, 6 * poll_s))
            time.sleep(poll_s / 3)  # changes at different points of the poll cycle
        status = Path(f"/proc/{agent.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        peak_kb = int(match.group(1)) if match else 0
    finally:
        agent.terminate()
        agent.wait(30)
    quiet = [float(m) for m in re.findall(r"of [\d,]+ jobs, ([\d.]+) s", log.read_text())]
    say(f"agent log: {log}; polls that sent changes took {', '.join(f'{q:.2f}' for q in quiet) or '-'} s")
    return cancel, submit, peak_kb


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slurm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs to queue (default %(default)s)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="agent poll interval, seconds")
    parser.add_argument("--changes", type=int, default=6, help="state changes timed (default %(default)s)")
    args = parser.parse_args()
    absent = missing()
    if absent:
        raise SystemExit(f"Slurm is not installed ({', '.join(absent)}): run scripts/install-slurm")
    say(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as root:
        cluster = SlurmCluster(Path(root) / "slurm", max_array_size=ARRAY_SIZE + 1)
        with cluster, running_server(Path(root) / "data") as server, server.client() as client:
            cluster.sacctmgr("add", "account", "bench")
            cluster.sacctmgr("add", "user", "root", "account=bench")
            body = {"name": "slurm-bench", "kind": "agent", "clusterId": CLUSTER_ID}
            key = client.post("/api/v1/access-keys", json=body).json()
            queue_jobs(cluster, args.jobs)
            targets = held_jobs(cluster, args.changes)
            first = full_sync(cluster, server.base_url, key)
            second = full_sync(cluster, server.base_url, key)
            count = client.get("/api/v1/workloads/count").json()["count"]
            squeue = client_peak_mb(cluster, ["squeue", *Slurm().queue_args()])
            squeue_json = client_peak_mb(cluster, ["squeue", "--json"])
            cancel, submit, peak_kb = latencies(
                cluster, client, server.base_url, key, args.poll_interval, targets
            )
    say("")
    say(f"== Slurm agent, {args.jobs:,} queued jobs ({count:,} workloads in the API)")
    for name, run in (("first", first), ("second", second)):
        say(
            f"full poll and sync ({name} run): {run['wall_s']:.2f} s (target <= 10 s; the agent's own CPU "
            f"{run['cpu_s']:.2f} s, the rest waiting on the server and Slurm); agent peak RSS "
            f"{run['agent_mb']:.0f} MB (target <= 200 MB)"
        )
    say(
        f"Slurm clients, separately: squeue as the agent runs it {squeue[0]:.0f} MB peak RSS, "
        f"{squeue[1]:.2f} s (squeue --json, for comparison: {squeue_json[0]:.0f} MB, {squeue_json[1]:.2f} s)"
    )
    target = 2 * args.poll_interval
    say(
        f"cancel -> Stopped in the API: max {max(cancel):.2f} s, "
        f"each {', '.join(f'{c:.2f}' for c in cancel)} "
        f"(target <= {target:g} s = 2 polls of {args.poll_interval:g} s)"
    )
    say(
        f"submit -> Pending in the API: max {max(submit):.2f} s, each {', '.join(f'{s:.2f}' for s in submit)}"
    )
    say(f"long-running agent peak RSS (VmHWM): {peak_kb / 1024:.0f} MB")
    say(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
