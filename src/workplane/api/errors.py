"""Every failure becomes the Run:ai ``Error`` body: ``{"code", "message", "details"}``.

Validation problems are 400 (never FastAPI's 422 shape), unknown paths 404, wrong methods 405, a
locked or unreachable database 503 with Retry-After; anything unexpected is a 500 whose body says
nothing about the internals (the traceback goes to the server log only).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from workplane.query.filters import QueryError
from workplane.store.database import is_cancelled_query

log = logging.getLogger("workplane.api")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ApiError(Exception):
    def __init__(
        self, code: int, message: str, details: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def bad_request(message: str, details: str | None = None) -> ApiError:
    return ApiError(400, message, details)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def error_response(
    code: int, message: str, details: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    body["details"] = details if details is not None else _TITLES.get(code, "")
    return Response(orjson.dumps(body), status_code=code, media_type="application/json", headers=headers)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _describe_validation(exc: RequestValidationError) -> str:
    """``limit: Input should be less than or equal to 500 (got '501')``: the parameter, what is wrong,
    and the offending text (for scalar inputs; a whole body is not echoed)."""
    parts = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            parts.append("body: not valid JSON")
            continue
        names = [str(p) for p in loc[1:]]
        where = ".".join(names) if loc and loc[0] != "body" else ".".join(["body", *names])
        text = f"{where or 'request'}: {error.get('msg', 'invalid')}"
        value = error.get("input")
        if error.get("type") != "missing" and isinstance(value, str | int | float | bool):
            text += f" (got {_shown(value)})"
        parts.append(text)
    return "; ".join(parts) or "request"


# Refused requests go to the audit log: who (the caller when known, else the client id a token request
# named, else "-"), what (method and path) and why (the message the client got).
REFUSED = frozenset({401, 403, 429})


def _audit_refusal(request: Request, exc: ApiError) -> None:
    refusals = getattr(getattr(request.app.state, "services", None), "refusals", None)
    if refusals is None:
        return
    access = getattr(request.state, "access", None)
    actor = getattr(access, "client_id", None) or getattr(request.state, "attempted_client_id", None) or "-"
    refusals.add(
        actor=actor,
        target=f"{request.method} {request.url.path}",
        status=exc.code,
        address=request.client.host if request.client else None,
        detail=exc.message,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.code in REFUSED:
            _audit_refusal(request, exc)
        return error_response(exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(QueryError)
    async def _query_error(_request: Request, exc: QueryError) -> Response:
        return error_response(400, f"invalid {exc.param}: {exc.message}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return error_response(400, f"invalid {_describe_validation(exc)}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint"
        return error_response(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def _database_unavailable(request: Request, exc: sqlalchemy.exc.OperationalError) -> Response:
        if is_cancelled_query(exc):
            settings = getattr(getattr(request.app.state, "services", None), "settings", None)
            limit = getattr(settings, "query_timeout_ms", None)
            log.warning("query stopped (timeout or client gone): %s %s", request.method, request.url.path)
            return error_response(
                503,
                f"the query took longer than {limit} ms and was stopped; narrow the filter or retry later",
                headers={"Retry-After": "5"},
            )
        # Locked SQLite (busy_timeout passed) or PostgreSQL down / restarting: retryable.
        log.warning("database unavailable: %s", exc.orig)
        return error_response(
            503, "the database is busy or unreachable; retry shortly", headers={"Retry-After": "1"}
        )

    @app.exception_handler(sqlalchemy.exc.DBAPIError)
    async def _database_error(_request: Request, exc: sqlalchemy.exc.DBAPIError) -> Response:
        if exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.InterfaceError):
            return error_response(
                503, "the database connection was lost; retry shortly", headers={"Retry-After": "1"}
            )
        log.exception("database error")
        return error_response(500, "internal error")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal error")
