"""``python -m bench.pods``: the cluster-wide pod list and count (``GET /workloads/pods`` and
``/workloads/pods/count``) and a workload's pods (``GET /workloads/{workloadId}/pods``) over a store of
N pods, on SQLite and PostgreSQL.

    python -m bench.pods                       # 100,000 pods under 20,000 workloads, both databases
    python -m bench.pods --pods 1000000 --reps 50 --seconds 3   # the targets' size
    python -m bench.pods --pods 20000 --db sqlite --cases w,x

The inventory is deterministic: N pods, five per workload (one workload per 5 pods, 40 projects in 4
departments, one cluster), on 500 nodes in 4 node pools, created one second apart; 10 % of the
workloads have finished (their pods Succeeded, or Failed for every tenth, with ``completedAt``), 3 %
of the pods are deleted, 2 % are Pending on no node. It is loaded through the sync protocol's own store
function (``ingest.apply_batch``, 2,000 workloads and their pods per batch), then ``VACUUM ANALYZE``
(PostgreSQL) or a WAL checkpoint (SQLite). A store already holding it is reused (``--force-reload``).

What is timed is the route function (query parsing, the store's statement, rendering) with the
caller's access, as ``bench run`` times the workload routes; every answer is checked against the
inventory. Besides the fixed cases, a page and a count per filter field and a page per sort field are
generated from ``query.pods.POD_FIELDS``. Targets (p50): a workload's pods ≤ 5 ms, a page ≤ 10 ms, a
count ≤ 100 ms, a search or substring ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench.load import (
    DEFAULT_PG_URL,
    POSTGRESQL,
    SQLITE,
    Target,
    _finish,
    ensure_exists,
    make_target,
    open_database,
    wipe,
)
from bench.measure import Budget, Timing, _repeat
from workplane.api import pods as routes
from workplane.api.deps import Services
from workplane.app import build_services
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.auth.rules import Access, KeyKind, Role, Rule, administrator
from workplane.domain.batch import SyncBatch
from workplane.domain.observation import Observation
from workplane.domain.pods import PodObservation
from workplane.domain.scopes import Scope, ScopeType
from workplane.domain.timefmt import format_ms
from workplane.query.pods import POD_FIELDS
from workplane.services import ingest
from workplane.services.setup import prepare_store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.schema import workload_pods

OUT_DIR = Path(__file__).resolve().parent / "out" / "pods"
_NAMESPACE = uuid.UUID("6b1d7e52-1f0c-5a4e-9b8d-62656e63688f")


def _id(kind: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{key}"))


CLUSTER = _id("bench-pods", "cluster")
PODS_PER_WORKLOAD = 5
NODES = 500
POOLS = ("default", "a100", "h100", "l40s")
PROJECTS = 40
START_MS = 1_700_000_000_000
BATCH_WORKLOADS = 2000


@dataclass(frozen=True, slots=True)
class PodRow:
    """One pod of the inventory, as the answers are checked against it."""

    id: str
    workload: int
    node: str | None
    pool: str | None
    created_ms: int
    completed: bool
    deleted: bool
    revision: str | None = None  # the Knative Revision that owns it, for a tenth of the workloads


def _revision(workload: int, n: int) -> str | None:
    """A tenth of the workloads run under revisions (Knative Services), two each (a traffic split):
    4,000 revisions at 100,000 pods, far more than a cluster keeps live, so the counts' rows by
    revision are measured at a size no real cluster reaches."""
    return _id("bench-revision", f"{workload}-{n % 2}") if workload % 10 == 5 else None


def _project(workload: int) -> str:
    return f"proj-{workload % PROJECTS:02d}"


def inventory(pods: int) -> list[PodRow]:
    rows = []
    for n in range(pods):
        workload = n // PODS_PER_WORKLOAD
        pending = n % 50 == 7
        node = None if pending else n % NODES
        rows.append(
            PodRow(
                id=_id("bench-pod", str(n)),
                workload=workload,
                node=None if node is None else f"node-{node:03d}",
                pool=None if node is None else POOLS[node % len(POOLS)],
                created_ms=START_MS + n * 1000,
                completed=workload % 10 == 3 and not pending,
                deleted=n % 33 == 5,
                revision=_revision(workload, n),
            )
        )
    return rows


def _workload_item(workload: int) -> Observation:
    project = _project(workload)
    return Observation.model_validate(
        {
            "id": _id("bench-workload", str(workload)),
            "revision": 1,
            "name": f"train-{workload:06d}",
            "projectId": project,
            "projectName": project,
            "departmentId": f"dept-{workload % 4}",
            "departmentName": f"dept-{workload % 4}",
            "type": "Training",
            "phase": "Completed" if workload % 10 == 3 else "Running",
            "createdAt": format_ms(START_MS + workload * PODS_PER_WORKLOAD * 1000),
        }
    )


def _pod_item(row: PodRow) -> PodObservation:
    phase = "Pending" if row.node is None else "Running"
    if row.completed:
        phase = "Failed" if row.workload % 100 == 3 else "Succeeded"
    item: dict[str, Any] = {
        "id": row.id,
        "workloadId": _id("bench-workload", str(row.workload)),
        "revision": 1,
        "name": f"train-{row.workload:06d}-{row.id[:5]}",
        "createdAt": format_ms(row.created_ms),
        "k8sPhase": phase,
        "nodeName": row.node,
        "currentNodePool": row.pool,
        "containers": [{"name": "main", "image": "nvcr.io/nvidia/pytorch:24.05-py3"}],
        "requestedResources": {"gpu": {"request": 1}},
    }
    if row.completed:
        item["completedAt"] = format_ms(row.created_ms + 3_600_000)
    if row.deleted:
        item["deletedAt"] = format_ms(row.created_ms + 7_200_000)
    if row.revision:
        item["revisionId"] = row.revision
    return PodObservation.model_validate(item)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _stored(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(workload_pods)).scalar_one())


def load(target: Target, rows: list[PodRow], *, force: bool) -> Services:
    ensure_exists(target)
    if force:
        wipe(target)
    db = open_database(target)
    settings = target.settings()
    prepare_store(db, settings, announce=False)
    if _stored(db) == len(rows):
        print(f"  {target.label}: already holds {len(rows):,} pods", flush=True)
        return build_services(settings, db)
    if _stored(db):
        db.dispose()
        wipe(target)
        db = open_database(target)
        prepare_store(db, settings, announce=False)
    started, cpu = time.perf_counter(), time.process_time()
    print(f"  {target.label}: loading, load average {_loadavg()}", flush=True)
    workloads = rows[-1].workload + 1
    for first in range(0, workloads, BATCH_WORKLOADS):
        last = min(workloads, first + BATCH_WORKLOADS)
        pods = [_pod_item(r) for r in rows[first * PODS_PER_WORKLOAD : last * PODS_PER_WORKLOAD]]
        with db.write() as conn:
            ingest.apply_batch(
                conn,
                SyncBatch(
                    cluster_name="bench-pods",
                    workloads=[_workload_item(w) for w in range(first, last)],
                    pods=pods,
                ),
                catalog=CatalogCache().get(conn),
                cluster_id=CLUSTER,
                tenant_id=1,
                now_ms=START_MS + len(rows) * 1000,
            )
    _finish(target, db)
    print(
        f"  {target.label}: loaded {len(rows):,} pods in {time.perf_counter() - started:.1f} s "
        f"({time.process_time() - cpu:.1f} CPU s in this process), load average {_loadavg()}",
        flush=True,
    )
    return build_services(settings, db)


@dataclass(frozen=True)
class Case:
    key: str
    what: str
    kind: str  # "list", "count" or "workload" (a workload's pods, cycling over ``workloads``)
    params: dict[str, Any]
    access: Access
    expected: Callable[[list[PodRow]], list[PodRow]]  # the matching pods, in the answer's order
    workloads: tuple[int, ...] = ()


def _live(rows: list[PodRow]) -> list[PodRow]:
    return [r for r in rows if not r.deleted]


def _project_viewer(project: str) -> Access:
    return Access(
        "bench-viewer", KeyKind.SERVICE, None, (Rule(Role.PROJECT_VIEWER, Scope(ScopeType.PROJECT, project)),)
    )


def _workload_id(workload: int) -> str:
    return _id("bench-workload", str(workload))


def _completed_ms(row: PodRow) -> int | None:
    return row.created_ms + 3_600_000 if row.completed else None


def _deleted_ms(row: PodRow) -> int | None:
    return row.created_ms + 7_200_000 if row.deleted else None


def _phase(row: PodRow) -> str:
    if row.completed:
        return "Failed" if row.workload % 100 == 3 else "Succeeded"
    return "Pending" if row.node is None else "Running"


def _search_text(row: PodRow) -> str:
    """What ``search`` looks in (as ``_pod_item`` reports the pod), folded."""
    words = (f"train-{row.workload:06d}-{row.id[:5]}", f"train-{row.workload:06d}", row.node, row.pool)
    return " ".join(w for w in (*words, _phase(row)) if w).lower()


# Each filter and sort field's value of an inventory pod (None: the pod has none).
VALUES: dict[str, Callable[[PodRow], str | int | None]] = {
    "clusterId": lambda r: CLUSTER,
    "workloadId": lambda r: _workload_id(r.workload),
    "revisionId": lambda r: r.revision,
    "nodeName": lambda r: r.node,
    "currentNodepool": lambda r: r.pool,
    "createdAt": lambda r: r.created_ms,
    "completedAt": _completed_ms,
    "deletedAt": _deleted_ms,
}


def ordered(found: list[PodRow], field: str, *, desc: bool) -> list[PodRow]:
    """The list's order: by the field, ties by id in the same direction, pods without a value last."""
    value = VALUES[field]
    having = sorted((r for r in found if value(r) is not None), key=lambda r: (value(r), r.id), reverse=desc)
    without = sorted((r for r in found if value(r) is None), key=lambda r: r.id, reverse=desc)
    return having + without


