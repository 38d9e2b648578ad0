"""``python -m bench.hostile``: do ordinary readers keep their latency while one reader sends the worst
requests it can?

Against ``workplane serve`` on the benchmark's inventory (loaded when missing, see ``bench load``), over
real HTTP:

1. **quiet**: ``--clients`` keep-alive connections send the a1 list request (a project's running
   workloads of the last week, newest first) for ``--seconds``;
2. **hostile**: the same, while ``--hostile`` more connections with the same administrator token send
   the most expensive reads the API accepts — as many contains terms as allowed on every text field plus
   as many search words, each request with other letters so nothing is cached.

It prints the ordinary readers' p50/p99 in both phases and their ratio (the target: p99 within 2x of the
quiet run), what the hostile requests were answered (statuses, slowest), and on PostgreSQL the longest
running statement of the server seen in ``pg_stat_activity`` (sampled every 50 ms), which must stay
within the server's ``query_timeout_ms`` (set here by ``--timeout-ms``).

    python -m bench.hostile --db postgresql --size 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

from bench import inventory
from bench.cases import build_cases, check_answer
from bench.http_load import Client, Server, get_token, request
from bench.load import DEFAULT_PG_URL, POSTGRESQL, SQLITE, Target, load, make_target
from workplane.query.filters import MAX_SEARCH_WORDS, MAX_TERMS

OUT_DIR = Path(__file__).resolve().parent / "out"
# submittedBy is left out: the inventory has no users, so a term on it would end the query at once.
TEXT_FIELDS = ("name", "projectName", "departmentName", "type", "nodepool", "clusterId")


def hostile_url(rng: random.Random) -> str:
    """A list request with ``MAX_TERMS`` contains terms over the text fields and ``MAX_SEARCH_WORDS``
    search words, all of one or two common letters: every term matches most rows, so no index narrows
    the scan, and the next request's letters differ."""
    letters = "aeiorstnlc0123456789"

    def word() -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(1, 2)))

    terms = [f"{TEXT_FIELDS[i % len(TEXT_FIELDS)]}=@{word()}" for i in range(MAX_TERMS)]
    search = " ".join(word() for _ in range(MAX_SEARCH_WORDS))
    query = urlencode(
        [("filterBy", ",".join(terms)), ("search", search), ("sortBy", "name"), ("limit", "50")]
    )
    return f"/api/v1/workloads?{query}"


