"""The results table (figures next to their targets, met / NOT met) and the machine description."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cases import HTTP_RPS_TARGET, RSS_TARGET_MB

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def machine(pg_version: str | None) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_mem_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "commit": _git_commit(),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _ms(x: float) -> str:
    if x != x:  # NaN
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def table(db_result: dict[str, Any]) -> str:
    """One database's results as a text table."""
    head = (
        f"{'':3} {'measurement':<58} {'answer':>8}  {'route p50':>9} {'p99':>8}  "
        f"{'ASGI p50':>9} {'p99':>8}  {'target':<16} verdict"
    )
    lines = [head, "-" * len(head)]
    for row in db_result["cases"]:
        asgi = row.get("asgi") or {}
        route = row["route"]
        ok = route["p50_ms"] <= row["target_p50_ms"]
        lines.append(
            f"{row['key']:3} {row['title'][:58]:<58} {row['answer']:>8,}  {_ms(route['p50_ms']):>9} "
            f"{_ms(route['p99_ms']):>8}  {_ms(asgi.get('p50_ms', float('nan'))):>9} "
            f"{_ms(asgi.get('p99_ms', float('nan'))):>8}  {row['target']:<16} {verdict(ok)}"
        )
        lines.append(f"{'':4}{row['query'][:150]}")
    for load in db_result.get("http", []):
        w = load["workers"]
        reconnect = load.get("reconnect_every") or 0
        how = f", new connection every {reconnect} requests" if reconnect else ""
        lines.append(
            f"e{w}  HTTP list a1, {load['clients']} clients{how}, {w} worker(s), {load['seconds']:.0f} s: "
            f"{load['rps']:,.0f} req/s, p50 {_ms(load['p50_ms'])} ms, p99 {_ms(load['p99_ms'])} ms, "
            f"{load['errors']} errors; CPU (cores) server {load['server_cpu_per_s']:.2f}, client "
            f"{load['client_cpu_per_s']:.2f}, PostgreSQL {load['postgres_cpu_per_s']:.2f}, whole machine "
            f"{load['machine_cpu_per_s']:.2f}; "
            f"load avg {load['load_average']:.1f}   target >= {HTTP_RPS_TARGET:.0f} req/s: "
            f"{verdict(load['rps'] >= HTTP_RPS_TARGET)}"
        )
        lines.append(
            f"{'':4}CPU per request: server {load['server_cpu_ms_per_request']:.2f} ms, PostgreSQL "
            f"{load['postgres_cpu_ms_per_request']:.2f} ms (the server alone could do "
            f"{1000 / load['server_cpu_ms_per_request']:,.0f} req/s per core it gets)"
        )
        per = load.get("server_cpu_per_process") or {}
        if len(per) > 1:
            lines.append(
                f"{'':4}server CPU by process (cores): "
                + ", ".join(f"{float(v):.2f}" for v in sorted(per.values(), reverse=True))
            )
        lines.append(
            f"f{w}  server RSS, {load['processes']} process(es): idle {load['rss_idle_mb']:.0f} MB, "
            f"peak under load {load['rss_peak_mb']:.0f} MB (anon {load['rss_peak_anon_mb']:.0f} + file "
            f"{load['rss_peak_file_mb']:.0f})   target <= {RSS_TARGET_MB:.0f} MB: "
            f"{verdict(load['rss_peak_mb'] <= RSS_TARGET_MB)}"
        )
        lines.append(
            f"{'':4}after one count that reads many rows ({load.get('rss_probe') or 'c4'}): "
            f"{load['rss_after_scan_mb']:.0f} MB (anon {load['rss_after_scan_anon_mb']:.0f})"
        )
    return "\n".join(lines)


def header(db_result: dict[str, Any]) -> str:
    ld = db_result["load"]
    how = (
        "already loaded, load skipped"
        if ld["skipped"]
        else f"loaded in {ld['seconds']:.0f} s ({ld['rows_per_s']:,.0f} rows/s)"
        f" + finish {ld['finish_seconds']:.0f} s"
    )
    return (
        f"== {db_result['database']}: {db_result['size']:,} workloads, schema {db_result.get('schema')} "
        f"({how}; store "
        f"{ld['store_bytes'] / 2**20:,.0f} MiB)"
    )


def render_report(results: dict[str, Any]) -> str:
    """The whole printed report of one run (``results`` as written to results-<size>.json)."""
    m = results["machine"]
    text = [
        f"workplane bench, {m['date']}: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python "
        f"{m['python']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql'] or '-'}, commit {m['commit']}",
        "times in ms; route = the route function in process (query parsing, store, render) inside its read "
        "transaction; ASGI = the whole request through the app in process; targets judged on route p50",
    ]
    for db_result in results["databases"]:
        text += ["", header(db_result), table(db_result)]
    return "\n".join(text)
