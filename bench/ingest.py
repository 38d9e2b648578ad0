"""Ingestion through the sync protocol, over real HTTP, while list requests are being served.

    .venv/bin/python -m bench.ingest [--db sqlite|postgresql|both] [--workloads N] [--batch N]
        [--inventory N] [--pg-database NAME]

Starts ``workplane serve`` on a fresh store — empty, or with ``--inventory N`` a copy of the read
benchmark's N-workload inventory (``python -m bench load --size N``, loaded first when missing), to
measure ingestion into a store of a realistic size — then one agent per cluster posts batches of
observations (each workload is created Pending, then Running, then Completed: three observations),
while reader threads list a filtered page in a loop. Request bodies are serialised before the clock
starts, so the figure is the server's rate, not the client's. Prints observations/s, the readers'
requests/s and p50, and the server's resident memory.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench import inventory
from bench.http_load import (
    Server,
    cpu_by_process,
    get_token,
    load_average,
    machine_busy_seconds,
    process_tree,
    sample_rss,
)
from bench.load import POSTGRESQL, SQLITE, Target, ensure_exists, load, make_target, wipe

PHASES = (
    ("Pending", "2024-05-01T10:00:00Z"),
    ("Running", "2024-05-01T10:05:00Z"),
    ("Completed", "2024-05-01T12:00:00Z"),
)


def _cluster(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"workplane-bench-ingest-{n}"))


def _bodies(cluster: str, workloads: int, batch: int) -> list[bytes]:
    """All batches of one agent: every workload's three phases, batch after batch in time order."""
    bodies = []
    for round_, (phase, at) in enumerate(PHASES):
        for start in range(0, workloads, batch):
            items = []
            for n in range(start, min(start + batch, workloads)):
                items.append(
                    {
                        "id": str(uuid.uuid5(uuid.UUID(cluster), str(n))),
                        "revision": round_ + 1,
                        "name": f"train-{n}",
                        # A project and a department belong to one cluster: each agent has its own.
                        "projectId": f"{cluster[:8]}-p{n % 20}",
                        "projectName": f"project-{n % 20}",
                        "departmentId": f"{cluster[:8]}-d{n % 4}",
                        "departmentName": f"department-{n % 4}",
                        "type": "Training",
                        "phase": phase,
                        "createdAt": PHASES[0][1],
                        "phaseUpdatedAt": at,
                        "runningPods": 1 if phase == "Running" else 0,
                        "requestedPods": {"number": 1},
                        "workloadRequestedResources": {"gpu": {"request": 1 + n % 8}},
                        "allocatedResources": {"gpu": 1 + n % 8} if phase == "Running" else None,
                        "currentNodePools": ["default"],
                        "images": ["nvcr.io/nvidia/pytorch:24.05-py3"],
                    }
                )
            bodies.append(orjson.dumps({"clusterName": f"bench-{cluster[:8]}", "workloads": items}))
    return bodies


