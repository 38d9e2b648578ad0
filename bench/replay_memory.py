"""The server's resident memory through a full live replay at high speed.

    .venv/bin/python -m bench.replay_memory [--db sqlite|postgresql] [--speed S] [--duration SECONDS]

Starts ``workplane serve`` on a fresh store, runs ``workplane replay --live`` from the start of the
traces at ``--speed`` for ``--duration`` seconds, samples the server's RSS every second, and prints
how it moved, quarter by quarter, for the server and its sync worker processes together: flat means
the last quarters hold about the same memory (caches fill early, then stay).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.http_load import RssSample, Server, sample_rss
from bench.load import POSTGRESQL, SQLITE, ensure_exists, make_target, wipe
from workplane.services.setup import ADMIN_FILE


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay_memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL], default=SQLITE, help="store to run on")
    parser.add_argument("--speed", type=float, default=20_000, help="trace seconds per wall-clock second")
    parser.add_argument("--duration", type=float, default=240, help="wall-clock seconds of live replay")
    parser.add_argument("--out", default="bench/out", help="where logs, the store and results go")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the benchmark database on",
    )
    args = parser.parse_args()
    out = Path(args.out)
    target = make_target(
        args.db, size=0, out_dir=out / "replay-memory", pg_url=args.pg_url, pg_database="workplane_replay"
    )
    if args.db == POSTGRESQL:
        ensure_exists(target)
    wipe(target)
    with Server(target, workers=1, log_path=out / f"replay-memory-{args.db}.log") as server:
        assert server.process is not None
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workplane.cli",
                "replay",
                "--live",
                "--start",
                "start",
                "--speed",
                str(args.speed),
                "--duration",
                str(args.duration),
                "--server",
                f"http://127.0.0.1:{server.port}",
                "--credentials-file",
                str(target.data_dir / ADMIN_FILE),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        samples: list[tuple[float, RssSample]] = []
        started = time.monotonic()
        while agent.poll() is None and time.monotonic() - started < args.duration + 120:
            samples.append((time.monotonic() - started, sample_rss(server.process.pid)))
            time.sleep(1)
        agent.kill()
    size = max(1, len(samples) // 4)
    quarters = [samples[i * size : (i + 1) * size] or samples[-size:] for i in range(4)]

    def mean(values: list[float]) -> int:
        return round(sum(values) / len(values))

    total = [mean([m.total_mb for _, m in q]) for q in quarters]
    anon = [mean([m.anon_mb for _, m in q]) for q in quarters]
    peak = max(m.total_mb for _, m in samples)
    last = samples[-1][1]
    result = {
        "database": target.label,
        "speed": args.speed,
        "seconds": round(samples[-1][0]),
        # The server's processes together (the server and its sync workers): resident memory, and the
        # part of it that is the processes' own (not pages of mapped files), per quarter of the run.
        "rss_quarters_mb": total,
        "rss_anon_quarters_mb": anon,
        "rss_first_quarter_mb": total[0],
        "rss_last_quarter_mb": total[-1],
        "rss_peak_mb": round(peak),
        "rss_last_by_process_mb": {str(pid): round(mb) for pid, mb in last.per_process_mb.items()},
        "agent_exit": agent.returncode,
    }
    print(
        f"[{target.label}] live replay at {args.speed:g}x for {result['seconds']} s: server RSS by quarter "
        f"{' -> '.join(str(t) for t in total)} MB (own memory {' -> '.join(str(a) for a in anon)} MB), "
        f"peak {peak:.0f} MB; at the end, by process: "
        f"{', '.join(f'{mb:.0f}' for mb in last.per_process_mb.values())} MB"
    )
    (out / f"replay-memory-{args.db}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
