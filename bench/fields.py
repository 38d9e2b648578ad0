"""``python -m bench fields``: every sortable and filterable workload field, one case per operation.

For each field of ``domain.fields`` that can be sorted: the first page (50) in each direction; for the
filters that matter on the inventory: ``==`` (and ``!=`` where it is not the whole table), ``=@`` on
text fields, ``>=`` on time and number fields, each as a list page in the default order and as a
count. Each request runs through the route function in its read transaction (``bench.measure``), as
``bench run`` measures it, and is checked: a list page holds ``min(50, matches)`` rows, a count the
number of matching workloads the plan says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.cases import (
    COUNT,
    COUNT_TARGET,
    LIST,
    LIST_TARGET,
    PAGE,
    SEARCH_TARGET,
    Case,
    _iso,
    check_answer,
)
from bench.inventory import COMPLETED, NAMESPACE, PENDING, RUNNING, Plan, Planned, project_name
from bench.measure import Timing, route_call
from workplane.api.deps import Services
from workplane.auth.rules import Access, KeyKind, Role, Rule
from workplane.domain.fields import WORKLOAD_FIELDS
from workplane.domain.scopes import Scope, ScopeType

_DAY = 86_400


@dataclass(frozen=True)
class Filter:
    key: str
    term: str
    holds: Callable[[Planned], bool]
    contains: bool = False  # ``=@``: its list target is the search one


def _filters(plan: Plan) -> list[Filter]:
    last = plan.tiles - 1
    mid = last // 2
    p_old = project_name(4, mid)
    cluster04 = str(uuid.uuid5(NAMESPACE, "itp-cluster04"))
    named = plan.items[plan.size // 2]
    since = plan.snapshot_s - 30 * _DAY
    return [
        Filter("phase==", "phase==Pending", lambda p: p.phase == PENDING),
        Filter("phase!=", "phase!=Completed", lambda p: p.phase != COMPLETED),
        Filter("projectName==", f"projectName=={p_old}", lambda p: p.project_name == p_old),
        Filter("projectName!=", f"projectName!={p_old}", lambda p: p.project_name != p_old),
        Filter("departmentName==", "departmentName==product", lambda p: p.department_name == "product"),
        Filter("clusterId==", f"clusterId=={cluster04}", lambda p: p.job.cluster == 4),
        Filter("name==", f"name=={named.name}", lambda p: p.id == named.id),
        Filter("category==", "category==Build", lambda p: False),
        Filter("priorityClassName==", "priorityClassName==high", lambda p: False),
        Filter("nodepool==", "nodepool==default", lambda p: p.phase != PENDING),
        Filter("submittedBy==", "submittedBy==alice", lambda p: False),
        Filter(
            "projectName=@",
            f"projectName=@itp04-{mid:02d}",
            lambda p: p.project_name == p_old,
            contains=True,
        ),
        Filter("departmentName=@", "departmentName=@oduc", lambda p: p.department_name == "product", True),
        Filter("clusterId=@", f"clusterId=@{cluster04[:8]}", lambda p: p.job.cluster == 4, True),
        Filter("submittedBy=@", "submittedBy=@ali", lambda p: False, True),
        Filter("nodepool=@", "nodepool=@faul", lambda p: p.phase != PENDING, True),
        Filter("type=@", "type=@rain", lambda p: True, True),
        Filter("category=@", "category=@uil", lambda p: False, True),
        Filter("createdAt>=", f"createdAt>={_iso(since)}", lambda p: p.created_s >= since),
        Filter(
            "completedAt>=",
            f"completedAt>={_iso(since)}",
            lambda p: p.completed_s is not None and p.completed_s >= since,
        ),
        Filter("allocatedGPU>=", "allocatedGPU>=8", lambda p: p.phase == RUNNING and p.job.num_gpu >= 8),
        Filter("priority>=", "priority>=100", lambda p: False),
        Filter(
            "totalRunningTimeSeconds>=",
            f"totalRunningTimeSeconds>={7 * _DAY}",
            # Running ones have run since they were created, years before now.
            lambda p: p.phase == RUNNING or (p.phase == COMPLETED and p.job.duration_s >= 7 * _DAY),
        ),
        Filter("totalPendingTimeSeconds>=", "totalPendingTimeSeconds>=3600", lambda p: p.phase == PENDING),
    ]


# Ranges also listed newest first (``store.ordering.ranged_walk``).
NEWEST_FIRST = ("completedAt>=", "allocatedGPU>=", "totalRunningTimeSeconds>=")


def build_field_cases(plan: Plan) -> list[Case]:
    live = [p for p in plan.items if p.deleted_s is None]
    cases: list[Case] = []
    for spec in WORKLOAD_FIELDS:
        if not spec.sortable:
            continue
        for order in ("asc", "desc"):
            cases.append(
                Case(
                    f"sort {spec.name} {order}",
                    LIST,
                    f"sort by {spec.name} {order}",
                    sort_by=spec.name,
                    sort_order=order,
                    expect=min(PAGE, len(live)),
                    target=LIST_TARGET,
                )
            )
    for f in _filters(plan):
        n = sum(1 for p in live if f.holds(p))
        list_case = Case(
            f"list {f.key}",
            LIST,
            f"list filterBy={f.term}",
            [f.term],
            expect=min(PAGE, n),
            target=SEARCH_TARGET if f.contains else LIST_TARGET,
        )
        cases.append(list_case)
        if f.key in NEWEST_FIRST:
            # The default order walks from the oldest; these selections lie mostly at the newest end.
            cases.append(
                replace(
                    list_case,
                    key=f"list {f.key} newest first",
                    title=f"{list_case.title}, createdAt desc",
                    sort_by="createdAt",
                    sort_order="desc",
                )
            )
        cases.append(replace(list_case, key=f"count {f.key}", kind=COUNT, expect=n, target=COUNT_TARGET))
    cases.extend(_viewer_cases(plan, live))
    return cases


# A project viewer's pages (``viewer ...``): every read restricted to one project, the scope most
# callers have. The project is the one the ``projectName`` filters name (cluster 4, the middle tile).
VIEWER_FILTERS = ("phase==", "createdAt>=", "completedAt>=", "allocatedGPU>=", "totalRunningTimeSeconds>=")


def _viewer_cases(plan: Plan, live: list[Planned]) -> list[Case]:
    tile = (plan.tiles - 1) // 2
    project = f"{tile + 1}04"  # the inventory's projectId of cluster 4's project in that tile
    access = Access(
        "bench-viewer", KeyKind.SERVICE, None, (Rule(Role.PROJECT_VIEWER, Scope(ScopeType.PROJECT, project)),)
    )
    own = [p for p in live if p.job.cluster == 4 and p.tile == tile]
    # Every sortable field both ways, as the tenant-wide sorts (the project holds 16 % of the live
    # workloads at 100,000 and 1.6 % at a million: its rows are neither most of an order's index nor
    # few enough to sort at no cost).
    cases = [
        Case(
            f"viewer sort {spec.name} {order}",
            LIST,
            f"sort by {spec.name} {order}, a viewer of project {project}",
            sort_by=spec.name,
            sort_order=order,
            expect=min(PAGE, len(own)),
            target=LIST_TARGET,
            access=access,
        )
        for spec in WORKLOAD_FIELDS
        if spec.sortable
        for order in ("asc", "desc")
    ]
    for f in _filters(plan):
        if f.key not in VIEWER_FILTERS:
            continue
        n = sum(1 for p in own if f.holds(p))
        title = f"list filterBy={f.term}, a viewer of project {project}"
        listed = Case(
            f"viewer list {f.key}",
            LIST,
            title,
            [f.term],
            expect=min(PAGE, n),
            target=LIST_TARGET,
            access=access,
        )
        cases.append(listed)
        cases.append(replace(listed, key=f"viewer count {f.key}", kind=COUNT, expect=n, target=COUNT_TARGET))
    return cases


@dataclass(frozen=True)
class Result:
    case: Case
    timing: Timing
    answer: int


def measure_case(svc: Services, case: Case, *, reps: int, seconds: float) -> Result:
    """The route's time over at most ``reps`` repetitions (at least 3, stopping after ``seconds``)
    after one checked warm-up call; a request over half a second is repeated 3 times only."""
    t0 = time.perf_counter()
    answer = check_answer(case, bytes(route_call(svc, case, 0).body))
    slow = time.perf_counter() - t0 > 0.5
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < (3 if slow else reps) and (
        len(samples) < 3 or time.perf_counter() - started < seconds
    ):
        t = time.perf_counter()
        route_call(svc, case, 0)
        samples.append(time.perf_counter() - t)
    return Result(case, Timing.of(samples), answer)


def render(label: str, results: list[Result], load: str) -> str:
    width = max(len(r.case.key) for r in results)
    lines = [
        f"== {label} (load average {load})",
        f"{'case':<{width}}  {'p50 ms':>9}  {'worst ms':>9}  {'target':<14}  met",
    ]
    for r in results:
        assert r.case.target is not None
        met = r.timing.p50_ms <= r.case.target.p50_ms
        lines.append(
            f"{r.case.key:<{width}}  {r.timing.p50_ms:9.2f}  {r.timing.max_ms:9.2f}  "
            f"{r.case.target.text:<14}  {'yes' if met else 'NO'}"
        )
    missed = sum(1 for r in results if r.case.target and r.timing.p50_ms > r.case.target.p50_ms)
    lines.append(f"{len(results) - missed} of {len(results)} cases met their target")
    return "\n".join(lines)
