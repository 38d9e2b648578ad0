"""GET /api/v1/workloads/{workloadId}/pods: a workload's pods, as its agent last reported them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader
from workplane.api.openapi import error_responses, json_response
from workplane.api.params import parse_bool
from workplane.api.workload_parts import require_readable, workload_id_of
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
