"""Where the time of a sync batch goes, in process, step by step as a sync worker runs it
(``services.ingest.sync_batch``): parsing and validating the body; planning it in a read transaction
(reading the stored rows, building every row, document, history entry and rollup move); writing it in a
write transaction (reading the stored rows again to check the plan, then the SQL); committing.

    .venv/bin/python -m bench.ingest_stages [--db sqlite|postgresql|both] [--workloads N] [--batch N]
        [--pg-database NAME]

One agent's batches (the bodies of ``bench.ingest``: each workload Pending, Running, Completed), with
no HTTP, no worker process and no concurrent readers; the garbage collector is set as a worker sets
it. Prints microseconds per observation for each step, as wall-clock time and as this process's CPU
time (on a shared machine the CPU time is the steadier figure; on PostgreSQL the server's own work shows
only in the wall-clock time).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from bench.ingest import _bodies, _cluster
from bench.load import POSTGRESQL, SQLITE, Target, ensure_exists, make_target, open_database, wipe
from workplane.services.ingest import parse_batch, write_prepared
from workplane.services.setup import prepare_store
from workplane.services.store_workers import tune_collector
from workplane.store.catalog import CatalogCache
from workplane.store.ingest import check_batch, prepare_batch

STAGES = ("parse", "plan", "write", "commit")


def run(target: Target, args: argparse.Namespace) -> None:
    if target.kind == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    db = open_database(target)
    prepare_store(db, target.settings(), announce=False)
    cache = CatalogCache()
    cluster = _cluster(0)
    bodies = _bodies(cluster, args.workloads, args.batch)
    tune_collector()  # as a sync worker process has it
    wall = dict.fromkeys(STAGES, 0.0)
    cpu = dict.fromkeys(STAGES, 0.0)
    for body in bodies:
        # The steps of ``services.ingest.sync_batch``, as a sync worker runs them, with the clock read
        # between them.
        marks = [(time.perf_counter(), time.process_time())]
        batch = parse_batch(body)
        marks.append((time.perf_counter(), time.process_time()))
        with db.read() as conn:
            checked = check_batch(
                batch,
                cluster_id=cluster,
                tenant_id=1,
                now_ms=int(time.time() * 1000),
                catalog=cache.get(conn),
            )
            plan = prepare_batch(conn, checked)
        marks.append((time.perf_counter(), time.process_time()))
        with db.write() as conn:
            write_prepared(conn, checked, plan)
            marks.append((time.perf_counter(), time.process_time()))
        marks.append((time.perf_counter(), time.process_time()))
        for stage, (before, after) in zip(STAGES, itertools.pairwise(marks), strict=True):
            wall[stage] += after[0] - before[0]
            cpu[stage] += after[1] - before[1]
    db.dispose()
    n = 3 * args.workloads
    total = sum(wall.values())
    stages = ", ".join(f"{s} {1e6 * wall[s] / n:.0f} ({1e6 * cpu[s] / n:.0f} CPU)" for s in wall)
    print(
        f"[{target.label}] µs per observation: {stages}; "
        f"total {1e6 * total / n:.0f} µs = {n / total:,.0f} observations/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_stages", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL, "both"], default="both")
    parser.add_argument("--workloads", type=int, default=6_000, help="workloads (3 observations each)")
    parser.add_argument("--batch", type=int, default=2_000, help="workload items per sync batch")
    parser.add_argument("--out", default="bench/out", help="where the scratch stores go")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--pg-database",
        default="workplane_ingest_stages",
        help="scratch PostgreSQL database (dropped and recreated on every run)",
    )
    args = parser.parse_args()
    for kind in [SQLITE, POSTGRESQL] if args.db == "both" else [args.db]:
        target = make_target(
            kind,
            size=args.workloads,
            out_dir=Path(args.out) / "ingest-stages",
            pg_url=args.pg_url,
            pg_database=args.pg_database,
        )
        run(target, args)


if __name__ == "__main__":
    main()