@dataclass
class Phase:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    hostile_statuses: Counter[int] = field(default_factory=Counter)
    hostile_slowest_ms: float = 0.0
    hostile_requests: int = 0
    longest_statement_s: float = 0.0

    def pct(self, p: float) -> float:
        ms = sorted(self.latencies_ms)
        return ms[max(0, min(len(ms) - 1, int(-(-len(ms) * p // 100)) - 1))] if ms else float("nan")


def _raw(url: str, port: int, token: str) -> bytes:
    return (
        f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()


async def _run_phase(
    port: int, token: str, ordinary: bytes, clients: int, hostile: int, seconds: float, seed: int
) -> Phase:
    phase = Phase()
    stop_at = time.perf_counter() + seconds

    async def reader() -> None:
        client = Client(port, ordinary)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                status, _ = await client.once()
                phase.latencies_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    phase.errors += 1
        finally:
            await client.close()

    async def attacker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.perf_counter() < stop_at:
            client = Client(port, _raw(hostile_url(rng), port, token))
            try:
                t0 = time.perf_counter()
                status, _ = await client.once()
                phase.hostile_slowest_ms = max(phase.hostile_slowest_ms, (time.perf_counter() - t0) * 1000)
                phase.hostile_statuses[status] += 1
                phase.hostile_requests += 1
            finally:
                await client.close()

    await asyncio.gather(*(reader() for _ in range(clients)), *(attacker(i) for i in range(hostile)))
    return phase


class StatementWatch:
    """Samples ``pg_stat_activity`` for the longest-running active statement in the target's database
    (the server's; this watcher's own connection excluded)."""

    def __init__(self, target: Target) -> None:
        self.engine = sa.create_engine(target.url, pool_size=1)
        self.longest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = sa.text(
            "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0) "
            "FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
            "AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while not self._stop.wait(0.05):
                self.longest_s = max(self.longest_s, float(conn.execute(query).scalar_one()))
                conn.rollback()

    def __enter__(self) -> StatementWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.engine.dispose()


def measure(target: Target, plan: inventory.Plan, args: argparse.Namespace) -> None:
    case = next(c for c in build_cases(plan) if c.key == "a1")
    env = {"WORKPLANE_QUERY_TIMEOUT_MS": str(args.timeout_ms)}
    log = OUT_DIR / f"hostile-{target.kind}-{plan.size}.log"
    with Server(target, workers=args.workers, log_path=log, env=env) as server:
        token, _ = get_token(target, server.port)
        status, body = request("GET", server.port, case.url(), None, {"Authorization": f"Bearer {token}"})
        if status != 200:
            raise RuntimeError(f"a1 answered {status}: {body[:300]!r}")
        check_answer(case, body)
        ordinary = _raw(case.url(), server.port, token)
        print(f"  ordinary request: {case.describe()}", flush=True)
        print(f"  hostile request, e.g.: {hostile_url(random.Random(0))[:160]}...", flush=True)
        phases: dict[str, Phase] = {}
        for name, hostile in (("quiet", 0), ("hostile", args.hostile), ("quiet again", 0)):
            print(f"  {name}: {args.clients} readers, {hostile} hostile, {args.seconds:g} s", flush=True)
            if target.kind == POSTGRESQL:
                with StatementWatch(target) as watch:
                    phase = asyncio.run(
                        _run_phase(server.port, token, ordinary, args.clients, hostile, args.seconds, 1)
                    )
                phase.longest_statement_s = watch.longest_s
            else:
                phase = asyncio.run(
                    _run_phase(server.port, token, ordinary, args.clients, hostile, args.seconds, 1)
                )
            phases[name] = phase
    quiet = phases["quiet"]
    print(f"\n  {target.label}, {plan.size:,} workloads, query_timeout_ms={args.timeout_ms}")
    print(f"  {'phase':12} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}  hostile answers")
    for name, phase in phases.items():
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(phase.hostile_statuses.items())) or "-"
        if phase.hostile_requests:
            answers += f" (slowest {phase.hostile_slowest_ms:,.0f} ms)"
        print(
            f"  {name:12} {len(phase.latencies_ms):>9,} {phase.errors:>7} {phase.pct(50):>8.1f} "
            f"{phase.pct(99):>8.1f}  {answers}"
        )
    attacked = phases["hostile"]
    ratio = attacked.pct(99) / quiet.pct(99)
    print(
        f"  ordinary p99 under attack / quiet: {ratio:.2f}x (target <= 2x): "
        + ("met" if ratio <= 2 else "NOT met")
    )
    if target.kind == POSTGRESQL:
        longest = max(p.longest_statement_s for p in phases.values())
        within = longest * 1000 <= args.timeout_ms + 250  # one sampling interval and the cancel's trip
        print(
            f"  longest server statement seen in pg_stat_activity: {longest * 1000:,.0f} ms "
            f"(timeout {args.timeout_ms:,} ms): {'within' if within else 'EXCEEDED'}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL, "both"], default="both", help="which store")
    parser.add_argument(
        "--size", type=int, default=100_000, help="workloads in the inventory (default 100,000)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase (default 15)")
    parser.add_argument("--clients", type=int, default=4, help="ordinary readers' connections (default 4)")
    parser.add_argument("--hostile", type=int, default=2, help="hostile connections (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument(
        "--timeout-ms", type=int, default=10_000, help="the server's query_timeout_ms (default 10,000)"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the inventory")
    args = parser.parse_args(argv)
    plan = inventory.build_plan(args.size, inventory.read_trace(inventory.TRACE_FILE))
    kinds = [SQLITE, POSTGRESQL] if args.db == "both" else [args.db]
    for kind in kinds:
        target = make_target(kind, size=args.size, out_dir=OUT_DIR, pg_url=args.pg_url, pg_database=None)
        load(target, plan, batch_size=2_000, force=False)
        measure(target, plan, args)


if __name__ == "__main__":
    main()
