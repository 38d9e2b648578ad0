"""POST /api/v1/token: access keys in, signed JWTs out (docs/contract.md §9)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from workplane.api.deps import ServicesDep, client_address
from workplane.api.errors import ApiError, bad_request
from workplane.api.openapi import error_responses, json_response
from workplane.api.params import strip_enum_prefix
from workplane.auth.credentials import Principal, authenticate
from workplane.auth.throttle import Attempt

router = APIRouter(prefix="/api/v1", tags=["Tokens"])

SUPPORTED_GRANTS = ("client_credentials", "app_token")
# Body keys are matched case-insensitively; appId/appSecret (the official client) are synonyms.
_ID_KEYS = ("clientid", "appid")
_SECRET_KEYS = ("clientsecret", "appsecret")


def _field(body: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key, value in body.items():
        if key.lower() in keys:
            if not isinstance(value, str):
                raise bad_request(f"invalid token request: {key} must be a string")
            return value
    return None


@router.post(
    "/token",
    operation_id="get_token",
    summary="Exchange an access key for an access token.",
    responses={
        **json_response("Token", "TokenResponse"),
        **error_responses(400, 401, 429, 503),
    },
    openapi_extra={
        "security": [],  # open: this is where tokens come from
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AccessKeyTokenRequest"}}
            },
        },
    },
    response_class=Response,
)
async def issue_token(request: Request, svc: ServicesDep) -> Response:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("invalid token request: the body is not JSON") from None
    if not isinstance(body, dict):
        raise bad_request("invalid token request: the body must be a JSON object")
    lowered = {k.lower(): v for k, v in body.items() if isinstance(k, str)}
    grant = lowered.get("granttype")
    if not isinstance(grant, str):
        raise bad_request("invalid token request: grantType is required")
    grant = strip_enum_prefix(grant)
    if grant not in SUPPORTED_GRANTS:
        raise bad_request(
            f"invalid token request: grantType {grant!r} is not supported; use client_credentials"
        )
    client_id = _field(body, _ID_KEYS)
    secret = _field(body, _SECRET_KEYS)
    if not client_id or not secret:
        raise bad_request("invalid token request: clientId and clientSecret are required")
    request.state.attempted_client_id = client_id[:128]
    address = client_address(request)
    # Throttled before any secret is checked: a guesser spends no scrypt time of ours either. The
    # request is counted as a failure first and given back on success (``auth.throttle``).
    attempt = await run_in_threadpool(_begin, svc, client_id, address)
    if attempt.wait_s:
        svc.metrics.token_requests.labels("throttled").inc()
        wait = str(attempt.wait_s)
        raise ApiError(429, "too many failed token requests; retry later", headers={"Retry-After": wait})
    # scrypt takes tens of milliseconds: keep it off the event loop.
    principal = await run_in_threadpool(_check, svc, client_id, secret)
    if principal is None:
        svc.metrics.token_requests.labels("invalid_credentials").inc()
        raise ApiError(401, "invalid client credentials")
    await run_in_threadpool(_succeeded, svc, attempt, client_id, address)
    svc.metrics.token_requests.labels("issued").inc()
    lifetime = svc.settings.token_lifetime_s
    token = svc.signer.issue(principal.client_id, principal.role, lifetime)
    return Response(
        orjson.dumps({"accessToken": token, "expiresIn": lifetime}), media_type="application/json"
    )


def _begin(svc: ServicesDep, client_id: str, address: str) -> Attempt:
    with svc.db.write() as conn:
        return svc.throttle.begin(conn, client_id, address)


def _succeeded(svc: ServicesDep, attempt: Attempt, client_id: str, address: str) -> None:
    with svc.db.write() as conn:
        svc.throttle.succeeded(conn, attempt, client_id, address)


def _check(svc: ServicesDep, client_id: str, secret: str) -> Principal | None:
    with svc.db.read() as conn:
        return authenticate(conn, client_id, secret)
