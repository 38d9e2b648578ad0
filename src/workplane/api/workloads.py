"""GET /api/v1/workloads, /workloads/count, /workloads/{workloadId}."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader, readable
from workplane.api.errors import bad_request, not_found
from workplane.api.openapi import error_responses, json_response
from workplane.api.params import parse_bool, parse_sort
from workplane.auth.rules import Access
from workplane.domain.record import render
from workplane.domain.timefmt import now_ms
from workplane.query.filters import WorkloadQuery, parse_filter, parse_search
from workplane.store import workloads as store

router = APIRouter(prefix="/api/v1", tags=["Workloads"])

# These hot routes open their read transaction in the route body rather than through the ReadConn
# dependency: FastAPI runs a sync yield-dependency's set-up and tear-down as two more thread-pool
# hops, which cost more than the indexed query itself.

FILTER_HELP = (
    "Filter terms <field><operator><value>, all of which must hold. Operators: == != <= >= =@ (contains) "
    "!@ (does not contain) =^ (starts with) =$ (ends with). Several terms may be joined with commas or "
    "given as repeated parameters."
)

DeletedQ = Annotated[str | None, Query(description="true: only deleted workloads; false/absent: live ones.")]
FilterQ = Annotated[list[str] | None, Query(alias="filterBy", description=FILTER_HELP)]
SearchQ = Annotated[
    str | None,
    Query(
        description="Free text; every word must occur in name, project, department, submitter, type, "
        "category, phase, namespace or images."
    ),
]


def _query(
    access: Access, deleted: str | None, filter_by: list[str] | None, search: str | None
) -> WorkloadQuery:
    return WorkloadQuery(
        deleted=parse_bool("deleted", deleted),
        terms=parse_filter(filter_by or []),
        words=parse_search(search),
        scope=readable(access),
    )


@router.get(
    "/workloads",
    operation_id="get_workloads",
    summary="List workloads.",
    responses={
        **json_response("Workloads page", "WorkloadsPage"),
        **error_responses(400, 401, 403, 429, 503),
    },
    response_class=Response,
)
def list_workloads(
    svc: ServicesDep,
    access: WorkloadReader,
    deleted: DeletedQ = None,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="Rows to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1..500.")] = 50,
    sort_order: Annotated[str | None, Query(alias="sortOrder", description="asc or desc.")] = None,
    sort_by: Annotated[str | None, Query(alias="sortBy", description="Field to sort by.")] = None,
    filter_by: FilterQ = None,
    search: SearchQ = None,
) -> Response:
    query = _query(access, deleted, filter_by, search)
    sort = parse_sort(sort_by, sort_order)
    now = now_ms()
    with svc.expensive_reads.admit(query), svc.db.read() as conn:
        catalog = svc.catalog.get(conn)
        page = store.list_workloads(
            conn, query, sort=sort, offset=offset, limit=limit, catalog=catalog, now_ms=now
        )
    body = ",".join(render(row, catalog, now) for row in page.rows)
    tail = f',"next":{offset + limit}' if page.has_more else ""
    return Response(f'{{"workloads":[{body}]{tail}}}', media_type="application/json")


@router.get(
    "/workloads/count",
    operation_id="count_workloads",
    summary="Count workloads.",
    responses={
        **json_response("Number of matching workloads", "WorkloadsCount"),
        **error_responses(400, 401, 403, 429, 503),
    },
    response_class=Response,
)
def count_workloads(
    svc: ServicesDep,
    access: WorkloadReader,
    deleted: DeletedQ = None,
    filter_by: FilterQ = None,
    search: SearchQ = None,
) -> Response:
    query = _query(access, deleted, filter_by, search)
    with svc.expensive_reads.admit(query), svc.db.read() as conn:
        count = store.count_workloads(conn, query, catalog=svc.catalog.get(conn), now_ms=now_ms())
    return Response(f'{{"count":{count}}}', media_type="application/json")


@router.get(
    "/workloads/{workloadId}",
    operation_id="get_workload",
    summary="Get a workload.",
    responses={
        **json_response("The workload", "WorkloadDetailed"),
        **error_responses(400, 401, 403, 404, 503),
    },
    response_class=Response,
)
def get_workload(svc: ServicesDep, access: WorkloadReader, workloadId: str) -> Response:
    try:
        workload_id = str(uuid.UUID(workloadId))
    except ValueError:
        raise bad_request(f"invalid workloadId: {workloadId!r} is not a UUID") from None
    with svc.db.read() as conn:
        row = store.get_workload(conn, workload_id, scope=readable(access))
        catalog = svc.catalog.get(conn)
    if row is None:
        raise not_found(f"workload {workload_id} not found")
    now = now_ms()
    text = render(row, catalog, now, pending_messages=row.pending_messages)
    return Response(text, media_type="application/json")
