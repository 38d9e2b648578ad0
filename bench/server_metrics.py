"""What the server's own metrics (``GET /metrics``) cost: the scrape, and list requests/s with them on.

    .venv/bin/python -m bench.server_metrics [--size 20000] [--rounds 3] [--seconds 8] [--clients 4]

On the SQLite inventory of ``--size`` workloads (loaded as ``python -m bench load`` does, skipped when
already there), ``workplane serve`` (one process) is started in turn with ``server_metrics = off`` (no
counting middleware, no route) and ``loopback`` (every request counted and timed), ``--rounds`` times
each, alternating, so that the machine's drift falls on both alike. Each run drives the list case a1
(``bench/cases.py``: one project's running workloads, newest first, a 50-row page) with ``--clients``
keep-alive connections for ``--seconds``; with the metrics on, a scraper reads ``/metrics`` every
second meanwhile (Prometheus' usual period is 15 s or more: this is the harsher case). Then, on the
last server with the metrics on (every series the run made is there), 300 scrapes one after another
over one keep-alive connection: their latency, and the size of the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import threading
import time
from pathlib import Path

from bench import inventory
from bench.cases import build_cases
from bench.http_load import Server, _drive, get_token, load_average, request
from bench.load import SQLITE, Target, load, make_target, open_database
from workplane.app import create_app
from workplane.server_metrics import UNMATCHED, ServerMetrics
from workplane.settings import Settings

OUT = Path(__file__).resolve().parent / "out"


def _scrape_timings(port: int, count: int) -> tuple[list[float], int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings, size = [], 0
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            connection.request("GET", "/metrics")
            answer = connection.getresponse()
            body = answer.read()
            timings.append((time.perf_counter() - t0) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"/metrics answered {answer.status}: {body[:200]!r}")
            size = len(body)
    finally:
        connection.close()
    return timings, size


class _Scraper(threading.Thread):
    """Reads /metrics every ``every_s`` until stopped, as Prometheus would."""

    def __init__(self, port: int, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.port, self.every_s = port, every_s
        self.stopped = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            status, _ = request("GET", self.port, "/metrics")
            self.scrapes += status == 200


def in_process(target: Target) -> str:
    """The work itself, without HTTP or the machine's other load: one request's counting, and one
    scrape's rendering with every route of the application counted under three statuses."""
    metrics = ServerMetrics()
    app = create_app(Settings(data_dir=target.data_dir, database_url=target.url, migrate_on_start=False))
    # Every route the application defines, with its own methods, as if each had answered 200, 401 and
    # 404 (a server that has run a while), plus the dashboard, the description and unmatched paths.
    defined = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    extra = ["/", "/ui/{asset:path}", "/metrics", "/api/docs", "/api/openapi.json"]
    pairs = [*defined, *(("GET", path) for path in extra), ("GET", UNMATCHED), ("POST", UNMATCHED)]
    for method, template in pairs:
        for status in (200, 401, 404):
            metrics.observe_request(method, template, status, 0.002)
    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        metrics.observe_request("GET", "/api/v1/workloads", 200, 0.002)
    observe_us = (time.perf_counter() - t0) / n * 1e6
    db = open_database(target)
    try:
        renders, cpu = [], []
        for _ in range(300):
            t0, c0 = time.perf_counter(), time.process_time()
            body, _ = metrics.render(db, None)
            renders.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    finally:
        db.dispose()
    return (
        f"in process: counting one request {observe_us:.2f} µs; rendering {len(pairs)} (method, route) "
        f"x 3 statuses ({len(body):,} bytes) p50 {statistics.median(renders):.2f} ms "
        f"(CPU {statistics.median(cpu):.2f} ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_metrics", description=__doc__)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args(argv)

    plan = inventory.build_plan(args.size, inventory.read_trace())
    target = make_target(SQLITE, size=args.size, out_dir=args.out, pg_url="", pg_database=None)
    load(target, plan, batch_size=2000, force=False)
    case = next(c for c in build_cases(plan) if c.key == "a1")
    print(in_process(target), flush=True)
    if args.in_process_only:
        return 0
    rps: dict[str, list[float]] = {"off": [], "loopback": []}
    cpu_ms: dict[str, list[float]] = {"off": [], "loopback": []}
    scrape_ms: list[float] = []
    size = 0
    for round_ in range(args.rounds):
        for mode in ("off", "loopback"):
            log = args.out / f"server-metrics-{mode}.log"
            with Server(target, workers=1, log_path=log, env={"WORKPLANE_SERVER_METRICS": mode}) as server:
                token, _ = get_token(target, server.port)
                raw = (
                    f"GET {case.url()} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
                ).encode()
                scraper = _Scraper(server.port) if mode == "loopback" else None
                if scraper is not None:
                    scraper.start()
                drive = asyncio.run(_drive(server, raw, case, args.clients, args.seconds, args.warmup))
                if scraper is not None:
                    scraper.stopped.set()
                    scraper.join()
                if drive.errors:
                    raise RuntimeError(f"{drive.errors} requests failed; see {log}")
                rate = len(drive.latencies) / drive.seconds
                per_request = 1000 * drive.server_cpu_s / max(len(drive.latencies), 1)
                rps[mode].append(rate)
                cpu_ms[mode].append(per_request)
                print(
                    f"round {round_ + 1} {mode:8s} {rate:7.0f} requests/s, server CPU {per_request:.3f} "
                    f"ms/request, load {load_average():.2f}",
                    flush=True,
                )
                if mode == "loopback" and round_ == args.rounds - 1:
                    scrape_ms, size = _scrape_timings(server.port, 300)
    off, on = statistics.median(rps["off"]), statistics.median(rps["loopback"])
    cpu_off, cpu_on = statistics.median(cpu_ms["off"]), statistics.median(cpu_ms["loopback"])
    ordered = sorted(scrape_ms)
    print(
        f"\nlist a1, {args.clients} clients, median of {args.rounds} rounds: off {off:.0f}/s, "
        f"loopback {on:.0f}/s ({(on - off) / off * 100:+.1f} %); server CPU per request: off "
        f"{cpu_off:.3f} ms, loopback {cpu_on:.3f} ms ({(cpu_on - cpu_off) / cpu_off * 100:+.1f} %)\n"
        f"/metrics scrape ({size:,} bytes): p50 {statistics.median(ordered):.2f} ms, "
        f"p90 {ordered[int(len(ordered) * 0.9)]:.2f} ms, p99 {ordered[int(len(ordered) * 0.99)]:.2f} ms\n"
        f"load average at the end: {load_average():.2f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
