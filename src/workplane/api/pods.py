"""GET /api/v1/workloads/{workloadId}/pods and /events: a workload's pods and events, as its agent
last reported them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader
from workplane.api.errors import bad_request
from workplane.api.openapi import error_responses, json_response
from workplane.api.params import parse_bool
from workplane.api.workload_parts import require_readable, workload_id_of
from workplane.store.events import workload_events_page
from workplane.store.pods import workload_pods_page

router = APIRouter(prefix="/api/v1", tags=["Workloads"])


@router.get(
    "/workloads/{workloadId}/pods",
    operation_id="get_workload_pods",
    summary="Get the pods of a workload.",
    responses={**json_response("Pods page", "PodsPage"), **error_responses(400, 401, 403, 404, 503)},
    response_class=Response,
)
def get_workload_pods(
    svc: ServicesDep,
    access: WorkloadReader,
    workloadId: str,
    deleted: Annotated[
        str | None, Query(description="true: only deleted pods; false/absent: live ones.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="Pods to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1..500.")] = 50,
) -> Response:
    workload_id = workload_id_of(workloadId)
    only_deleted = parse_bool("deleted", deleted)
    with svc.db.read() as conn:
        require_readable(conn, access, workload_id)
        page = workload_pods_page(conn, workload_id, deleted=only_deleted, offset=offset, limit=limit)
    tail = f',"next":{offset + limit}' if page.has_more else ""
    return Response(f'{{"pods":[{",".join(page.pods)}]{tail}}}', media_type="application/json")


@router.get(
    "/workloads/{workloadId}/events",
    operation_id="get_workload_events",
    summary="Get the events of a workload.",
    responses={**json_response("Events page", "EventsPage"), **error_responses(400, 401, 403, 404, 503)},
    response_class=Response,
)
def get_workload_events(
    svc: ServicesDep,
    access: WorkloadReader,
    workloadId: str,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="Events to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1..500.")] = 50,
    sort_order: Annotated[
        str | None, Query(alias="sortOrder", description="asc or desc (by time; default desc).")
    ] = None,
) -> Response:
    workload_id = workload_id_of(workloadId)
    if sort_order not in (None, "asc", "desc"):
        raise bad_request(f"invalid sortOrder: {sort_order!r}; allowed values: asc, desc")
    with svc.db.read() as conn:
        require_readable(conn, access, workload_id)
        events, more = workload_events_page(
            conn, workload_id, descending=sort_order != "asc", offset=offset, limit=limit
        )
    tail = f',"next":{offset + limit}' if more else ""
    return Response(f'{{"events":[{",".join(events)}]{tail}}}', media_type="application/json")
