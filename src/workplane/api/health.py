"""Health and the API description: open endpoints (no token)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from workplane.api.deps import ServicesDep
from workplane.api.errors import error_response
from workplane.api.openapi import build_openapi, json_response
from workplane.api.ui import IfNoneMatch, assets, serve_asset

router = APIRouter(tags=["Health"])
AcceptHeader = Annotated[str | None, Header()]


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
def docs(request: Request, accept: AcceptHeader = None, if_none_match: IfNoneMatch = None) -> Response:
    """The API reference: a page for a browser (it asks for HTML), which renders the description from
    ``/api/openapi.json``; the description itself, as JSON, for anything else (curl, scripts)."""
    if accept is not None and "text/html" in accept.lower():
        return serve_asset(assets()["api-docs.html"], if_none_match, Vary="Accept")
    return JSONResponse(build_openapi(request.app), headers={"Vary": "Accept"})


@router.get("/openapi.json", include_in_schema=False)
def openapi_at_the_root(request: Request) -> JSONResponse:
    """Where tools look for an OpenAPI document by default; the same as ``/api/openapi.json``."""
    return JSONResponse(build_openapi(request.app))
