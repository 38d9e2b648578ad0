"""In-process measurements: the route functions themselves (the code path the API runs: parse the
query, ``store.list_workloads``/``count_workloads``/``get_workload``, ``render``), inside the same read
transaction the route's dependency opens; and the full request through the ASGI app (routing,
dependency injection, bearer-token check, response) without a network."""

from __future__ import annotations

import asyncio
import inspect
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Response

from bench.cases import COUNT, GET, LIST, TELEMETRY, Case, WrongAnswer, check_answer
from workplane.api import telemetry as telemetry_routes
from workplane.api import workloads as routes
from workplane.api.deps import Services
from workplane.app import build_services, create_app
from workplane.auth.credentials import ADMIN_CLIENT_ID, ADMIN_ROLE
from workplane.auth.rules import administrator


@dataclass
class Timing:
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_s: list[float]) -> Timing:
        ms = sorted(s * 1000 for s in samples_s)
        return cls(len(ms), _percentile(ms, 50), _percentile(ms, 99), statistics.fmean(ms), ms[-1])

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ordered list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Budget:
    reps: int  # at most this many timed repetitions
    seconds: float  # ... and stop once this much time was spent (but never under min_reps)
    min_reps: int = 10
    warmup: int = 3

    def for_cost(self, first_call_s: float) -> Budget:
        """Fewer warm-up and minimum repetitions for a request that takes over half a second."""
        if first_call_s > 0.5:
            return Budget(self.reps, self.seconds, min_reps=5, warmup=1)
        return self


def _repeat(call: Callable[[int], None], budget: Budget) -> list[float]:
    for i in range(budget.warmup):
        call(i)
    samples: list[float] = []
    started = time.perf_counter()
    i = 0
    while i < budget.reps and (i < budget.min_reps or time.perf_counter() - started < budget.seconds):
        t0 = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t0)
        i += 1
    return samples


async def _repeat_async(call: Callable[[int], Awaitable[None]], budget: Budget) -> list[float]:
    for i in range(budget.warmup):
        await call(i)
    samples: list[float] = []
    started = time.perf_counter()
    i = 0
    while i < budget.reps and (i < budget.min_reps or time.perf_counter() - started < budget.seconds):
        t0 = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - t0)
        i += 1
    return samples


ADMIN = administrator(ADMIN_CLIENT_ID)


def _takes_connection(route: Callable[..., Any]) -> bool:
    """Whether the route receives its connection from a dependency (``conn``) or opens it itself."""
    return "conn" in inspect.signature(route).parameters


def route_call(svc: Services, case: Case, index: int) -> Response:
    """One call of the route function, with what its dependencies would give it; a route that takes
    its connection from the ``ReadConn`` dependency gets one inside a read transaction, as there."""
    if case.kind == LIST:
        route: Callable[..., Response] = routes.list_workloads
        kwargs: dict[str, Any] = {
            "deleted": "true" if case.deleted else None,
            "offset": 0,
            "limit": 50,
            "sort_order": case.sort_order,
            "sort_by": case.sort_by,
            "filter_by": [",".join(case.filter_by)] if case.filter_by else None,
            "search": case.search,
        }
    elif case.kind == COUNT:
        route = routes.count_workloads
        kwargs = {
            "deleted": "true" if case.deleted else None,
            "filter_by": [",".join(case.filter_by)] if case.filter_by else None,
            "search": case.search,
        }
    elif case.kind == TELEMETRY:
        route = telemetry_routes.get_workloads_telemetry
        given = dict(case.telemetry)
        kwargs = {
            "telemetry_type": given.get("telemetryType"),
            "cluster_id": given.get("clusterId"),
            "nodepool_name": given.get("nodepoolName"),
            "department_id": given.get("departmentId"),
            "group_by": [given["groupBy"]] if "groupBy" in given else None,
            "filter_by_phases": [given["filterByPhases"]] if "filterByPhases" in given else None,
            "accept": None,
        }
    else:
        assert case.kind == GET
        route = routes.get_workload
        kwargs = {"workloadId": case.ids[index % len(case.ids)]}
    if _takes_connection(route):
        with svc.db.read() as conn:
            return route(svc=svc, conn=conn, access=case.access or ADMIN, **kwargs)
    return route(svc=svc, access=case.access or ADMIN, **kwargs)


def measure_route(svc: Services, case: Case, budget: Budget) -> tuple[Timing, int, float]:
    """(timing, the checked answer, seconds the first, cold-ish call took)."""
    t0 = time.perf_counter()
    first = route_call(svc, case, 0)
    first_s = time.perf_counter() - t0
    answer = check_answer(case, bytes(first.body))
    budget = budget.for_cost(first_s)

    def call(i: int) -> None:
        response = route_call(svc, case, i)
        if case.kind == GET:
            check_answer(case, bytes(response.body))

    return Timing.of(_repeat(call, budget)), answer, first_s


async def _measure_asgi(
    svc: Services, cases: list[Case], budget: Budget, costs: dict[str, float]
) -> dict[str, Timing]:
    app = create_app(svc.settings, svc)
    token = svc.signer.issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600)
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, Timing] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for case in cases:

            async def call(i: int, case: Case = case) -> None:
                response = await client.get(case.url(i), headers=headers)
                if response.status_code != 200:
                    raise WrongAnswer(f"{case.key}: HTTP {response.status_code}: {response.text[:300]}")
                if i < 3 or case.kind == GET:
                    check_answer(case, response.content)

            case_budget = budget.for_cost(costs.get(case.key, 0.0))
            out[case.key] = Timing.of(await _repeat_async(call, case_budget))
    return out


def profile_asgi(svc: Services, case: Case, reps: int, profiler: Any) -> None:
    """Run ``case`` ``reps`` times through the ASGI app with ``profiler`` (a cProfile.Profile) on."""
    if case.access is not None:
        # The app is asked with the administrator's token: it would answer another question.
        raise SystemExit(f"{case.key}: a case with its own caller is profiled with --mode route")

    async def go() -> None:
        app = create_app(svc.settings, svc)
        token = svc.signer.issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            for i in range(3):
                await client.get(case.url(i), headers=headers)
            profiler.enable()
            for i in range(reps):
                await client.get(case.url(i), headers=headers)
            profiler.disable()

    asyncio.run(go())


def measure_asgi(
    svc: Services, cases: list[Case], budget: Budget, costs: dict[str, float]
) -> dict[str, Timing]:
    """``costs``: seconds per request measured in process, to size each case's repetitions."""
    return asyncio.run(_measure_asgi(svc, cases, budget, costs))


def services_for(settings: Any) -> Services:
    return build_services(settings)
