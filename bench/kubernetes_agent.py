"""The Kubernetes agent's first sync of a large cluster: how long until the API reflects it, and the
agent's memory.

    .venv/bin/python -m bench.kubernetes_agent [--db sqlite|postgresql] [--owners M] [--pods-per-owner P]

Builds a cluster of M Jobs with P running pods each (default 20,000 × 5 = 100,000 pods) in the test
suite's Kubernetes API server (``tests/agents/kubernetes/apiserver.py``: no real API server can be run
here), starts ``workplane serve`` on a fresh store and ``workplane agent kubernetes`` against the
cluster, and prints the seconds from the agent's start until ``/workloads/count`` says M and the
agent's resident memory (peak and at the end). The target: ≤ 30 s and ≤ 300 MB at 100,000 pods.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from tests.agents.kubernetes import manifests as m
from tests.agents.kubernetes.apiserver import FakeCluster

from bench.http_load import Server, cpu_by_process, cpu_seconds, process_tree, request, sample_rss
from bench.load import POSTGRESQL, SQLITE, ensure_exists, make_target, wipe
from workplane.agents.kubernetes.command import cluster_id_for
from workplane.services.setup import ADMIN_FILE

CLUSTER = "bench-k8s"


def build_cluster(owners: int, per_owner: int) -> FakeCluster:
    cluster = FakeCluster()
    namespaces = [m.namespace(f"team-{i}", {"runai/queue": f"project-{i}"}) for i in range(20)]
    nodes = [m.node(f"node-{i}", pool=f"pool-{i % 4}") for i in range(500)]
    cluster.load([*namespaces, *nodes])
    jobs = [m.job_pi(f"team-{i % 20}", f"job-{i}") for i in range(owners)]
    cluster.load(jobs)  # gives them their uids
    pods = [
        m.running(
            m.pod(f"job-{i}-{k}", job, job["metadata"]["namespace"], "perl:5.34.0", gpu=1), f"node-{i % 500}"
        )
        for i, job in enumerate(jobs)
        for k in range(per_owner)
    ]
    cluster.load(pods)
    return cluster


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
    parser.add_argument("--out", default="bench/out", help="where logs and the store go")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the benchmark database on",
    )
    args = parser.parse_args()
    if args.owners <= 0 or args.pods_per_owner <= 0:
        parser.error("--owners and --pods-per-owner must be positive")
    out = Path(args.out)
    started = time.monotonic()
    cluster = build_cluster(args.owners, args.pods_per_owner)
    cluster.start()
    pods = args.owners * args.pods_per_owner
    print(
        f"cluster: {args.owners:,} Jobs, {pods:,} pods built in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    target = make_target(
        args.db, size=0, out_dir=out / "k8s-agent", pg_url=args.pg_url, pg_database="workplane_k8s"
    )
    if args.db == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    kubeconfig = out / "k8s-agent" / "kubeconfig"
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(cluster.kubeconfig())
    cluster_filter = quote(f"clusterId=={cluster_id_for(CLUSTER)}")
    with Server(target, workers=1, log_path=out / f"k8s-agent-server-{args.db}.log") as server:
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
                # its sync worker processes included, which it may start on the first batch
                "server": sum(
                    seconds - server_cpu0.get(pid, 0.0)
                    for pid, seconds in cpu_by_process(process_tree(server.process.pid)).items()
                ),
                "test API server": time.process_time() - bench_cpu0,
            }
            time.sleep(2)  # the agent settles into watching
            end_rss = sample_rss(agent.pid).total_mb
            peak = max(peak, end_rss)
        finally:
            agent.terminate()
            agent.wait(timeout=30)
            log.close()
            cluster.stop()
    verdict = "reflected" if count >= args.owners else f"NOT reflected ({count:,} of {args.owners:,})"
    print(
        f"[{target.label}] first sync of {pods:,} pods under {args.owners:,} Jobs: {verdict} after "
        f"{elapsed:.1f} s; agent RSS peak {peak:.0f} MB, {end_rss:.0f} MB once watching",
        flush=True,
    )
    print("CPU seconds until reflected: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()), flush=True)


if __name__ == "__main__":
    main()
