"""The Prometheus back end: a workload's metrics answered through a real Prometheus.

    .venv/bin/python -m bench.prometheus [--pods 8] [--days 7] [--queries 60]

Backfills Debian's Prometheus (``scripts/install-prometheus``) with ``--days`` of 15-second series of
a workload of ``--pods`` pods, one GPU each (DCGM utilisation, frame buffer and NVLink, cAdvisor CPU
and working set, kube-state-metrics requests: tests/prometheus_server.py generates them), starts it on
a loopback port, and a workplane app in process (``metrics_backend = prometheus``, a fresh SQLite
store holding the workload and its pods). Then it times ``GET /workloads/{id}/metrics`` over the
whole range at 1,000 points, Prometheus' work included:

- GPU_UTILIZATION alone (target: p50 <= 50 ms at 8 pods x 7 days);
- every type of one request (the five measured types, fetched concurrently, and the eight derived
  ones from the store);
- the same five measured types fetched one after another (``PrometheusSource.measure`` a type at a
  time), to show what fetching them concurrently saves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.api.test_pods import pod
from tests.api.test_sync import obs, sync, wid
from tests.conftest import admin_client
from tests.prometheus_server import Fleet, Pod, PrometheusServer, missing

from bench.report import machine
from workplane.app import build_services
from workplane.domain.timefmt import format_ms, parse_to_ms
from workplane.metrics.prometheus import PrometheusSource
from workplane.metrics.sampling import grid
from workplane.metrics.targets import pods_of
from workplane.metrics.types import WorkloadMetricType
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store.database import create_database

T0 = parse_to_ms("2026-11-02T00:00:00Z")
MEASURED = ("GPU_UTILIZATION", "GPU_MEMORY_USAGE_BYTES", "NVLINK_BANDWIDTH_TOTAL", "CPU_USAGE_CORES")
MEASURED += ("CPU_MEMORY_USAGE_BYTES",)
DERIVED = (
    "GPU_ALLOCATION",
    "GPU_MEMORY_REQUEST_BYTES",
    "CPU_REQUEST_CORES",
    "CPU_LIMIT_CORES",
    "CPU_MEMORY_REQUEST_BYTES",
    "CPU_MEMORY_LIMIT_BYTES",
    "POD_COUNT",
    "RUNNING_POD_COUNT",
)


def _timed(queries: int, call: Any) -> dict[str, float]:
    call()  # connections opened, first-use costs paid
    times = []
    for _ in range(queries):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    times.sort()
    return {
        "p50_ms": round(1000 * statistics.median(times), 1),
        "p90_ms": round(1000 * times[int(0.9 * (len(times) - 1))], 1),
    }


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    samples = args.days * 24 * 240
    fleet = Fleet("runai-team-a", [Pod(i, f"job-1-pod-{i + 1}") for i in range(args.pods)], T0, samples)
    server = PrometheusServer(root / "prometheus", [fleet])
    began = time.perf_counter()
    server.backfill()
    backfill_s = time.perf_counter() - began
    server.start()
    try:
        settings = Settings(
            data_dir=root / "data",
            retention_interval_s=0,
            sync_processes=0,
            metrics_backend="prometheus",
            prometheus_url=server.url,
        )
        database = create_database(settings)
        prepare_store(database, settings, announce=False)
        services = build_services(settings, database)
        start, end = T0, T0 + samples * 15_000
        with admin_client(settings, services) as client:
            pods = [pod(i + 1, 1, 1, name=f"job-1-pod-{i + 1}") for i in range(args.pods)]
            workload = obs(1, 1, allocatedResources={"gpu": args.pods}, observedAt=format_ms(T0))
            sync(client, {"workloads": [workload], "pods": pods})
            return _measure(args, client, services, start, end) | {
                "backfill_s": round(backfill_s, 1),
                "series_samples": samples,
            }
    finally:
        server.stop()


def _measure(
    args: argparse.Namespace, client: TestClient, services: Any, start: int, end: int
) -> dict[str, Any]:
    def request(types: tuple[str, ...]) -> Any:
        def call() -> None:
            answer = client.get(
                f"/api/v1/workloads/{wid(1)}/metrics",
                params={
                    "metricType": ",".join(types),
                    "start": format_ms(start),
                    "end": format_ms(end),
                    "numberOfSamples": 1000,
                },
            )
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["measurements"][0]["values"]) >= 999

        return call

    with services.db.read() as conn:
        target = pods_of(conn, wid(1))
    assert target is not None
    assert services.prometheus is not None
    source = PrometheusSource(services.prometheus, target)
    window = grid(start, end, 1000)

    def one_after_another() -> None:
        for metric in MEASURED:
            assert source.measure([WorkloadMetricType(metric)], window)

    result = {
        "gpu_utilization": _timed(args.queries, request(("GPU_UTILIZATION",))),
        "all_types": _timed(args.queries, request(MEASURED + DERIVED)),
        "measured_concurrently_in_process": _timed(
            args.queries, lambda: source.measure([WorkloadMetricType(m) for m in MEASURED], window)
        ),
        "measured_one_after_another_in_process": _timed(args.queries, one_after_another),
    }
    for metric in MEASURED:
        only = [WorkloadMetricType(metric)]
        result[f"{metric.lower()}_in_process"] = _timed(
            args.queries, lambda only=only: source.measure(only, window)
        )
    for name, figures in result.items():
        print(f"{name}: p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prometheus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=8, help="pods of the workload (one GPU each)")
    parser.add_argument("--days", type=int, default=7, help="days of 15-second series")
    parser.add_argument("--queries", type=int, default=60, help="requests per figure")
    parser.add_argument("--out", default="bench/out", help="where the results go")
    args = parser.parse_args()
    if missing():
        raise SystemExit(
            f"Prometheus is not installed ({', '.join(missing())}): run scripts/install-prometheus"
        )
    print(f"backfilling {args.pods} pods x {args.days} days of 15 s series ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="workplane-bench-prometheus-") as root:
        result = run(args, Path(root))
    result |= {
        "pods": args.pods,
        "days": args.days,
        "load_average": os.getloadavg(),
        "machine": machine(None),
    }
    out = Path(args.out) / "prometheus.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