def _field_terms(rows: list[PodRow]) -> dict[str, tuple[str, bool, Callable[[PodRow], bool]]]:
    """One filter term per pod filter field (``query.pods.POD_FIELDS``): (term, deleted=, predicate)."""
    workload = rows[len(rows) // 3].workload
    revision = _revision(workload - workload % 10 + 5, 0)
    early_ms = rows[len(rows) // 100].created_ms
    late_ms = rows[int(len(rows) * 0.9)].created_ms
    return {
        "clusterId": (f"clusterId=={CLUSTER}", False, lambda r: True),
        "workloadId": (f"workloadId=={_workload_id(workload)}", False, lambda r: r.workload == workload),
        "revisionId": (f"revisionId=={revision}", False, lambda r: r.revision == revision),
        "nodeName": ("nodeName=@node-12", False, lambda r: (r.node or "").startswith("node-12")),
        "currentNodepool": ("currentNodepool!=default", False, lambda r: r.pool != "default"),
        "createdAt": (f"createdAt<={format_ms(early_ms)}", False, lambda r: r.created_ms <= early_ms),
        "completedAt": (
            f"completedAt>={format_ms(late_ms)}",
            False,
            lambda r: (_completed_ms(r) or 0) >= late_ms,
        ),
        "deletedAt": (f"deletedAt>={format_ms(late_ms)}", True, lambda r: (_deleted_ms(r) or 0) >= late_ms),
    }


Expected = Callable[[list[PodRow]], list[PodRow]]


def _has_word(word: str) -> Callable[[PodRow], bool]:
    return lambda row: word in _search_text(row)


def _selected(keep: Callable[[PodRow], bool], *, deleted: bool = False) -> Expected:
    """The pods that ``keep`` keeps, live ones or (``deleted``) deleted ones, in creation order."""
    return lambda rows: [r for r in rows if r.deleted == deleted and keep(r)]


def _sorted_by(field: str, *, deleted: bool, desc: bool) -> Expected:
    return lambda rows: ordered([r for r in rows if r.deleted == deleted], field, desc=desc)


def generated_cases(rows: list[PodRow]) -> list[Case]:
    """A list and a count per filter field, and a page sorted by each sort field, each way (``s:<field>``
    descending, ``s:<field>:asc`` ascending)."""
    admin = administrator(ADMIN_CLIENT_ID)
    cases: list[Case] = []
    for field, (term, deleted, keep) in _field_terms(rows).items():
        params = {"filter_by": [term], "deleted": "true" if deleted else None}
        expected = _selected(keep, deleted=deleted)
        cases.append(Case(f"f:{field}", f"list, {term[:40]}", "list", params, admin, expected))
        cases.append(Case(f"n:{field}", f"count, {term[:39]}", "count", params, admin, expected))
    for field in POD_FIELDS:
        deleted = field == "deletedAt"
        for order in ("desc", "asc"):
            cases.append(
                Case(
                    f"s:{field}" + ("" if order == "desc" else ":asc"),
                    f"list, sortBy={field} {order}" + (", deleted=true" if deleted else ""),
                    "list",
                    {"sort_by": field, "sort_order": order, "deleted": "true" if deleted else None},
                    admin,
                    _sorted_by(field, deleted=deleted, desc=order == "desc"),
                )
            )
    return cases


def search_cases(rows: list[PodRow]) -> list[Case]:
    """Search words and substrings: selective (a pod's own hex digits: a few pods), moderate (a
    hundred workloads' names: 500 pods), broad (a phase: a tenth of the pods) and broad but all old
    (the first 10,000 workloads' names, newest first)."""
    admin = administrator(ADMIN_CLIENT_ID)
    hex5 = rows[len(rows) // 7].id[:5]
    prefix = f"train-{rows[len(rows) // 2].workload // 100:04d}"
    workload_hex = _workload_id(rows[len(rows) // 5].workload)[:6]
    cases = []
    for key, word in (("x1", hex5), ("x2", prefix), ("x3", "succeeded")):
        expected = _selected(_has_word(word))
        cases.append(Case(key, f"list, search={word}", "list", {"search": word}, admin, expected))
        cases.append(Case(f"{key}c", f"count, search={word}", "count", {"search": word}, admin, expected))
    # The first 10,000 workloads' names (5 % of the pods at a million), newest first: their pods are
    # the last of that order, and a planner that takes them as spread evenly walks the creation-time
    # index past every other pod before them.
    oldest = "train-00"
    cases.append(
        Case(
            "x5",
            f"list, search={oldest}, newest first",
            "list",
            {"search": oldest, "sort_by": "createdAt", "sort_order": "desc"},
            admin,
            lambda rs: ordered(
                [r for r in rs if not r.deleted and oldest in _search_text(r)], "createdAt", desc=True
            ),
        )
    )
    term = f"workloadId=@{workload_hex}"
    expected = _selected(lambda r: workload_hex in _workload_id(r.workload))
    cases.append(Case("x4", f"list, {term}", "list", {"filter_by": [term]}, admin, expected))
    cases.append(Case("x4c", f"count, {term}", "count", {"filter_by": [term]}, admin, expected))
    return cases


def workload_cases(rows: list[PodRow]) -> list[Case]:
    """``GET /workloads/{workloadId}/pods``: 1,000 workloads spread over the inventory, cycled."""
    workloads = rows[-1].workload + 1
    spread = tuple(sorted({(n * 7919) % workloads for n in range(1000)}))
    project = _project(7)
    own = tuple(w for w in range(7, workloads, PROJECTS))[:: max(1, workloads // PROJECTS // 1000)][:1000]

    def pods_of(workload: int) -> Expected:
        return _selected(lambda r: r.workload == workload)

    admin = administrator(ADMIN_CLIENT_ID)
    return [
        Case(
            "w1",
            "a workload's pods (1,000 workloads cycled)",
            "workload",
            {},
            admin,
            pods_of(spread[0]),
            spread,
        ),
        Case(
            "w2",
            "a workload's pods, a project viewer",
            "workload",
            {},
            _project_viewer(project),
            pods_of(own[0]),
            own,
        ),
        Case(
            "w3",
            "a workload's pods, search=running",
            "workload",
            {"search": "running"},
            admin,
            lambda rs: [r for r in pods_of(spread[0])(rs) if _phase(r) == "Running"],
            spread,
        ),
    ]


def fixed_cases(rows: list[PodRow]) -> list[Case]:
    admin = administrator(ADMIN_CLIENT_ID)
    node = rows[len(rows) // 2].node or "node-000"
    recent_ms = rows[int(len(rows) * 0.9)].created_ms
    viewer = _project_viewer(_project(7))
    revision = _revision(5, 0)
    return [
        Case("l1", "list, no filter (oldest first)", "list", {}, admin, _live),
        Case(
            "l2",
            f"list, nodeName=={node}, newest first",
            "list",
            {"filter_by": [f"nodeName=={node}"], "sort_order": "desc"},
            admin,
            lambda rs: ordered([r for r in _live(rs) if r.node == node], "createdAt", desc=True),
        ),
        Case(
            "l3",
            "list, currentNodepool==h100, createdAt>= the last 10 %",
            "list",
            {"filter_by": [f"currentNodepool==h100,createdAt>={format_ms(recent_ms)}"]},
            admin,
            lambda rs: [r for r in _live(rs) if r.pool == "h100" and r.created_ms >= recent_ms],
        ),
        Case(
            "l4",
            "list, completed=true, sortBy=completedAt desc",
            "list",
            {"completed": "true", "sort_by": "completedAt", "sort_order": "desc"},
            admin,
            lambda rs: ordered([r for r in _live(rs) if r.completed], "completedAt", desc=True),
        ),
        Case(
            "l5",
            "list, a project viewer (1/40 of the pods)",
            "list",
            {},
            viewer,
            lambda rs: [r for r in _live(rs) if _project(r.workload) == _project(7)],
        ),
        Case(
            "l6",
            "list, deleted=true",
            "list",
            {"deleted": "true"},
            admin,
            lambda rs: [r for r in rs if r.deleted],
        ),
        Case("c1", "count, no filter", "count", {}, admin, _live),
        Case(
            "c2",
            f"count, nodeName=={node}",
            "count",
            {"filter_by": [f"nodeName=={node}"]},
            admin,
            lambda rs: [r for r in _live(rs) if r.node == node],
        ),
        Case(
            "c3",
            "count, currentNodepool=@a10 (contains)",
            "count",
            {"filter_by": ["currentNodepool=@a10"]},
            admin,
            lambda rs: [r for r in _live(rs) if r.pool == "a100"],
        ),
        Case(
            "c4",
            "count, a project viewer",
            "count",
            {},
            viewer,
            lambda rs: [r for r in _live(rs) if _project(r.workload) == _project(7)],
        ),
        Case(
            "c5",
            "count, search=succeeded (a word of the phase)",
            "count",
            {"search": "succeeded"},
            admin,
            lambda rs: [r for r in _live(rs) if r.completed and r.workload % 100 != 3],
        ),
        Case(
            "c6",
            "count, deleted=true",
            "count",
            {"deleted": "true"},
            admin,
            lambda rs: [r for r in rs if r.deleted],
        ),
        Case(
            "c7",
            "count, revisionId!= one revision",
            "count",
            {"filter_by": [f"revisionId!={revision}"]},
            admin,
            lambda rs: [r for r in _live(rs) if r.revision != revision],
        ),
    ]


def build_cases(rows: list[PodRow]) -> list[Case]:
    return [*fixed_cases(rows), *workload_cases(rows), *search_cases(rows), *generated_cases(rows)]


def _call(svc: Services, case: Case, i: int = 0) -> bytes:
    if case.kind == "workload":
        workload = _workload_id(case.workloads[i % len(case.workloads)])
        args = {"deleted": None, "offset": 0, "limit": 50, "search": None, **case.params}
        return bytes(routes.get_workload_pods(svc=svc, access=case.access, workloadId=workload, **args).body)
    args = {"deleted": None, "filter_by": None, "search": None, **case.params}
    if case.kind == "list":
        full = {
            "offset": 0,
            "limit": 50,
            "sort_order": None,
            "sort_by": None,
            "verbosity": None,
            "completed": None,
        }
        response = routes.list_all_pods(svc=svc, access=case.access, **{**full, **args})
    else:
        response = routes.count_all_pods(svc=svc, access=case.access, **args)
    return bytes(response.body)


def _check(case: Case, body: bytes, rows: list[PodRow]) -> None:
    expected = case.expected(rows)
    answer = orjson.loads(body)
    if case.kind == "count":
        if answer["count"] != len(expected):
            raise AssertionError(f"{case.key}: count {answer['count']}, expected {len(expected)}")
        return
    got = [p["id"] for p in answer["pods"]]
    if got != [r.id for r in expected[:50]]:
        raise AssertionError(f"{case.key}: the page differs from the expected one")


def measure(svc: Services, rows: list[PodRow], cases: list[Case], budget: Budget) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    for case in cases:
        started = time.perf_counter()
        _check(case, _call(svc, case), rows)
        first_s = time.perf_counter() - started

        def call(i: int, case: Case = case) -> None:
            _call(svc, case, i)

        out[case.key] = Timing.of(_repeat(call, budget.for_cost(first_s)))
        print(f"    {case.key:18} {out[case.key].p50_ms:9.2f} ms", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pods", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=100_000, help="pods in the store (default 100,000)")
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="sqlite, postgresql or both (comma-separated)"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument(
        "--pg-database", default=None, help="the PostgreSQL database (default workplane_bench_pods_<N>)"
    )
    parser.add_argument("--reps", type=int, default=200, help="at most this many timed calls per request")
    parser.add_argument("--seconds", type=float, default=5.0, help="at most this long per request")
    parser.add_argument("--force-reload", action="store_true")
    parser.add_argument(
        "--cases",
        default=None,
        help="comma-separated case keys or key prefixes (f:, n:, s:, x, w, l, c); empty: load only",
    )
    args = parser.parse_args(argv)
    rows = inventory(args.pods)
    budget = Budget(args.reps, args.seconds)
    cases = build_cases(rows)
    if args.cases is not None:
        wanted = [k.strip() for k in args.cases.split(",") if k.strip()]
        cases = [c for c in cases if any(c.key == k or c.key.startswith(k) for k in wanted)]
    results: dict[str, dict[str, Timing]] = {}
    for kind in [k.strip() for k in args.db.split(",") if k.strip()]:
        if kind not in (SQLITE, POSTGRESQL):
            parser.error(f"--db: {kind!r} is not sqlite or postgresql")
        target = make_target(
            kind,
            size=args.pods,
            out_dir=OUT_DIR,
            pg_url=args.pg_url,
            pg_database=args.pg_database or f"workplane_bench_pods_{args.pods}",
        )
        svc = load(target, rows, force=args.force_reload)
        print(f"  load average before measuring: {_loadavg()}", flush=True)
        results[target.label] = measure(svc, rows, cases, budget)
        print(f"  load average after measuring: {_loadavg()}", flush=True)
        svc.db.dispose()
    labels = list(results)
    print(f"\n{args.pods:,} pods under {rows[-1].workload + 1:,} workloads; p50 / p99 in ms (route function)")
    print(f"{'':12} {'request':52} " + " ".join(f"{label:>20}" for label in labels))
    for case in cases:
        cells = [
            f"{results[label][case.key].p50_ms:8.2f} / {results[label][case.key].p99_ms:8.2f}"
            for label in labels
        ]
        print(f"{case.key:12} {case.what:52} " + " ".join(f"{c:>20}" for c in cells))
    print(
        "targets (p50): a workload's pods (w) ≤ 5 ms; a page ≤ 10 ms; a count ≤ 100 ms; "
        "a search or substring (x) ≤ 100 ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
