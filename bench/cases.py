"""The measured requests, derived deterministically from the inventory plan, with the answers the
plan says they must give (every measurement checks its answer)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

import orjson

from bench.inventory import (
    COMPLETED,
    DEPARTMENTS,
    ORIGIN_S,
    PENDING,
    RUNNING,
    TILE_SPAN_S,
    Plan,
    Planned,
    project_name,
)
from workplane.auth.rules import Access

LIST, COUNT, GET, TELEMETRY = "list", "count", "get", "telemetry"
PAGE = 50


@dataclass(frozen=True)
class Target:
    text: str  # how it is printed, e.g. "p50 <= 10 ms"
    p50_ms: float


LIST_TARGET = Target("p50 <= 10 ms", 10.0)
SEARCH_TARGET = Target("p50 <= 100 ms", 100.0)
COUNT_TARGET = Target("p50 <= 100 ms", 100.0)
GET_TARGET = Target("p50 <= 2 ms", 2.0)
TELEMETRY_TARGET = Target("p50 <= 50 ms", 50.0)
HTTP_RPS_TARGET = 500.0
RESEARCH_04 = DEPARTMENTS[4][0]  # research in the biggest ITP cluster
RSS_TARGET_MB = 300.0


@dataclass(frozen=True)
class Case:
    key: str
    kind: str  # LIST, COUNT, GET or TELEMETRY
    title: str
    filter_by: list[str] = field(default_factory=list)
    search: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    deleted: bool = False
    ids: list[str] = field(default_factory=list)  # GET: cycled through
    telemetry: tuple[tuple[str, str], ...] = ()  # TELEMETRY: the query parameters
    expect: int | None = None  # LIST: rows on the page; COUNT: the count; TELEMETRY: sum of the values
    target: Target | None = None
    # The caller, where not the administrator (``bench.measure.route_call``): e.g. a project viewer,
    # whose every read is restricted to its project.
    access: Access | None = None

    def query_params(self, workload_id: str | None = None) -> list[tuple[str, str]]:
        if self.kind == TELEMETRY:
            return list(self.telemetry)
        params: list[tuple[str, str]] = []
        if self.deleted:
            params.append(("deleted", "true"))
        if self.filter_by:
            params.append(("filterBy", ",".join(self.filter_by)))
        if self.search:
            params.append(("search", self.search))
        if self.kind == LIST:
            if self.sort_by:
                params.append(("sortBy", self.sort_by))
            if self.sort_order:
                params.append(("sortOrder", self.sort_order))
            params.append(("limit", str(PAGE)))
        return params

    def query_string(self) -> str:
        return urlencode(self.query_params())

    def url(self, index: int = 0) -> str:
        """Path and query string of the request (GET: the ``index``-th id, cycled)."""
        query = self.query_string()
        return f"{self.path(index)}?{query}" if query else self.path(index)

    def path(self, index: int = 0) -> str:
        if self.kind == GET:
            return f"/api/v1/workloads/{self.ids[index % len(self.ids)]}"
        if self.kind == TELEMETRY:
            return "/api/v1/workloads/telemetry"
        return "/api/v1/workloads/count" if self.kind == COUNT else "/api/v1/workloads"

    def describe(self) -> str:
        if self.kind == TELEMETRY:
            return " ".join(f"{k}={v}" for k, v in self.telemetry)
        parts = []
        if self.deleted:
            parts.append("deleted=true")
        if self.filter_by:
            parts.append("filterBy=" + ",".join(self.filter_by))
        if self.search:
            parts.append(f"search={self.search!r}")
        if self.sort_by:
            parts.append(f"sortBy={self.sort_by} {self.sort_order or 'asc'}")
        return " ".join(parts) or "(no filter)"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fragment(item: Planned) -> str:
    """Five hex digits from the middle of a workload's name: a selective substring (~8 hits per 1M)."""
    return item.name[7:12]


def _page(n: int) -> int:
    return min(PAGE, n)


