"""Health and the API description: open endpoints (no token)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from workplane.api.deps import ServicesDep
from workplane.api.errors import error_response
from workplane.api.openapi import build_openapi, json_response

router = APIRouter(tags=["Health"])


@router.get(
    "/api/v1/health",
    operation_id="health",
    summary="Liveness and database reachability.",
    responses={**json_response("Healthy", "Health")},
    openapi_extra={"security": []},  # open: no token needed
    response_class=Response,
)
def health(svc: ServicesDep) -> Response:
    try:
        with svc.db.read() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        return error_response(503, "database unreachable", headers={"Retry-After": "1"})
    return Response('{"status":"ok"}', media_type="application/json")


@router.get("/api/docs", include_in_schema=False)
def docs(request: Request) -> JSONResponse:
    return JSONResponse(build_openapi(request.app))
