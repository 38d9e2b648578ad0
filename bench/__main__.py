"""``python -m bench``: load the ITP-based inventory and measure the workload read API.

    python -m bench run                 # 1M workloads on SQLite and PostgreSQL: load if needed, measure
    python -m bench run --size 20000    # a quick run
    python -m bench load --db sqlite    # only load
    python -m bench explain             # query plans of the measured requests

See bench/README.md for what is measured and how the inventory is built.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench import http_load, inventory
from bench.cases import Case, build_cases, scan_case
from bench.load import (
    DEFAULT_PG_URL,
    DEFAULT_SIZE,
    POSTGRESQL,
    SQLITE,
    Target,
    load,
    make_target,
    open_database,
)
from bench.measure import Budget, Timing, measure_asgi, measure_route, services_for
from bench.report import machine, render_report
from workplane.store import migrate

OUT_DIR = Path(__file__).resolve().parent / "out"


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _workers(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of process counts, e.g. 1,2") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of process counts, e.g. 1,2")
    return values


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        choices=[SQLITE, POSTGRESQL, "both"],
        default="both",
        help="which database(s) to load / measure (default: both)",
    )
    parser.add_argument(
        "--size",
        type=_positive,
        default=DEFAULT_SIZE,
        help=f"number of workloads in the inventory (default: {DEFAULT_SIZE:,}); smaller sizes are a "
        "prefix of the same deterministic sequence, stored separately",
    )
    parser.add_argument(
        "--force-reload",
        action="store_true",
        help="wipe the store and load the inventory again even if it is already there",
    )
    parser.add_argument(
        "--batch",
        type=_positive,
        default=2000,
        help="workloads per create_workloads call and write transaction (default: 2000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT_DIR,
        help="directory for the SQLite store, server data directories, logs and results "
        "(default: bench/out, git-ignored)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="SQLAlchemy URL of a PostgreSQL database to connect to for CREATE/DROP DATABASE; the "
        f"inventory goes into --pg-database on the same server (default: {DEFAULT_PG_URL})",
    )
    parser.add_argument(
        "--pg-database",
        default=None,
        help="PostgreSQL database holding the inventory (default: workplane_bench for the full size, "
        "workplane_bench_<size> otherwise); created if missing, dropped and recreated by --force-reload",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=inventory.TRACE_FILE,
        help="the ITP raw-traces.tar.gz (default: the copy shipped in workplane/data/traces/itp)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark of the workload store and read API on an inventory built from the "
        "Microsoft ITP GPU-cluster trace (see bench/README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="load the inventory where it is missing, then measure and print the results table"
    )
    _add_store_flags(run)
    run.add_argument(
        "--reps",
        type=_positive,
        default=300,
        help="at most this many timed repetitions per request and mode (default: 300)",
    )
    run.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="stop repeating a request after this many seconds, once 10 repetitions are done "
        "(5 for requests over 0.5 s) (default: 5)",
    )
    run.add_argument(
        "--cases",
        default=None,
        help="comma-separated subset of the in-process requests to run, e.g. a1,c1,d1 (default: all)",
    )
    run.add_argument(
        "--no-asgi", action="store_true", help="skip the in-process requests through the ASGI app"
    )
    run.add_argument("--no-http", action="store_true", help="skip the load over real HTTP")
    run.add_argument(
        "--http-seconds",
        type=float,
        default=15.0,
        help="measured duration of each HTTP load (default: 15)",
    )
    run.add_argument(
        "--http-warmup",
        type=float,
        default=2.0,
        help="seconds of load before measuring starts (default: 2)",
    )
    run.add_argument(
        "--clients",
        type=_positive,
        default=8,
        help="concurrent keep-alive HTTP clients (default: 8)",
    )
    run.add_argument(
        "--reconnect-every",
        type=int,
        default=0,
        help="each HTTP client opens a new connection after this many requests; 0 keeps one connection "
        "for the whole run (default: 0). With several server processes, keep-alive connections stay with "
        "the process that accepted them, which may be one process for all of them",
    )
    run.add_argument(
        "--workers",
        type=_workers,
        default=[1, 2],
        help="server process counts to load over HTTP, comma-separated (default: 1,2)",
    )
    run.set_defaults(handler=cmd_run)

    load_cmd = commands.add_parser("load", help="only load the inventory (skipped where it is already there)")
    _add_store_flags(load_cmd)
    load_cmd.set_defaults(handler=cmd_load)

    explain = commands.add_parser(
        "explain", help="print the SQL and query plans of the measured requests (loads first if needed)"
    )
    _add_store_flags(explain)
    explain.add_argument(
        "--cases",
        default=None,
        help="comma-separated subset of requests, e.g. a2,b1,c4 (default: all)",
    )
    explain.add_argument(
        "--fields",
        action="store_true",
        help="the cases of `bench fields` instead; --cases then names them, e.g. 'list completedAt>='",
    )
    explain.set_defaults(handler=cmd_explain)

    profile = commands.add_parser(
        "profile", help="cProfile one request repeated in process (route function or through the ASGI app)"
    )
    _add_store_flags(profile)
    profile.add_argument("--case", default="a1", help="which request, e.g. a1, b1, d1 (default: a1)")
    profile.add_argument(
        "--fields",
        action="store_true",
        help="a case of `bench fields` instead; --case then names it, e.g. 'list completedAt>='",
    )
    profile.add_argument(
        "--mode",
        choices=["route", "asgi"],
        default="asgi",
        help="profile the route function alone or the whole request through the ASGI app (default: asgi)",
    )
    profile.add_argument(
        "--reps", type=_positive, default=300, help="repetitions under the profiler (default: 300)"
    )
    profile.add_argument(
        "--top",
        type=_positive,
        default=35,
        help="functions to print, by own and by cumulative time (default: 35)",
    )
    profile.set_defaults(handler=cmd_profile)

    fields = commands.add_parser(
        "fields", help="every sortable and filterable workload field: sorts, filters and counts (route)"
    )
    _add_store_flags(fields)
    fields.add_argument(
        "--reps", type=_positive, default=30, help="at most this many timed repetitions (default: 30)"
    )
    fields.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="stop repeating a request after this many seconds, once 3 repetitions are done (default: 1)",
    )
    fields.add_argument(
        "--only", default=None, help="only the cases whose name contains this text, e.g. 'sort priority'"
    )
    fields.set_defaults(handler=cmd_fields)
    return parser


def _targets(args: argparse.Namespace) -> list[Target]:
    kinds = [SQLITE, POSTGRESQL] if args.db == "both" else [args.db]
    return [
        make_target(k, size=args.size, out_dir=args.out, pg_url=args.pg_url, pg_database=args.pg_database)
        for k in kinds
    ]


def _plan(args: argparse.Namespace) -> inventory.Plan:
    t0 = time.perf_counter()
    trace = inventory.read_trace(args.trace)
    plan = inventory.build_plan(args.size, trace)
    live = plan.phase_counts()
    print(
        f"inventory: {plan.size:,} workloads from {len(trace):,} ITP jobs x {plan.tiles} tile(s); snapshot "
        f"{datetime.fromtimestamp(plan.snapshot_s, UTC):%Y-%m-%dT%H:%M:%SZ}; live by phase "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(live.items()))
        + f"; deleted {sum(plan.phase_counts(live=False).values()):,}"
        + f" (planned in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    return plan


def _select(cases: list[Case], wanted: str | None) -> list[Case]:
    if not wanted:
        return cases
    keys = {k.strip() for k in wanted.split(",") if k.strip()}
    unknown = keys - {c.key for c in cases}
    if unknown:
        raise SystemExit(
            f"unknown case(s): {', '.join(sorted(unknown))}; known: {', '.join(c.key for c in cases)}"
        )
    return [c for c in cases if c.key in keys]


def cmd_load(args: argparse.Namespace) -> int:
    plan = _plan(args)
    for target in _targets(args):
        load(target, plan, batch_size=args.batch, force=args.force_reload)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from bench.explain import explain_all
    from bench.fields import build_field_cases

    plan = _plan(args)
    cases = _select(build_field_cases(plan) if args.fields else build_cases(plan), args.cases)
    args.out.mkdir(parents=True, exist_ok=True)
    for target in _targets(args):
        load(target, plan, batch_size=args.batch, force=args.force_reload)
        svc = services_for(target.settings())
        try:
            text = explain_all(svc, cases)
        finally:
            svc.db.dispose()
        path = args.out / f"explain-{target.kind}-{args.size}.txt"
        path.write_text(text + "\n")
        print(f"== {target.label}\n{text}\n(saved to {path})", flush=True)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import cProfile
    import io
    import pstats

    from bench.fields import build_field_cases
    from bench.measure import profile_asgi, route_call

    plan = _plan(args)
    (case,) = _select(build_field_cases(plan) if args.fields else build_cases(plan), args.case)
    for target in _targets(args):
        load(target, plan, batch_size=args.batch, force=args.force_reload)
        svc = services_for(target.settings())
        profiler = cProfile.Profile()
        try:
            if args.mode == "route":
                for i in range(3):
                    route_call(svc, case, i)
                profiler.enable()
                for i in range(args.reps):
                    route_call(svc, case, i)
                profiler.disable()
            else:
                profile_asgi(svc, case, args.reps, profiler)
        finally:
            svc.db.dispose()
        for order in ("tottime", "cumulative"):
            buffer = io.StringIO()
            pstats.Stats(profiler, stream=buffer).sort_stats(order).print_stats(args.top)
            print(f"== {target.label}, {case.key} ({args.mode}), {args.reps} requests, by {order}")
            print(buffer.getvalue())
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    import os

    from bench.fields import build_field_cases, measure_case, render

    plan = _plan(args)
    cases = [c for c in build_field_cases(plan) if not args.only or args.only in c.key]
    args.out.mkdir(parents=True, exist_ok=True)
    for target in _targets(args):
        load(target, plan, batch_size=args.batch, force=args.force_reload)
        svc = services_for(target.settings())
        results = []
        load_before = os.getloadavg()
        try:
            for case in cases:
                result = measure_case(svc, case, reps=args.reps, seconds=args.seconds)
                print(
                    f"  {case.key}: p50 {result.timing.p50_ms:9.2f} ms  worst {result.timing.max_ms:9.2f} ms"
                    f"  (n={result.timing.n}, answer {result.answer:,})",
                    flush=True,
                )
                results.append(result)
        finally:
            svc.db.dispose()
        averages = f"{load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        text = render(target.label, results, averages)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = args.out / f"fields-{target.kind}-{args.size}-{stamp}.txt"
        path.write_text(text + "\n")
        print(f"\n{text}\n(saved to {path})", flush=True)
    return 0


def _schema_revision(target: Target) -> str | None:
    db = open_database(target)
    try:
        return migrate.current_revision(db.engine)
    finally:
        db.dispose()


def _pg_version(targets: list[Target]) -> str | None:
    for t in targets:
        if t.kind == POSTGRESQL and t.pg_admin_url:
            engine = sa.create_engine(t.pg_admin_url)
            try:
                with engine.connect() as conn:
                    return str(conn.exec_driver_sql("SHOW server_version").scalar())
            finally:
                engine.dispose()
    return None


def _measure_in_process(target: Target, cases: list[Case], args: argparse.Namespace) -> list[dict[str, Any]]:
    budget = Budget(reps=args.reps, seconds=args.seconds)
    svc = services_for(target.settings())
    rows: list[dict[str, Any]] = []
    try:
        costs: dict[str, float] = {}
        route: dict[str, tuple[Timing, int]] = {}
        for case in cases:
            timing, answer, first_s = measure_route(svc, case, budget)
            costs[case.key] = first_s
            route[case.key] = (timing, answer)
            print(
                f"  route {case.key}: p50 {timing.p50_ms:8.2f} ms  p99 {timing.p99_ms:8.2f} ms  "
                f"(n={timing.n}, answer {answer:,})",
                flush=True,
            )
        asgi: dict[str, Timing] = {}
        if not args.no_asgi:
            asgi = measure_asgi(svc, cases, budget, costs)
            for key, timing in asgi.items():
                print(
                    f"  ASGI  {key}: p50 {timing.p50_ms:8.2f} ms  p99 {timing.p99_ms:8.2f} ms"
                    f"  (n={timing.n})",
                    flush=True,
                )
    finally:
        svc.db.dispose()
    for case in cases:
        timing, answer = route[case.key]
        assert case.target is not None
        rows.append(
            {
                "key": case.key,
                "kind": case.kind,
                "title": case.title,
                "query": case.describe() if case.kind != "get" else "GET /api/v1/workloads/{id}",
                "answer": answer,
                "route": timing.as_dict(),
                "asgi": asgi[case.key].as_dict() if case.key in asgi else None,
                "target": case.target.text,
                "target_p50_ms": case.target.p50_ms,
                "met": timing.p50_ms <= case.target.p50_ms,
            }
        )
    return rows


def cmd_run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    all_cases = build_cases(plan)
    cases = _select(all_cases, args.cases)
    http_case = next(c for c in all_cases if c.key == "a1")
    scan = scan_case(plan)
    args.out.mkdir(parents=True, exist_ok=True)
    targets = _targets(args)
    results: dict[str, Any] = {
        "machine": machine(_pg_version(targets)),
        "inventory": {
            "size": plan.size,
            "tiles": plan.tiles,
            "snapshot": datetime.fromtimestamp(plan.snapshot_s, UTC).isoformat(),
            "live_by_phase": dict(plan.phase_counts()),
            "deleted": sum(plan.phase_counts(live=False).values()),
        },
        "settings": {
            "reps": args.reps,
            "seconds": args.seconds,
            "clients": args.clients,
            "http_seconds": args.http_seconds,
            "workers": args.workers,
        },
        "databases": [],
    }
    for target in targets:
        loaded = load(target, plan, batch_size=args.batch, force=args.force_reload)
        print(f"  measuring in process ({len(cases)} requests)", flush=True)
        db_result: dict[str, Any] = {
            "database": target.label,
            "schema": _schema_revision(target),
            "size": plan.size,
            "load": loaded.as_dict(),
            "cases": _measure_in_process(target, cases, args),
            "http": [],
        }
        if not args.no_http:
            for workers in args.workers:
                print(
                    f"  HTTP: {args.clients} clients, {workers} worker(s), {args.http_seconds:.0f} s "
                    f"(+{args.http_warmup:.0f} s warm-up) of {http_case.describe()}",
                    flush=True,
                )
                result = http_load.run_load(
                    target,
                    http_case,
                    scan_case=scan,
                    workers=workers,
                    clients=args.clients,
                    seconds=args.http_seconds,
                    warmup_s=args.http_warmup,
                    log_dir=args.out,
                    reconnect_every=args.reconnect_every,
                )
                print(
                    f"    {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                    f"{result.errors} errors, RSS idle {result.rss_idle_mb:.0f} MB / peak "
                    f"{result.rss_peak_mb:.0f} MB (anon {result.rss_peak_anon_mb:.0f}) over "
                    f"{result.processes} process(es); CPU server {result.server_cpu_per_s:.2f} "
                    f"client {result.client_cpu_per_s:.2f} machine {result.machine_cpu_per_s:.2f}; "
                    f"RSS after a scan {result.rss_after_scan_mb:.0f} MB",
                    flush=True,
                )
                db_result["http"].append(result.as_dict())
        results["databases"].append(db_result)

    report = render_report(results)
    print("\n" + report, flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Only a complete run (every request, both databases, HTTP included) replaces results-<size>.json.
    complete = not args.cases and not args.no_asgi and not args.no_http and args.db == "both"
    latest = f"results-{plan.size}" if complete else f"results-{plan.size}-partial"
    for name in (f"{latest}.json", f"results-{plan.size}-{stamp}.json"):
        (args.out / name).write_bytes(
            orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
    for name in (f"{latest}.txt", f"results-{plan.size}-{stamp}.txt"):
        (args.out / name).write_text(report + "\n")
    print(f"\nresults written to {args.out / f'{latest}.json'} (and .txt; time-stamped copies)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
