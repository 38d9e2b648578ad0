"""GET /api/v1/workloads/{workloadId}/history: the workload's phase changes, oldest first."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader, readable
from workplane.api.errors import bad_request, not_found
from workplane.api.openapi import error_responses, json_response
from workplane.domain.timefmt import format_ms
from workplane.store import workloads as store
from workplane.store.ingest import history_of

router = APIRouter(prefix="/api/v1", tags=["Workloads"])


def phase_updates(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run:ai ``HistoryRecord`` phase updates from the stored history: one per change of phase (the
    history also keeps entries where only a derived quantity changed). The history keeps no phase
    messages, so ``phaseMessage`` is empty. Entries are taken in the agent's order (revisions): an entry
    where only a derived quantity changed is timed at its observation, which may be later than the
    next phase change's own time."""
    records: list[dict[str, Any]] = []
    previous = None
    for entry in sorted(entries, key=lambda e: int(e["revision"])):
        if entry["phase"] == previous:
            continue
        previous = entry["phase"]
        records.append(
            {
                "meta": {"creationTimestamp": format_ms(entry["at_ms"]), "type": "PhaseUpdate"},
                "spec": {"phaseUpdate": {"phase": entry["phase"], "phaseMessage": ""}},
            }
        )
    return records


@router.get(
    "/workloads/{workloadId}/history",
    operation_id="get_workload_history",
    summary="Get the workload history.",
    responses={**json_response("History page", "HistoryPage"), **error_responses(400, 401, 403, 404, 503)},
    response_class=Response,
)
def get_workload_history(
    svc: ServicesDep,
    access: WorkloadReader,
    workloadId: str,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647, description="Records to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size, 1..500.")] = 50,
) -> Response:
    try:
        workload_id = str(uuid.UUID(workloadId))
    except ValueError:
        raise bad_request(f"invalid workloadId: {workloadId!r} is not a UUID") from None
    with svc.db.read() as conn:
        # Scoped as the workload itself: outside the caller's scopes it does not exist.
        if store.get_workload(conn, workload_id, scope=readable(access)) is None:
            raise not_found(f"workload {workload_id} not found")
        records = phase_updates(history_of(conn, workload_id))
    page: dict[str, Any] = {"records": records[offset : offset + limit]}
    if offset + limit < len(records):
        page["next"] = offset + limit
    return Response(orjson.dumps(page), media_type="application/json")
