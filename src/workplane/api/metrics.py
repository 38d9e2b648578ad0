"""GET /api/v1/workloads/{workloadId}/metrics and /pods/{podId}/metrics (docs/contract.md §8): measured
series from the configured back end (the embedded store, or Prometheus), derived ones from the
workload's history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from workplane.api.deps import Services, ServicesDep, WorkloadReader, readable
from workplane.api.errors import ApiError, bad_request, not_found
from workplane.api.openapi import error_responses
from workplane.api.params import parse_enum
from workplane.domain.timefmt import InvalidTime, format_ms, now_ms, parse_to_ms
from workplane.metrics.backend import BackendUnavailable
from workplane.metrics.prometheus import PrometheusSource
from workplane.metrics.query import (
    MetricsAnswer,
    assemble,
    derived_points,
    measured_points,
    pod_metrics,
    workload_metrics,
)
from workplane.metrics.sampling import MAX_POINTS, Grid, InvalidWindow, grid
from workplane.metrics.store import ChunkStore, WorkloadFacts, workload_facts
from workplane.metrics.targets import pods_of
from workplane.metrics.types import PodMetricType, WorkloadMetricType
from workplane.query.filters import QueryError

router = APIRouter(prefix="/api/v1", tags=["Workloads"])

_COMPOSITE = {"schema": {"$ref": "#/components/schemas/MetricsCompositeResponse"}}
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "Every requested type answered (an empty list of values is an answer). "
        "`Accept: text/csv` gives `type,timestamp,value` rows.",
        "content": {"application/json": _COMPOSITE, "text/csv": {"schema": {"type": "string"}}},
    },
    207: {
        "description": "Some requested types cannot be served for this workload (e.g. NIM_* for a "
        "workload that is not an inference workload); the body holds those that could.",
        "content": {"application/json": _COMPOSITE, "text/csv": {"schema": {"type": "string"}}},
    },
    **error_responses(400, 401, 404, 503),
}


M = TypeVar("M", bound=StrEnum)


def parse_metric_types(values: list[str] | None) -> list[WorkloadMetricType]:
    """Types given comma-joined in one parameter (the official client), repeated, or both; each may
    carry the client's ``WorkloadMetricType.`` prefix. Duplicates are answered once."""
    return parse_types(values, WorkloadMetricType)


def parse_types(values: list[str] | None, enum: type[M]) -> list[M]:
    items = [item.strip() for value in values or [] for item in value.split(",")]
    items = [item for item in items if item]
    if not items:
        raise QueryError("metricType", "at least one metric type is required")
    found: list[M] = []
    for item in items:
        metric = parse_enum("metricType", item, enum)
        if metric not in found:
            found.append(metric)
    return found


def _instant(param: str, value: str | None) -> int:
    if value is None or not value.strip():
        raise QueryError(param, "is required (an RFC 3339 time)")
    try:
        return parse_to_ms(value)
    except InvalidTime:
        raise QueryError(param, f"{value!r} is not an RFC 3339 time") from None


def _count(value: str | None) -> int:
    if value is None or value == "":
        return 20
    try:
        count = int(value)
    except ValueError:
        raise QueryError("numberOfSamples", f"{value!r} is not an integer") from None
    if not 0 <= count <= MAX_POINTS:
        raise QueryError("numberOfSamples", f"{value!r} is not within 0..{MAX_POINTS}")
    return count


def decimal_text(value: float) -> str:
    """A value as the decimal string the wire carries: integers without a fraction, others as the
    shortest decimal that reads back as the same float (a mean of 87.5 and 88 is "87.75"), never in
    exponent form."""
    text = repr(value)
    if text.endswith(".0"):
        return text[:-2] if text != "-0.0" else "0"
    if "e" in text:  # below 1e-4 or from 1e16 on, repr uses an exponent
        text = format(value, ".20f").rstrip("0").rstrip(".")
    return text


def render_json(answer: MetricsAnswer) -> bytes:
    # Written out directly rather than through a list of dicts: a 1,000-point answer is rendered in a
    # third of the time, and every piece is either an enum value, a formatted instant or a decimal.
    parts = []
    for m in answer.measurements:
        values = ",".join(
            f'{{"value":"{decimal_text(v)}","timestamp":"{format_ms(t)}"}}' for t, v in m.points
        )
        parts.append(f'{{"type":"{m.type.value}","labels":null,"values":[{values}]}}')
    return f'{{"measurements":[{",".join(parts)}]}}'.encode()


def render_csv(answer: MetricsAnswer) -> str:
    lines = ["type,timestamp,value"]
    for m in answer.measurements:
        lines.extend(f"{m.type.value},{format_ms(t)},{decimal_text(v)}" for t, v in m.points)
    return "\r\n".join(lines) + "\r\n"


def wants_csv(accept: str | None) -> bool:
    return accept is not None and "text/csv" in accept.lower()


def _window(start: str | None, end: str | None, number_of_samples: str | None) -> Grid:
    start_ms, end_ms = _instant("start", start), _instant("end", end)
    count = _count(number_of_samples)
    try:
        return grid(start_ms, end_ms, count)
    except InvalidWindow as exc:
        raise QueryError("start", f"{start!r} is not before end {end!r}") from exc