def build_cases(plan: Plan) -> list[Case]:
    live = [p for p in plan.items if p.deleted_s is None]
    last_tile = plan.tiles - 1
    running_by_project = Counter(p.project_name for p in live if p.phase == RUNNING)
    p_run = running_by_project.most_common(1)[0][0] if running_by_project else project_name(4, last_tile)
    since_run = plan.snapshot_s - 7 * 86_400
    # An older project of the biggest ITP cluster (04), from the middle of the replay; the time bound
    # is the median creation time of its Completed workloads (half of them match).
    mid_tile = last_tile // 2
    p_old = project_name(4, mid_tile)
    old_created = sorted(p.created_s for p in live if p.project_name == p_old and p.phase == COMPLETED)
    since_old = old_created[len(old_created) // 2] if old_created else ORIGIN_S + mid_tile * TILE_SPAN_S
    dept = "research"

    def n_live(pred: Callable[[Planned], bool]) -> int:
        return sum(1 for p in live if pred(p))

    a1 = n_live(lambda p: p.phase == RUNNING and p.project_name == p_run and p.created_s >= since_run)
    a2 = n_live(lambda p: p.phase == COMPLETED and p.project_name == p_old and p.created_s >= since_old)
    frag1 = _fragment(plan.items[plan.size // 2])
    frag2 = _fragment(plan.items[plan.size // 3])
    b1 = n_live(lambda p: frag1 in p.name)
    b2 = n_live(lambda p: frag2 in p.name)  # "pytorch" is in every workload's image
    b3 = n_live(lambda p: p.project_name == p_run and p.phase == COMPLETED)
    c2 = n_live(lambda p: p.phase == RUNNING and p.project_name == p_run)
    c3 = n_live(lambda p: p.phase == COMPLETED and p.project_name == p_old)
    c4 = n_live(lambda p: p.phase == COMPLETED and p.department_name == dept)
    deleted = plan.size - len(live)
    step = max(1, plan.size // 997)
    ids = [str(plan.items[i].id) for i in range(0, plan.size, step)]
    return [
        Case(
            "a1",
            LIST,
            "list, indexed filters + sort (Running, one project, last 7 days)",
            [f"phase=={RUNNING}", f"projectName=={p_run}", f"createdAt>={_iso(since_run)}"],
            sort_by="createdAt",
            sort_order="desc",
            expect=_page(a1),
            target=LIST_TARGET,
        ),
        Case(
            "a2",
            LIST,
            "list, indexed filters + sort (Completed, older project)",
            [f"phase=={COMPLETED}", f"projectName=={p_old}", f"createdAt>={_iso(since_old)}"],
            sort_by="createdAt",
            sort_order="desc",
            expect=_page(a2),
            target=LIST_TARGET,
        ),
        Case(
            "b1",
            LIST,
            "list, name contains (selective)",
            [f"name=@{frag1}"],
            expect=_page(b1),
            target=SEARCH_TARGET,
        ),
        Case(
            "b2",
            LIST,
            "list, two-word search (selective word + common word)",
            search=f"{frag2} pytorch",
            expect=_page(b2),
            target=SEARCH_TARGET,
        ),
        Case(
            "b3",
            LIST,
            "list, two-word search (broad: project + phase), newest first",
            search=f"{p_run} completed",
            sort_by="createdAt",
            sort_order="desc",
            expect=_page(b3),
            target=SEARCH_TARGET,
        ),
        Case("c1", COUNT, "count, no filter (all live)", expect=len(live), target=COUNT_TARGET),
        Case(
            "c2",
            COUNT,
            "count, phase + project (Running)",
            [f"phase=={RUNNING}", f"projectName=={p_run}"],
            expect=c2,
            target=COUNT_TARGET,
        ),
        Case(
            "c3",
            COUNT,
            "count, phase + project (Completed, older project)",
            [f"phase=={COMPLETED}", f"projectName=={p_old}"],
            expect=c3,
            target=COUNT_TARGET,
        ),
        Case(
            "c4",
            COUNT,
            "count, phase + department (broad)",
            [f"phase=={COMPLETED}", f"departmentName=={dept}"],
            expect=c4,
            target=COUNT_TARGET,
        ),
        Case("c5", COUNT, "count, deleted=true", deleted=True, expect=deleted, target=COUNT_TARGET),
        Case("d1", GET, f"get by id ({len(ids)} ids cycled)", ids=ids, expect=1, target=GET_TARGET),
        *telemetry_cases(plan),
    ]


def telemetry_cases(plan: Plan) -> list[Case]:
    """Telemetry with two groups per value, each telemetry type; checked on the sum of the values."""
    live = [p for p in plan.items if p.deleted_s is None]
    pending = sum(1 for p in live if p.phase == PENDING)
    gpus = sum(p.job.num_gpu for p in live if p.phase == RUNNING)  # only Running workloads hold GPUs
    research = sum(1 for p in live if p.department_id == RESEARCH_04 and p.phase in (RUNNING, PENDING))
    return [
        Case(
            "t1",
            TELEMETRY,
            "telemetry, workload count by project and phase",
            telemetry=(("telemetryType", "WORKLOADS_COUNT"), ("groupBy", "ProjectId,Phase")),
            expect=len(live),
            target=TELEMETRY_TARGET,
        ),
        Case(
            "t2",
            TELEMETRY,
            "telemetry, allocated GPUs by cluster and current node pool",
            telemetry=(("telemetryType", "GPU_ALLOCATION"), ("groupBy", "ClusterId,CurrentNodepools")),
            expect=gpus,
            target=TELEMETRY_TARGET,
        ),
        Case(
            "t3",
            TELEMETRY,
            # Two groups per value: the time bucket and the department (the most this type takes).
            "telemetry, pending-time distribution by bucket and department",
            telemetry=(("telemetryType", "PENDING_TIME_DISTRIBUTION"), ("groupBy", "DepartmentId")),
            expect=pending,
            target=TELEMETRY_TARGET,
        ),
        Case(
            "t4",
            TELEMETRY,
            "telemetry, count by category and phase, one department, two phases",
            telemetry=(
                ("telemetryType", "WORKLOADS_COUNT"),
                ("groupBy", "Category,Phase"),
                ("departmentId", RESEARCH_04),
                ("filterByPhases", "Running,Pending"),
            ),
            expect=research,
            target=TELEMETRY_TARGET,
        ),
    ]


def scan_case(plan: Plan) -> Case:
    """A request that reads about half of the live rows (a count over a time range, which maintained
    per-group counts cannot answer): run once through the server to see what reading much of the
    store does to its resident memory."""
    live = sorted(p.created_s for p in plan.items if p.deleted_s is None and p.phase == COMPLETED)
    since = live[len(live) // 2]
    expect = sum(1 for t in live if t >= since)
    return Case(
        "z1",
        COUNT,
        "count, phase + time range (reads half the rows)",
        [f"phase=={COMPLETED}", f"createdAt>={_iso(since)}"],
        expect=expect,
        target=COUNT_TARGET,
    )


class WrongAnswer(AssertionError):
    pass


def check_answer(case: Case, body: bytes) -> int:
    """The number the case is checked on: rows on the page, the count, 1 for a found workload, or the
    sum of the telemetry values."""
    data = orjson.loads(body)
    if case.kind == TELEMETRY:
        total = sum((Decimal(v["value"]) for v in data["values"]), Decimal(0))
        got = int(total) if total == int(total) else -1
    elif case.kind == LIST:
        got = len(data["workloads"])
    elif case.kind == COUNT:
        got = int(data["count"])
    else:
        got = 1 if data.get("id") else 0
    if case.expect is not None and got != case.expect:
        raise WrongAnswer(f"{case.key}: expected {case.expect}, got {got} ({case.describe()})")
    return got
