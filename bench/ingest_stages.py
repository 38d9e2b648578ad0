"""Where the time of a sync batch goes, in process: parsing and validating the body, then applying it
(``store.ingest.apply_batch``: reading the stored state, building rows, SQL) and committing.

    .venv/bin/python -m bench.ingest_stages [--db sqlite|postgresql|both] [--workloads N] [--batch N]
        [--pg-database NAME]

One agent's batches (the bodies of ``bench.ingest``: each workload Pending, Running, Completed) go
straight to the route's parser and to ``apply_batch``, which checks, plans and writes a batch in one
write transaction (the route plans in a read transaction first, ``sync_batch``; with one agent the
work is the same plus a second read of the stored rows), with no HTTP and no concurrent readers. Prints
microseconds per observation for each stage, as wall-clock time and as this process's CPU time (on a
shared machine the CPU time is the steadier figure; on PostgreSQL the server's own work shows only in
the wall-clock time).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.ingest import _bodies, _cluster
from bench.load import POSTGRESQL, SQLITE, Target, ensure_exists, make_target, open_database, wipe
from workplane.api.sync import parse_batch
from workplane.store.catalog import CatalogCache
from workplane.store.ingest import apply_batch
from workplane.store.setup import prepare_store


def run(target: Target, args: argparse.Namespace) -> None:
    if target.kind == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    db = open_database(target)
    prepare_store(db, target.settings(), announce=False)
    cache = CatalogCache()
    cluster = _cluster(0)
    bodies = _bodies(cluster, args.workloads, args.batch)
    wall = {"parse": 0.0, "apply": 0.0, "commit": 0.0}
    cpu = {"parse": 0.0, "apply": 0.0, "commit": 0.0}
    for body in bodies:
        c0, t0 = time.process_time(), time.perf_counter()
        batch = parse_batch(body)
        c1, t1 = time.process_time(), time.perf_counter()
        with db.write() as conn:
            apply_batch(
                conn,
                cluster_id=cluster,
                cluster_name=batch.cluster_name,
                observations=batch.workloads,
                samples=batch.samples,
                resync=batch.full_resync,
                catalog=cache.get(conn),
                tenant_id=1,
                now_ms=int(time.time() * 1000),
            )
            c2, t2 = time.process_time(), time.perf_counter()
        c3, t3 = time.process_time(), time.perf_counter()
        for stage, (wa, wb, ca, cb) in {
            "parse": (t0, t1, c0, c1),
            "apply": (t1, t2, c1, c2),
            "commit": (t2, t3, c2, c3),
        }.items():
            wall[stage] += wb - wa
            cpu[stage] += cb - ca
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
