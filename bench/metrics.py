"""The metrics store: ingestion through the sync protocol, bytes on disk per sample, and query latency.

    .venv/bin/python -m bench.metrics [--db sqlite|postgresql|both] [--workloads 100] [--days 7]

Starts ``workplane serve`` on a fresh store (background maintenance off, so the figures are not
disturbed), creates ``--workloads`` GPU workloads in two clusters, then two agents post ``--days``
of 15-second samples of the five measured types per workload (GPU_UTILIZATION,
GPU_MEMORY_USAGE_BYTES, CPU_USAGE_CORES, CPU_MEMORY_USAGE_BYTES, NVLINK_BANDWIDTH_TOTAL), ``--batch-minutes``
of every series per batch, oldest first, ending now. At the defaults that is 100 x 5 x 40,320 =
20,160,000 samples. Request bodies are built and serialised before the clock starts.

Sample values are generated (seeded, deterministic) to look like what DCGM and cAdvisor report:
utilisation as the mean of the GPUs' integer percents around a slowly varying level with noise,
evaluation dips and idle stretches; GPU memory in 2 MiB allocator steps; CPU usage in millicores with
noise; resident memory as a random walk in 4 KiB pages; NVLink bytes/s with 5 % noise on multi-GPU
workloads and 0 on single-GPU ones. Times are on the 15-second grid (``--jitter-ms`` adds jitter).

Then, in process on the same store: the maintenance job's compaction (timed), bytes on disk per sample
(SQLite: the pages of the table and its indexes from ``dbstat``; PostgreSQL: ``pg_total_relation_size``,
which includes TOAST and indexes, after ``VACUUM FULL`` of the table), and the latency of one workload's
full-range GPU_UTILIZATION at 1,000 points: the route's work in process (read transaction, store,
sampling, JSON) and the whole request over HTTP.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench.http_load import Server, cpu_seconds, get_token, process_tree
from bench.ingest import post_batches
from bench.load import POSTGRESQL, SQLITE, Target, ensure_exists, make_target, open_database, wipe
from workplane.api.metrics import render_json
from workplane.domain.scopes import ScopeSet
from workplane.domain.timefmt import format_ms, now_ms
from workplane.metrics.query import workload_metrics
from workplane.metrics.sampling import grid
from workplane.metrics.store import ChunkStore, workload_facts
from workplane.metrics.types import WorkloadMetricType
from workplane.services.retention import maintain_metrics_once

STEP_MS = 15_000
TYPES = (
    "GPU_UTILIZATION",
    "GPU_MEMORY_USAGE_BYTES",
    "CPU_USAGE_CORES",
    "CPU_MEMORY_USAGE_BYTES",
    "NVLINK_BANDWIDTH_TOTAL",
)
MIB2 = 2 * 2**20
PAGE = 4096


def _cluster(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"workplane-bench-metrics-{n}"))


def _workload_id(cluster: str, n: int) -> str:
    return str(uuid.uuid5(uuid.UUID(cluster), str(n)))


class _Workload:
    """The state of one workload's generators (each series continues across batches)."""

    def __init__(self, n: int) -> None:
        self.rng = random.Random(n)
        self.gpus = (1, 1, 1, 2, 4, 8)[n % 6]
        self.level = self.rng.uniform(35, 90)
        self.period = self.rng.uniform(2, 12) * 3600_000
        self.idle = n % 10 == 0  # one in ten sits idle for long stretches
        self.memory_pages = self.rng.randint(8_000, 38_000)  # 2 MiB pages per GPU (16..76 GiB)
        self.cores = self.rng.uniform(1, 12)
        self.rss_pages = self.rng.randint(2_000_000, 8_000_000)  # 8..32 GiB
        self.nvlink = self.rng.uniform(5e9, 40e9) if self.gpus > 1 else 0.0

    def utilisation(self, t: int) -> float:
        if self.idle and (t // 3600_000) % 6 < 2:
            return 0.0
        level = self.level + 12 * math.sin(2 * math.pi * t / self.period)
        if (t // 60_000) % 30 < 2:  # evaluation every half hour
            level = 8.0
        noise = self.rng.gauss(0, 3 * math.sqrt(self.gpus))
        total = min(100 * self.gpus, max(0, round(level * self.gpus + noise)))
        return total / self.gpus  # the mean of the GPUs' integer percents

    def gpu_memory(self, t: int) -> float:
        if self.rng.random() < 0.05:
            self.memory_pages = max(1_000, self.memory_pages + self.rng.randint(-64, 64))
        if self.rng.random() < 0.001:
            self.memory_pages = self.rng.randint(8_000, 38_000)
        return float(self.memory_pages * MIB2 * self.gpus)

    def cpu(self, t: int) -> float:
        return round(max(0.0, self.cores + self.rng.gauss(0, 0.15)), 3)

    def rss(self, t: int) -> float:
        self.rss_pages = max(100_000, self.rss_pages + round(self.rng.gauss(0, 200)))
        return float(self.rss_pages * PAGE)

    def nvlink_rate(self, t: int) -> float:
        if not self.nvlink:
            return 0.0
        return float(round(self.nvlink * max(0.0, 1 + self.rng.gauss(0, 0.05))))

    def values(self, metric: str, times: list[int]) -> list[float]:
        produce = {
            "GPU_UTILIZATION": self.utilisation,
            "GPU_MEMORY_USAGE_BYTES": self.gpu_memory,
            "CPU_USAGE_CORES": self.cpu,
            "CPU_MEMORY_USAGE_BYTES": self.rss,
            "NVLINK_BANDWIDTH_TOTAL": self.nvlink_rate,
        }[metric]
        return [produce(t) for t in times]


def _workload_item(workload_id: str, n: int, gpus: int, created: int) -> dict[str, Any]:
    return {
        "id": workload_id,
        "revision": 1,
        "name": f"train-{n}",
        "projectId": f"p{n % 10}",
        "projectName": f"project-{n % 10}",
        "departmentId": f"d{n % 2}",  # a department belongs to one cluster, as its projects do
        "departmentName": "research",
        "type": "Training",
        "phase": "Running",
        "createdAt": format_ms(created),
        "runningPods": 1,
        "requestedPods": {"number": 1},
        "allocatedResources": {"gpu": gpus},
    }


def _plan(args: argparse.Namespace) -> tuple[dict[str, list[bytes]], dict[str, bytes], int, int, int]:
    """(sample batches per cluster, the workload batch per cluster, samples, first and last time)."""
    end = now_ms() // STEP_MS * STEP_MS
    start = end - args.days * 86_400_000 + STEP_MS
    clusters = [_cluster(i) for i in range(args.agents)]
    owners = {n: clusters[n % len(clusters)] for n in range(args.workloads)}
    state = {n: _Workload(n) for n in range(args.workloads)}
    jitter = random.Random(1)
    creations = {
        c: orjson.dumps(
            {
                "clusterName": f"bench-{c[:8]}",
                "workloads": [
                    _workload_item(_workload_id(c, n), n, state[n].gpus, start - 3600_000)
                    for n in range(args.workloads)
                    if owners[n] == c
                ],
            }
        )
        for c in clusters
    }
    batches: dict[str, list[bytes]] = {c: [] for c in clusters}
    per_batch = args.batch_minutes * 60_000
    total = 0
    for batch_start in range(start, end + 1, per_batch):
        grid_times = list(range(batch_start, min(batch_start + per_batch, end + 1), STEP_MS))
        for c in clusters:
            series = []
            for n in range(args.workloads):
                if owners[n] != c:
                    continue
                for metric in TYPES:
                    times = grid_times
                    if args.jitter_ms:
                        times = [t + jitter.randint(0, args.jitter_ms) for t in grid_times]
                    values = state[n].values(metric, times)
                    total += len(values)
                    series.append(
                        {
                            "workloadId": _workload_id(c, n),
                            "metric": metric,
                            "timestamps": times,
                            "values": values,
                        }
                    )
            batches[c].append(orjson.dumps({"samples": series}))
    return batches, creations, total, start, end


def _chunk_bytes(target: Target, engine: sa.Engine) -> dict[str, int]:
    if target.kind == SQLITE:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = conn.exec_driver_sql(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name IN "
                "('metric_chunks', 'sqlite_autoindex_metric_chunks_1', 'ix_metric_chunks_end') GROUP BY name"
            ).all()
        return {str(r[0]): int(r[1]) for r in rows}
    with engine.connect() as conn:
        table = conn.exec_driver_sql("SELECT pg_table_size('metric_chunks')").scalar_one()
        indexes = conn.exec_driver_sql("SELECT pg_indexes_size('metric_chunks')").scalar_one()
        total = conn.exec_driver_sql("SELECT pg_total_relation_size('metric_chunks')").scalar_one()
    return {"table incl. TOAST": int(table), "indexes": int(indexes), "total": int(total)}


def _per_type_bytes(engine: sa.Engine) -> dict[str, float]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT metric, sum(length(data)), sum(count) FROM metric_chunks GROUP BY metric"
        ).all()
    return {str(r[0]): round(int(r[1]) / int(r[2]), 2) for r in rows}


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run(kind: str, args: argparse.Namespace, plan: Any) -> dict[str, Any]:
    batches, creations, total, start, end = plan
    target = make_target(
        kind,
        size=args.workloads,
        out_dir=Path(args.out) / "metrics",
        pg_url=args.pg_url,
        pg_database="workplane_metrics",
    )
    result: dict[str, Any] = {
        "database": target.label,
        "samples": total,
        "workloads": args.workloads,
        "days": args.days,
    }
    if args.query_only:
        with Server(target, workers=1, log_path=Path(args.out) / f"metrics-{kind}.log") as server:
            token, _ = get_token(target, server.port)
            db = open_database(target)
            with db.engine.connect() as conn:
                first, last = conn.exec_driver_sql(
                    "SELECT min(start_ms), max(end_ms) FROM metric_chunks"
                ).one()
            return _queries(target, args, server, token, db, int(first), int(last), result)
    if kind == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    # No background maintenance in the server while measuring: compaction is run (and timed) below.
    (target.data_dir / "workplane.toml").write_text("retention_interval_s = 0\n")
    with Server(target, workers=1, log_path=Path(args.out) / f"metrics-{kind}.log") as server:
        token, _ = get_token(target, server.port)
        errors: list[str] = []
        for cluster, body in creations.items():
            post_batches(server.port, token, cluster, [body], errors)
        started = time.perf_counter()
        threads = [
            threading.Thread(target=post_batches, args=(server.port, token, c, bodies, errors))
            for c, bodies in batches.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise SystemExit(f"[{target.label}] a batch failed: {errors[0]}")
        result["ingest_seconds"] = round(elapsed, 1)
        result["ingest_samples_per_s"] = round(total / elapsed)
        print(
            f"[{target.label}] {total:,} samples in {elapsed:.1f} s = {total / elapsed:,.0f} samples/s",
            flush=True,
        )

        db = open_database(target)
        before = _chunk_bytes(target, db.engine)
        with db.engine.connect() as conn:
            result["chunks_before_compaction"] = conn.exec_driver_sql(
                "SELECT count(*) FROM metric_chunks"
            ).scalar_one()
        compact_started = time.perf_counter()
        maintain_metrics_once(db, 36_500)
        result["compaction_seconds"] = round(time.perf_counter() - compact_started, 1)
        if target.kind == POSTGRESQL:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM FULL ANALYZE metric_chunks")
        after = _chunk_bytes(target, db.engine)
        with db.engine.connect() as conn:
            result["chunks_after_compaction"] = conn.exec_driver_sql(
                "SELECT count(*) FROM metric_chunks"
            ).scalar_one()
        result["bytes_before_compaction"] = before
        result["bytes_after_compaction"] = after
        key = "total" if target.kind == POSTGRESQL else None
        for label, sizes in (("before", before), ("after", after)):
            on_disk = sizes[key] if key else sum(sizes.values())
            result[f"bytes_per_sample_{label}_compaction"] = round(on_disk / total, 3)
        result["encoded_bytes_per_sample_by_type"] = _per_type_bytes(db.engine)
        r = result
        print(
            f"[{target.label}] on disk: {r['bytes_per_sample_before_compaction']} B/sample as ingested "
            f"({r['chunks_before_compaction']:,} chunks), {r['bytes_per_sample_after_compaction']} "
            f"B/sample after compaction ({r['chunks_after_compaction']:,} chunks, "
            f"{r['compaction_seconds']} s); encoded by type: {r['encoded_bytes_per_sample_by_type']}",
            flush=True,
        )

        return _queries(target, args, server, token, db, start, end, result)


def _queries(
    target: Target,
    args: argparse.Namespace,
    server: Server,
    token: str,
    db: Any,
    start: int,
    end: int,
    result: dict[str, Any],
) -> dict[str, Any]:
    # One workload's whole range of GPU_UTILIZATION at 1,000 points.
    ids = [_workload_id(_cluster(n % args.agents), n) for n in range(args.workloads)]
    window = grid(start, end, 1000)
    in_process: list[float] = []
    cpu: list[float] = []
    for i in range(args.queries):
        workload = ids[i % len(ids)]
        began, began_cpu = time.perf_counter(), time.thread_time()
        with db.read() as conn:
            facts = workload_facts(conn, workload, scope=ScopeSet.everything())
            assert facts is not None
            answer = workload_metrics(
                conn, ChunkStore(conn), facts, [WorkloadMetricType.GPU_UTILIZATION], window, now_ms()
            )
        body = render_json(answer)
        in_process.append(time.perf_counter() - began)
        cpu.append(time.thread_time() - began_cpu)
        assert len(answer.measurements[0].points) >= 990, len(answer.measurements[0].points)
        assert body
    http_times: list[float] = []
    conn_http = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    assert server.process is not None
    server_cpu = cpu_seconds(process_tree(server.process.pid))
    query = f"metricType=GPU_UTILIZATION&numberOfSamples=1000&start={format_ms(start)}&end={format_ms(end)}"
    for i in range(args.queries):
        began = time.perf_counter()
        conn_http.request(
            "GET",
            f"/api/v1/workloads/{ids[i % len(ids)]}/metrics?{query}",
            headers={"Authorization": f"Bearer {token}"},
        )
        response = conn_http.getresponse()
        payload = response.read()
        http_times.append(time.perf_counter() - began)
        assert response.status == 200, payload[:300]
    conn_http.close()
    server_cpu = cpu_seconds(process_tree(server.process.pid)) - server_cpu
    db.dispose()
    # CPU time does not depend on how busy the shared machine is (wall time does, a lot): the
    # in-process figure is this thread's (the database's own work on PostgreSQL is not in it), the
    # HTTP one the server process's per request.
    result["query_in_process_cpu_p50_ms"] = round(1000 * statistics.median(cpu), 2)
    result["query_http_server_cpu_ms"] = round(1000 * server_cpu / args.queries, 2)
    for label, times in (("in_process", in_process), ("http", http_times)):
        result[f"query_{label}_p50_ms"] = round(1000 * statistics.median(times), 2)
        result[f"query_{label}_p99_ms"] = round(1000 * _percentile(times, 0.99), 2)
    print(
        f"[{target.label}] {args.days}-day GPU_UTILIZATION at 1,000 points: in process p50 "
        f"{result['query_in_process_p50_ms']} ms (p99 {result['query_in_process_p99_ms']}), over HTTP p50 "
        f"{result['query_http_p50_ms']} ms (p99 {result['query_http_p99_ms']}); CPU per query: in process "
        f"p50 {result['query_in_process_cpu_p50_ms']} ms, server {result['query_http_server_cpu_ms']} ms",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", choices=[SQLITE, POSTGRESQL, "both"], default="both", help="store(s) to measure"
    )
    parser.add_argument("--workloads", type=int, default=100, help="GPU workloads")
    parser.add_argument("--days", type=int, default=7, help="days of 15-second samples per series")
    parser.add_argument("--agents", type=int, default=2, help="concurrent agents, one cluster each")
    parser.add_argument("--batch-minutes", type=int, default=60, help="minutes of every series per batch")
    parser.add_argument("--jitter-ms", type=int, default=0, help="random delay added to each sample time")
    parser.add_argument("--queries", type=int, default=60, help="requests per latency measurement")
    parser.add_argument(
        "--query-only", action="store_true", help="only the latency, on the store a previous run left"
    )
    parser.add_argument("--out", default="bench/out", help="where logs, stores and results go")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the benchmark database on",
    )
    args = parser.parse_args()
    print(f"generating {args.workloads} workloads x {len(TYPES)} types x {args.days} days ...", flush=True)
    began = time.perf_counter()
    plan = _plan(args) if not args.query_only else ({}, {}, 0, 0, 0)
    print(f"{plan[2]:,} samples generated and serialised in {time.perf_counter() - began:.0f} s", flush=True)
    kinds = [SQLITE, POSTGRESQL] if args.db == "both" else [args.db]
    results = [run(kind, args, plan) for kind in kinds]
    out = Path(args.out) / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
