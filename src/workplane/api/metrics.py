"""GET /api/v1/workloads/{workloadId}/metrics (docs/contract.md §8)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader, readable
from workplane.api.errors import bad_request, not_found
from workplane.api.openapi import error_responses
from workplane.api.params import parse_enum
from workplane.domain.timefmt import InvalidTime, format_ms, now_ms, parse_to_ms
from workplane.metrics.query import MetricsAnswer, workload_metrics
from workplane.metrics.sampling import MAX_POINTS, InvalidWindow, grid
from workplane.metrics.store import ChunkStore, workload_facts
from workplane.metrics.types import WorkloadMetricType
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


def parse_metric_types(values: list[str] | None) -> list[WorkloadMetricType]:
    """Types given comma-joined in one parameter (the official client), repeated, or both; each may
    carry the client's ``WorkloadMetricType.`` prefix. Duplicates are answered once."""
    items = [item.strip() for value in values or [] for item in value.split(",")]
    items = [item for item in items if item]
    if not items:
        raise QueryError("metricType", "at least one metric type is required")
    found: list[WorkloadMetricType] = []
    for item in items:
        metric = parse_enum("metricType", item, WorkloadMetricType)
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


@router.get(
    "/workloads/{workloadId}/metrics",
    operation_id="get_workload_metrics",
    summary="Get workload metrics data.",
    description="Measured series (GPU utilisation and memory, CPU, CPU memory, NVLink, NIM) are means of "
    "the samples the cluster's agent reported in `(t - step, t]` for each of `numberOfSamples` points "
    "evenly spread over `[start, end]`; derived series (allocation, requests, limits, pods) are the "
    "workload's value at each point. Points without data are left out; `numberOfSamples=0` gives the "
    "raw samples.",
    responses=_RESPONSES,
    response_class=Response,
)
def get_workload_metrics(
    svc: ServicesDep,
    access: WorkloadReader,
    workloadId: str,
    metric_type: Annotated[
        list[str] | None,
        Query(alias="metricType", description="Metric types, comma-joined or repeated."),
    ] = None,
    start: Annotated[str | None, Query(description="Start of the range (RFC 3339).")] = None,
    end: Annotated[str | None, Query(description="End of the range (RFC 3339).")] = None,
    number_of_samples: Annotated[
        str | None, Query(alias="numberOfSamples", description="Points, 0..1000 (0: raw samples).")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    try:
        workload_id = str(uuid.UUID(workloadId))
    except ValueError:
        raise bad_request(f"invalid workloadId: {workloadId!r} is not a UUID") from None
    types = parse_metric_types(metric_type)
    start_ms, end_ms = _instant("start", start), _instant("end", end)
    count = _count(number_of_samples)
    try:
        window = grid(start_ms, end_ms, count)
    except InvalidWindow as exc:
        raise QueryError("start", f"{start!r} is not before end {end!r}") from exc
    with svc.db.read() as conn:
        facts = workload_facts(conn, workload_id, scope=readable(access))
        if facts is None:  # outside the caller's scopes reads the same as absent: no existence oracle
            raise not_found(f"workload {workload_id} not found")
        answer = workload_metrics(conn, ChunkStore(conn), facts, types, window, now_ms())
    status = 207 if answer.unavailable else 200
    if wants_csv(accept):
        return Response(render_csv(answer), status_code=status, media_type="text/csv")
    return Response(render_json(answer), status_code=status, media_type="application/json")
