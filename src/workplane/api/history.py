"""GET /api/v1/workloads/{workloadId}/history: the workload's phase changes, oldest first."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader
from workplane.api.openapi import error_responses, json_response
from workplane.api.workload_parts import require_readable, workload_id_of
from workplane.domain.timefmt import format_ms
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
    workload_id = workload_id_of(workloadId)
    with svc.db.read() as conn:
        require_readable(conn, access, workload_id)
        records = phase_updates(history_of(conn, workload_id))
    page: dict[str, Any] = {"records": records[offset : offset + limit]}
    if offset + limit < len(records):
        page["next"] = offset + limit
    return Response(orjson.dumps(page), media_type="application/json")