def _prometheus(svc: Services, connection: sa.Connection, workload_id: str) -> PrometheusSource | None:
    if svc.prometheus is None:
        return None
    pods = pods_of(connection, workload_id)
    assert pods is not None  # the caller found the workload in this transaction
    return PrometheusSource(svc.prometheus, pods)


def _answer(answer: MetricsAnswer, accept: str | None) -> Response:
    status = 207 if answer.unavailable else 200
    if wants_csv(accept):
        return Response(render_csv(answer), status_code=status, media_type="text/csv")
    return Response(render_json(answer), status_code=status, media_type="application/json")


def _unavailable(exc: BackendUnavailable) -> ApiError:
    return ApiError(
        503,
        "the metrics source is unreachable or did not answer in time; retry shortly",
        str(exc),
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def _readable_facts(conn: sa.Connection, access: WorkloadReader, workloadId: str) -> WorkloadFacts:
    try:
        workload_id = str(uuid.UUID(workloadId))
    except ValueError:
        raise bad_request(f"invalid workloadId: {workloadId!r} is not a UUID") from None
    facts = workload_facts(conn, workload_id, scope=readable(access))
    if facts is None:  # outside the caller's scopes reads the same as absent: no existence oracle
        raise not_found(f"workload {workload_id} not found")
    return facts


@dataclass(frozen=True, slots=True)
class Asked:
    """The query of both metrics routes: the types (parsed by each route, whose enums differ), the
    points and the answer's format."""

    types: list[str] | None
    window: Grid
    accept: str | None


async def asked(
    metric_type: Annotated[
        list[str] | None, Query(alias="metricType", description="Metric types, comma-joined or repeated.")
    ] = None,
    start: Annotated[str | None, Query(description="Start of the range (RFC 3339).")] = None,
    end: Annotated[str | None, Query(description="End of the range (RFC 3339).")] = None,
    number_of_samples: Annotated[
        str | None, Query(alias="numberOfSamples", description="Points, 0..1000 (0: raw samples).")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Asked:
    return Asked(metric_type, _window(start, end, number_of_samples), accept)


AskedDep = Annotated[Asked, Depends(asked)]


@router.get(
    "/workloads/{workloadId}/metrics",
    operation_id="get_workload_metrics",
    summary="Get workload metrics data.",
    description="Measured series (GPU utilisation and memory, CPU, CPU memory, NVLink, NIM) are means of "
    "the samples in `(t - step, t]` for each of `numberOfSamples` points evenly spread over "
    "`[start, end]` — samples the cluster's agent reported, or, with `metrics_backend = prometheus`, "
    "the series Prometheus holds for the workload's pods; derived series (allocation, requests, "
    "limits, pods) are the workload's value at each point. Points without data are left out; "
    "`numberOfSamples=0` gives the raw samples. 503 with Retry-After when Prometheus cannot be reached.",
    responses=_RESPONSES,
    response_class=Response,
)
def get_workload_metrics(
    svc: ServicesDep,
    access: WorkloadReader,
    workloadId: str,
    asked: AskedDep,
) -> Response:
    types = parse_metric_types(asked.types)
    window = asked.window
    with svc.db.read() as conn:
        facts = _readable_facts(conn, access, workloadId)
        prometheus = _prometheus(svc, conn, facts.id)
        if prometheus is None:
            answer = workload_metrics(conn, ChunkStore(conn), facts, types, window, now_ms())
            return _answer(answer, asked.accept)
        derived = derived_points(conn, facts, types, window, now_ms())
    # Outside the read transaction: Prometheus may take up to its timeout.
    try:
        measured = measured_points(prometheus, facts, types, window)
    except BackendUnavailable as exc:
        raise _unavailable(exc) from None
    return _answer(assemble(types, derived, measured), asked.accept)


@router.get(
    "/workloads/{workloadId}/pods/{podId}/metrics",
    operation_id="get_workload_pod_metrics",
    summary="Get pod metrics data.",
    tags=["Pods"],
    description="One pod's measured series under the same rule as the workload's metrics. Served with "
    "`metrics_backend = prometheus` (GPU utilisation and memory, CPU, CPU memory, NVLink, NIM); the "
    "embedded store keeps one series per workload, so there every type is answered 207. The per-GPU "
    "and advanced GPU types are not served (207).",
    responses=_RESPONSES,
    response_class=Response,
)
def get_workload_pod_metrics(
    svc: ServicesDep,
    access: WorkloadReader,
    workloadId: str,
    podId: str,
    asked: AskedDep,
) -> Response:
    try:
        pod_id = str(uuid.UUID(podId))
    except ValueError:
        raise bad_request(f"invalid podId: {podId!r} is not a UUID") from None
    types = parse_types(asked.types, PodMetricType)
    window = asked.window
    with svc.db.read() as conn:
        facts = _readable_facts(conn, access, workloadId)
        pods = pods_of(conn, facts.id, pod_id)
        if pods is None:
            raise not_found(f"pod {pod_id} of workload {facts.id} not found")
    source = PrometheusSource(svc.prometheus, pods) if svc.prometheus is not None else None
    try:  # outside the read transaction, as for the workload's metrics
        answer = pod_metrics(source, facts.type, types, window)
    except BackendUnavailable as exc:
        raise _unavailable(exc) from None
    return _answer(answer, asked.accept)