def post_batches(port: int, token: str, cluster: str, bodies: list[bytes], errors: list[str]) -> None:
    """Post sync batches in order on one keep-alive connection; a refusal ends them (in ``errors``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in bodies:
        conn.request("POST", f"/api/v1/clusters/{cluster}/sync", body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            errors.append(f"{answer.status}: {text[:200]!r}")
            return
    conn.close()


def _read_loop(port: int, token: str, stop: threading.Event, latencies: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    path = "/api/v1/workloads?limit=50&sortBy=createdAt&sortOrder=desc&filterBy=phase%3D%3DRunning"
    while not stop.is_set():
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        conn.getresponse().read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)  # a steady reader, not a load generator
    conn.close()


def _copy_inventory(target: Target, args: argparse.Namespace) -> None:
    """Make the (wiped) ``target`` a copy of the read benchmark's inventory of ``args.inventory``
    workloads, loading that first if it is not there: the SQLite files, or a PostgreSQL database
    created from it as a template; the data directory (signing key, administrator credential) too."""
    source = make_target(
        target.kind, size=args.inventory, out_dir=Path(args.out), pg_url=args.pg_url, pg_database=None
    )
    load(source, inventory.build_plan(args.inventory, inventory.read_trace()), batch_size=2_000, force=False)
    started = time.perf_counter()
    shutil.rmtree(target.data_dir, ignore_errors=True)
    shutil.copytree(source.data_dir, target.data_dir)
    if target.kind == POSTGRESQL:
        engine = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.pg_database}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{target.pg_database}" TEMPLATE "{source.pg_database}"'))
        engine.dispose()
    print(
        f"[{target.label}] starting from a copy of the {args.inventory:,}-workload inventory "
        f"(copied in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    target = make_target(
        kind,
        size=args.workloads,
        out_dir=Path(args.out) / "ingest",
        pg_url=args.pg_url,
        pg_database=args.pg_database,
    )
    if kind == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    if args.inventory:
        _copy_inventory(target, args)
    agents = [_cluster(n) for n in range(args.agents)]
    print(f"[{target.label}] serialising {3 * args.workloads * len(agents):,} observations ...", flush=True)
    bodies = {c: _bodies(c, args.workloads, args.batch) for c in agents}
    env = {} if args.pin else {"WORKPLANE_PIN_CPUS": "false"}
    if args.sync_processes is not None:
        env["WORKPLANE_SYNC_PROCESSES"] = str(args.sync_processes)
    log_path = Path(args.out) / f"ingest-{kind}.log"
    with Server(target, workers=args.workers, log_path=log_path, env=env) as server:
        token, _ = get_token(target, server.port)
        stop, latencies, errors = threading.Event(), [], []
        readers = [
            threading.Thread(target=_read_loop, args=(server.port, token, stop, latencies), daemon=True)
            for _ in range(args.readers)
        ]
        for reader in readers:
            reader.start()
        assert server.process is not None
        rss_before = sample_rss(server.process.pid).total_mb
        # Per process: the sync worker processes start with the first batch, after this.
        server_start = cpu_by_process(process_tree(server.process.pid))
        load = load_average()
        machine_cpu = machine_busy_seconds()
        started = time.perf_counter()
        threads = [
            threading.Thread(target=post_batches, args=(server.port, token, c, bodies[c], errors))
            for c in agents
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        server_end = cpu_by_process(process_tree(server.process.pid))
        server_cpu = sum(cpu - server_start.get(pid, 0.0) for pid, cpu in server_end.items())
        machine_cpu = machine_busy_seconds() - machine_cpu
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
        rss_after = sample_rss(server.process.pid).total_mb
    if errors:
        raise SystemExit(f"[{target.label}] a batch failed: {errors[0]}")
    observations = 3 * args.workloads * len(agents)
    latencies.sort()
    result = {
        "database": target.label,
        "inventory": args.inventory,
        "workers": args.workers,
        "sync_processes": args.sync_processes,
        "pinned": args.pin,
        "observations": observations,
        "seconds": round(elapsed, 2),
        "observations_per_s": round(observations / elapsed),
        "reader_requests": len(latencies),
        "reader_p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
        "server_rss_mb": [round(rss_before), round(rss_after)],
        # CPU per observation: the server's processes (readers' requests included), and the whole
        # machine's (the database server's, this benchmark's and anything else running) — on a busy
        # machine the first is the steadier figure.
        "server_cpu_us_per_observation": round(1e6 * server_cpu / observations),
        "machine_cpu_us_per_observation": round(1e6 * machine_cpu / observations),
        "load_average_before": load,
    }
    print(
        f"[{target.label}{f', into {args.inventory:,} workloads' if args.inventory else ''}] "
        f"{observations:,} observations in {elapsed:.1f} s = "
        f"{result['observations_per_s']:,}/s (target >= 20,000/s: "
        f"{'met' if observations / elapsed >= 20_000 else 'NOT met'}); "
        f"readers: {len(latencies)} list requests, p50 {result['reader_p50_ms']} ms; "
        f"server RSS {result['server_rss_mb'][0]} -> {result['server_rss_mb'][1]} MB; CPU per observation: "
        f"server {result['server_cpu_us_per_observation']} µs, machine "
        f"{result['machine_cpu_us_per_observation']} µs (load average before: {load:.2f})",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", choices=[SQLITE, POSTGRESQL, "both"], default="both", help="store(s) to measure"
    )
    parser.add_argument(
        "--workloads", type=int, default=20_000, help="workloads per agent (3 observations each)"
    )
    parser.add_argument("--agents", type=int, default=2, help="concurrent agents, one cluster each")
    parser.add_argument(
        "--inventory",
        type=int,
        default=0,
        metavar="N",
        help="start from a copy of the read benchmark's N-workload inventory (python -m bench load "
        "--size N; loaded first if missing) instead of an empty store (default: 0, empty)",
    )
    parser.add_argument("--batch", type=int, default=2_000, help="workload items per sync batch")
    parser.add_argument("--readers", type=int, default=2, help="threads listing workloads meanwhile")
    parser.add_argument("--workers", type=int, default=1, help="server processes (workplane serve --workers)")
    parser.add_argument(
        "--sync-processes",
        type=int,
        help="worker processes applying sync batches, per server process (default: the server's own)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the server processes use every CPU (WORKPLANE_PIN_CPUS=false)",
    )
    parser.add_argument("--out", default="bench/out", help="where logs, stores and results go")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument(
        "--pg-database",
        default="workplane_ingest",
        help="scratch PostgreSQL database (dropped and recreated on every run)",
    )
    args = parser.parse_args()
    if args.inventory < 0:
        parser.error("--inventory: a number of workloads, 0 or more")
    kinds = [SQLITE, POSTGRESQL] if args.db == "both" else [args.db]
    results = [run(kind, args) for kind in kinds]
    out = Path(args.out) / "ingest.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
