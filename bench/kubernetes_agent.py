"""The Kubernetes agent on a large cluster: its first sync (how long until the API reflects it, and the
agent's memory), then a steady stream of pod changes (how long each takes to show in the API).

    .venv/bin/python -m bench.kubernetes_agent [--db sqlite|postgresql] [--owners M] [--pods-per-owner P]
        [--rate R] [--seconds S] [--sample-every K] [--pg-database NAME] [--analyze]

Builds a cluster of M Jobs with P running pods each (default 20,000 × 5 = 100,000 pods) in the test
suite's Kubernetes API server (``tests/agents/kubernetes/apiserver.py``: no real API server can be run
here), starts ``workplane serve`` on a fresh store and ``workplane agent kubernetes`` against the
cluster, and prints the seconds from the agent's start until ``/workloads/count`` says M and the
agent's resident memory (peak and at the end). The target: ≤ 30 s and ≤ 300 MB at 100,000 pods.

Then the cluster changes R times a second for S seconds (default 1,000/s for 30 s), through the API
server's watch streams: half of the changes a running pod that succeeds, a quarter a new running pod
under a random Job, a quarter the deletion of a pod that finished earlier. Every K-th change (default
50th: 20 a second) is followed: ``GET /workloads/{id}/pods`` of its workload is polled until it shows
the change (the pod's new phase, the new pod, the pod gone), and the time from the change until the
answer that first showed it is its latency; p50/p99/max are printed, with the agent's memory and every
process's CPU seconds meanwhile. Polling every change would be 1,000 requests a second competing for the
same two cores; the followed ones are an unbiased sample (every K-th, whatever its kind). The target:
p99 ≤ 2 s at 1,000 changes a second.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from tests.agents.kubernetes import manifests as m
from tests.agents.kubernetes.apiserver import FakeCluster

from bench.http_load import BackendCpu, Server, cpu_by_process, cpu_seconds, process_tree, request, sample_rss
from bench.load import POSTGRESQL, SQLITE, ensure_exists, make_target, wipe
from workplane.agents.kubernetes.command import cluster_id_for
from workplane.services.setup import ADMIN_FILE
from workplane.settings import Settings

CLUSTER = "bench-k8s"


NODES = 500
IMAGE = "perl:5.34.0"
POLL_S = 0.1  # the followed changes are looked at every this many seconds


def _running_pod(name: str, job: dict[str, Any], node: int) -> dict[str, Any]:
    return m.running(m.pod(name, job, job["metadata"]["namespace"], IMAGE, gpu=1), f"node-{node % NODES}")


def build_cluster(
    owners: int, per_owner: int
) -> tuple[FakeCluster, list[dict[str, Any]], list[dict[str, Any]]]:
    """The cluster, its Jobs and its pods (each pod's ownerReferences name its Job)."""
    cluster = FakeCluster()
    namespaces = [m.namespace(f"team-{i}", {"runai/queue": f"project-{i}"}) for i in range(20)]
    nodes = [m.node(f"node-{i}", pool=f"pool-{i % 4}") for i in range(NODES)]
    cluster.load([*namespaces, *nodes])
    jobs = [m.job_pi(f"team-{i % 20}", f"job-{i}") for i in range(owners)]
    cluster.load(jobs)  # gives them their uids
    pods = [_running_pod(f"job-{i}-{k}", job, i) for i, job in enumerate(jobs) for k in range(per_owner)]
    cluster.load(pods)
    return cluster, jobs, pods


@dataclass(frozen=True, slots=True)
class Followed:
    """A change whose arrival in the API is waited for: the pod ``name`` of workload ``workload_id``
    shows ``phase`` (None: is gone from the workload's live pods)."""

    at: float  # time.monotonic() once the API server had the change
    workload_id: str
    name: str
    phase: str | None


class Churn:
    """Pod changes at a steady rate through the API server (its watch streams deliver them)."""

    def __init__(self, cluster: FakeCluster, jobs: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        self.cluster = cluster
        self.jobs = jobs
        self.job_of = {job["metadata"]["name"]: job for job in jobs}
        self.running = list(pods)  # pods that may succeed
        self.finished: collections.deque[dict[str, Any]] = collections.deque()  # pods that may be deleted
        self.random = random.Random(15)
        self.made = 0
        self.behind_s = 0.0  # the most the generator fell behind its schedule

    def _owner(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self.job_of[pod["metadata"]["ownerReferences"][0]["name"]]

    def change(self, followed: set[str]) -> tuple[dict[str, Any], str | None]:
        """Make one change; the pod it was about and the phase it shows now (None: deleted). Pods in
        ``followed`` (changes not yet seen in the API) are not changed again meanwhile."""
        step = self.made % 4
        self.made += 1
        if step == 1:
            index = self.made
            job = self.jobs[self.random.randrange(len(self.jobs))]
            pod = self.cluster.create(_running_pod(f"{job['metadata']['name']}-n{index}", job, index))
            self.running.append(pod)
            return pod, "Running"
        if step == 2:  # the oldest finished pod not followed now is deleted
            for _ in range(len(self.finished)):
                pod = self.finished.popleft()
                meta = pod["metadata"]
                if meta["name"] not in followed:
                    self.cluster.delete("v1", "Pod", meta["name"], meta["namespace"])
                    return pod, None
                self.finished.append(pod)
        while True:  # a running pod succeeds
            index = self.random.randrange(len(self.running))
            pod = self.running[index]
            if pod["metadata"]["name"] not in followed:
                break
        self.running[index] = self.running[-1]
        self.running.pop()
        pod = self.cluster.update(m.succeeded(pod))
        self.finished.append(pod)
        return pod, "Succeeded"


def steady_state(
    churn: Churn, port: int, headers: dict[str, str], *, rate: float, seconds: float, sample_every: int
) -> tuple[list[float], int, float]:
    """Run the churn for ``seconds`` and follow every ``sample_every``-th change; the latencies of the
    followed changes, how many were never seen (within 30 s of the end), and the changes made a second."""
    pending: list[Followed] = []
    followed: set[str] = set()
    lock = threading.Lock()
    latencies: list[float] = []
    done = threading.Event()

    span = [0.0, 0.0]

    def generate() -> None:
        start = span[0] = time.monotonic()
        total = int(rate * seconds)
        for index in range(total):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                churn.behind_s = max(churn.behind_s, -delay)
            with lock:
                pod, phase = churn.change(followed)
                if index % sample_every == 0:
                    meta = pod["metadata"]
                    owner = churn._owner(pod)["metadata"]["uid"]
                    pending.append(Followed(time.monotonic(), owner, meta["name"], phase))
                    followed.add(meta["name"])
        span[1] = time.monotonic()
        done.set()

    def shows(item: Followed) -> bool:
        status, body = request(
            "GET", port, f"/api/v1/workloads/{item.workload_id}/pods?limit=500", headers=headers
        )
        if status != 200:
            return False
        phases = {p["name"]: p["k8sPhase"] for p in json.loads(body)["pods"]}
        return phases.get(item.name) == item.phase

    generator = threading.Thread(target=generate, daemon=True)
    generator.start()
    give_up = None
    while not (done.is_set() and not pending):
        round_started = time.monotonic()
        if done.is_set() and give_up is None:
            give_up = round_started + 30
        if give_up is not None and round_started > give_up:
            break
        with lock:
            todo = list(pending)
        # Oldest first, up to the first one not shown yet: the round's requests stay few however many
        # changes are on their way (the later ones are looked at again in the next round, so a latency
        # is never under-counted, at worst over-counted by a round).
        for item in todo:
            if not shows(item):
                break
            latencies.append(time.monotonic() - item.at)
            with lock:
                pending.remove(item)
                followed.discard(item.name)
        time.sleep(max(0.0, POLL_S - (time.monotonic() - round_started)))
    generator.join()
    return latencies, len(pending), churn.made / max(span[1] - span[0], 1e-9)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def _token(port: int, credentials: Path) -> str:
    values = dict(line.split("=", 1) for line in credentials.read_text().splitlines() if "=" in line)
    body = json.dumps(
        {
            "grantType": "client_credentials",
            "clientId": values["WORKPLANE_CLIENT_ID"],
            "clientSecret": values["WORKPLANE_CLIENT_SECRET"],
        }
    ).encode()
    status, answer = request("POST", port, "/api/v1/token", body, {"Content-Type": "application/json"})
    assert status == 200, answer
    token: str = json.loads(answer)["accessToken"]
    return token


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kubernetes_agent", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL], default=SQLITE, help="store to run on")
    parser.add_argument("--owners", type=int, default=20_000, help="Jobs in the cluster (workloads)")
    parser.add_argument("--pods-per-owner", type=int, default=5, help="running pods per Job")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    parser.add_argument("--rate", type=float, default=1000, help="pod changes a second after the first sync")
    parser.add_argument("--seconds", type=float, default=30, help="how long the changes go on (0: none)")
    parser.add_argument("--sample-every", type=int, default=20, help="follow every K-th change")
    parser.add_argument("--out", default="bench/out", help="where logs and the store go")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument(
        "--pg-database",
        default="workplane_k8s",
        help="the benchmark database's name (dropped and made anew: one per concurrent run)",
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="PostgreSQL: ANALYZE the store once the first sync is reflected (what autovacuum does by "
        "itself within a minute where it is on; a server that runs with it off never has statistics)",
    )
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for this run (repeatable), e.g. sqlite_writer_cache_mib=16",
    )
    args = parser.parse_args()
    server_env: dict[str, str] = {}
    for setting in args.server_setting:
        name, sep, value = setting.partition("=")
        if not sep or name not in Settings.model_fields:
            parser.error(f"--server-setting {setting!r}: expected NAME=VALUE with a setting's name")
        server_env[f"WORKPLANE_{name.upper()}"] = value
    if args.owners <= 0 or args.pods_per_owner <= 0 or args.sample_every <= 0 or args.rate <= 0:
        parser.error("--owners, --pods-per-owner, --rate and --sample-every must be positive")
    out = Path(args.out)
    started = time.monotonic()
    cluster, jobs, pod_objects = build_cluster(args.owners, args.pods_per_owner)
    cluster.start()
    pods = args.owners * args.pods_per_owner
    print(
        f"cluster: {args.owners:,} Jobs, {pods:,} pods built in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    target = make_target(
        args.db, size=0, out_dir=out / "k8s-agent", pg_url=args.pg_url, pg_database=args.pg_database
    )
    if args.db == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    kubeconfig = out / "k8s-agent" / "kubeconfig"
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(cluster.kubeconfig())
    cluster_filter = quote(f"clusterId=={cluster_id_for(CLUSTER)}")
    log_path = out / f"k8s-agent-server-{args.db}.log"
    with Server(target, workers=1, log_path=log_path, env=server_env) as server:
        token = _token(server.port, target.data_dir / ADMIN_FILE)
        headers = {"Authorization": f"Bearer {token}"}
        log = (out / f"k8s-agent-{args.db}.log").open("wb")
        agent = subprocess.Popen(
            [
                sys.executable, "-m", "workplane.cli", "agent", "kubernetes",
                "--server", f"http://127.0.0.1:{server.port}",
                "--credentials-file", str(target.data_dir / ADMIN_FILE),
                "--cluster-name", CLUSTER,
                "--kubeconfig", str(kubeconfig),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        t0 = time.monotonic()
        assert server.process is not None
        server_cpu0, bench_cpu0 = cpu_by_process(process_tree(server.process.pid)), time.process_time()
        # PostgreSQL's own work for the store, which no process of the benchmark's shows.
        backends = BackendCpu(target.pg_database) if target.pg_database else None
        peak = 0.0
        count = 0
        try:
            while time.monotonic() - t0 < args.timeout and agent.poll() is None:
                peak = max(peak, sample_rss(agent.pid).total_mb)
                status, body = request(
                    "GET", server.port, f"/api/v1/workloads/count?filterBy={cluster_filter}", headers=headers
                )
                count = json.loads(body)["count"] if status == 200 else 0
                if count >= args.owners:
                    break
                time.sleep(0.25)
            elapsed = time.monotonic() - t0
            # Who used the two cores meanwhile: the agent, the server, and this process (the test API
            # server answering the lists; the polling here is negligible).
            cpu = {
                "agent": cpu_seconds([agent.pid]),
                "server": 0.0,
                "sync workers": 0.0,
                "test API server": time.process_time() - bench_cpu0,
            }
            for pid, seconds in cpu_by_process(process_tree(server.process.pid)).items():
                part = "server" if pid == server.process.pid else "sync workers"
                cpu[part] += seconds - server_cpu0.get(pid, 0.0)
            if backends is not None:
                cpu["PostgreSQL backends"] = backends.seconds()
            time.sleep(2)  # the agent settles into watching
            if args.analyze and args.db == POSTGRESQL:
                engine = sa.create_engine(target.url)
                with engine.connect() as connection:
                    connection.exec_driver_sql("ANALYZE")
                    connection.commit()
                engine.dispose()
            end_rss = sample_rss(agent.pid).total_mb
            peak = max(peak, end_rss)
            _report_first_sync(target.label, pods, args.owners, count, elapsed, peak, end_rss, cpu)
            if args.seconds > 0 and count >= args.owners:
                churn = Churn(cluster, jobs, pod_objects)
                sampler = _RssSampler(agent.pid)
                before = _cpu(agent.pid, server.process.pid, backends)
                load0 = _loadavg()
                latencies, unseen, made = steady_state(
                    churn,
                    server.port,
                    headers,
                    rate=args.rate,
                    seconds=args.seconds,
                    sample_every=args.sample_every,
                )
                after = _cpu(agent.pid, server.process.pid, backends)
                sampler.stop()
                print(
                    f"[{target.label}] steady state: {churn.made:,} pod changes at {made:,.0f}/s "
                    f"(generator at most {churn.behind_s:.2f} s behind), {len(latencies) + unseen} "
                    f"followed: latency p50 {_percentile(latencies, 0.5):.2f} s, "
                    f"p99 {_percentile(latencies, 0.99):.2f} s, max {max(latencies, default=math.nan):.2f} s"
                    + (f", {unseen} NOT seen within 30 s" if unseen else "")
                    + f"; agent RSS peak {sampler.peak:.0f} MB; load {load0} -> {_loadavg()}",
                    flush=True,
                )
                print(
                    "CPU seconds during the changes: "
                    + ", ".join(f"{k} {after[k] - before[k]:.1f}" for k in after),
                    flush=True,
                )
        finally:
            if backends is not None:
                backends.stop()
            agent.terminate()
            agent.wait(timeout=30)
            log.close()
            cluster.stop()


def _report_first_sync(
    label: str,
    pods: int,
    owners: int,
    count: int,
    elapsed: float,
    peak: float,
    end_rss: float,
    cpu: dict[str, float],
) -> None:
    verdict = "reflected" if count >= owners else f"NOT reflected ({count:,} of {owners:,})"
    print(
        f"[{label}] first sync of {pods:,} pods under {owners:,} Jobs: {verdict} after "
        f"{elapsed:.1f} s; agent RSS peak {peak:.0f} MB, {end_rss:.0f} MB once watching; load {_loadavg()}",
        flush=True,
    )
    print("CPU seconds until reflected: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()), flush=True)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu(agent: int, server: int, backends: BackendCpu | None) -> dict[str, float]:
    """CPU seconds so far of the agent, the server's main process, its sync workers, and this process
    (the test API server and the churn); on PostgreSQL, its backends' for the store."""
    by_pid = cpu_by_process(process_tree(server))
    found = {
        "agent": cpu_seconds([agent]),
        "server": by_pid.get(server, 0.0),
        "sync workers": sum(v for pid, v in by_pid.items() if pid != server),
        "test API server + churn + polling": time.process_time(),
    }
    if backends is not None:
        found["PostgreSQL backends"] = backends.seconds()
    return found


class _RssSampler:
    """The agent's peak resident memory, sampled every half second in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, sample_rss(self.pid).total_mb)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


if __name__ == "__main__":
    main()
