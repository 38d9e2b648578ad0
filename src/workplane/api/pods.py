"""GET /api/v1/workloads/pods, /workloads/pods/count, /workloads/{workloadId}/pods and /events, and
/workloads/inferences/revisions/{revisionId}/pods: pods across the caller's scopes, a workload's pods
and events, and an inference workload revision's pods, as the agents last reported them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader, readable
from workplane.api.errors import bad_request, not_found
from workplane.api.openapi import error_responses, json_response
from workplane.api.params import parse_bool, parse_enum, strip_enum_prefix
from workplane.api.workload_parts import require_readable, uuid_of, workload_id_of
from workplane.auth.rules import Access
from workplane.query.filters import Sort, SortOrder, parse_filter, parse_search
from workplane.query.pods import POD_FIELDS, Completed, PodQuery, Verbosity, sort_field
from workplane.store.events import workload_events_page
from workplane.store.pods import PodsPage, count_pods, list_pods, revision_pods_page, workload_pods_page

router = APIRouter(prefix="/api/v1", tags=["Workloads"])

POD_FILTER_HELP = (
    "Filter terms <field><operator><value>, all of which must hold; fields: "
    f"{', '.join(POD_FIELDS)}. Operators: == != <= >= =@ (contains) !@ (does not contain) "
    "=^ (starts with) =$ (ends with); times take == != <= >= only. Several terms may be joined with "
    "commas or given as repeated parameters."
)
PodsFilterQ = Annotated[list[str] | None, Query(alias="filterBy", description=POD_FILTER_HELP)]
PodsSearchQ = Annotated[
    str | None,
    Query(
        description="Free text; every word must occur in the pod's name, its workload's, its node, "
        "its node pool or its phase."
    ),
]
PodsDeletedQ = Annotated[str | None, Query(description="true: only deleted pods; false/absent: live ones.")]


def _pod_query(
    access: Access,
    deleted: str | None,
    filter_by: list[str] | None,
    search: str | None,
    completed: str | None = None,
) -> PodQuery:
    return PodQuery(
        scope=readable(access),
        deleted=parse_bool("deleted", deleted),
        completed=parse_enum("completed", completed.lower(), Completed) if completed else Completed.ALL,
        terms=parse_filter(filter_by or [], fields=POD_FIELDS),
        words=parse_search(search),
    )


def _pod_sort(sort_by: str | None, sort_order: str | None) -> Sort:
    order = parse_enum("sortOrder", sort_order, SortOrder) if sort_order else SortOrder.ASC
    return Sort(sort_field(strip_enum_prefix(sort_by)) if sort_by else "createdAt", order)


def _pods_page(page: PodsPage, offset: int, limit: int) -> Response:
    """``{"pods": […], "next"?}``: the page's stored records as they are, ``next`` where more follow."""
    tail = f',"next":{offset + limit}' if page.has_more else ""
    return Response(f'{{"pods":[{",".join(page.pods)}]{tail}}}', media_type="application/json")


@router.get(
    "/workloads/pods",
    operation_id="list_pods",
    summary="List pods.",
    responses={**json_response("Pods page", "PodsPage"), **error_responses(400, 401, 403, 503)},
    response_class=Response,
)
def list_all_pods(
    svc: ServicesDep,
    access: WorkloadReader,
    deleted: PodsDeletedQ = None,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="Pods to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1..500.")] = 50,
    sort_order: Annotated[str | None, Query(alias="sortOrder", description="asc or desc.")] = None,
    sort_by: Annotated[
        str | None, Query(alias="sortBy", description=f"One of {', '.join(POD_FIELDS)}; default createdAt.")
    ] = None,
    filter_by: PodsFilterQ = None,
    verbosity: Annotated[
        str | None, Query(description="brief (default) or full: full adds workloadName and projectName.")
    ] = None,
    completed: Annotated[
        str | None, Query(description="true: only completed pods; false: only the others; all/absent: all.")
    ] = None,
    search: PodsSearchQ = None,
) -> Response:
    query = _pod_query(access, deleted, filter_by, search, completed)
    sort = _pod_sort(sort_by, sort_order)
    full = parse_enum("verbosity", verbosity, Verbosity) is Verbosity.FULL if verbosity else False
    with svc.db.read() as conn:
        page = list_pods(conn, query, sort=sort, offset=offset, limit=limit, full=full)
    return _pods_page(page, offset, limit)


@router.get(
    "/workloads/pods/count",
    operation_id="count_pods",
    summary="Count pods.",
    responses={
        **json_response("Number of matching pods", "WorkloadsCount"),
        **error_responses(400, 401, 403, 503),
    },
    response_class=Response,
)
def count_all_pods(
    svc: ServicesDep,
    access: WorkloadReader,
    deleted: PodsDeletedQ = None,
    filter_by: PodsFilterQ = None,
    search: PodsSearchQ = None,
) -> Response:
    query = _pod_query(access, deleted, filter_by, search)
    with svc.db.read() as conn:
        count = count_pods(conn, query)
    return Response(f'{{"count":{count}}}', media_type="application/json")


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
    search: PodsSearchQ = None,
) -> Response:
    workload_id = workload_id_of(workloadId)
    only_deleted = parse_bool("deleted", deleted)
    words = parse_search(search)
    with svc.db.read() as conn:
        require_readable(conn, access, workload_id)
        page = workload_pods_page(
            conn, workload_id, deleted=only_deleted, offset=offset, limit=limit, words=words
        )
    return _pods_page(page, offset, limit)


@router.get(
    "/workloads/inferences/revisions/{revisionId}/pods",
    operation_id="get_revision_pods",
    summary="Get the pods of an inference workload revision.",
    responses={**json_response("Pods page", "PodsPage"), **error_responses(400, 401, 403, 404, 503)},
    response_class=Response,
)
def get_revision_pods(
    svc: ServicesDep,
    access: WorkloadReader,
    revisionId: Annotated[
        str,
        Path(
            description="The UUID of the revision (a Knative Revision's uid).",
            json_schema_extra={"format": "uuid"},
        ),
    ],
    deleted: PodsDeletedQ = None,
    # Not upstream's (it pages nothing): a revision's deleted pods pile up with every scale-down, so
    # an answer is at most 5,000 pods, and ``next`` says where the rest begin.
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="Pods to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5_000, description="Page size, 1..5000.")] = 5_000,
) -> Response:
    revision_id = uuid_of("revisionId", revisionId)
    only_deleted = parse_bool("deleted", deleted)
    with svc.db.read() as conn:
        page = revision_pods_page(
            conn, revision_id, scope=readable(access), deleted=only_deleted, offset=offset, limit=limit
        )
    if page is None:
        raise not_found(f"revision {revision_id} not found")
    return _pods_page(page, offset, limit)


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
