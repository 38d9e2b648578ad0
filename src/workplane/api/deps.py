"""Dependencies shared by the routes: the services object, the store connection, the caller and
what it may do.

A route states the permission it needs as a dependency and receives the caller's ``Access``:

    def telemetry(..., access: WorkloadReader) -> Response:
        ... restrict(table, access.scopes(Permission.WORKLOADS_READ)) ...

``WorkloadReader`` (``require(Permission.WORKLOADS_READ)``) answers 401 without a valid token and 403
when no rule grants the permission anywhere; the rows a reader may see are those inside
``access.scopes(...)`` — ``query.scopes.restrict`` turns them into the SQL clause.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from workplane.api.errors import ApiError
from workplane.api.gate import ExpensiveReads
from workplane.auth.audit import RefusalLog
from workplane.auth.cache import AccessCache
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.auth.rules import Access, Permission, administrator, load_access
from workplane.auth.throttle import TokenThrottle
from workplane.auth.tokens import InvalidToken, TokenSigner
from workplane.query.scopes import ScopeSet
from workplane.server_metrics import ServerMetrics
from workplane.services.store_workers import StoreWorkers
from workplane.settings import Settings
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    catalog: CatalogCache
    signer: TokenSigner
    workers: StoreWorkers
    access: AccessCache = field(default_factory=lambda: AccessCache(2.0))
    throttle: TokenThrottle = field(default_factory=TokenThrottle)
    refusals: RefusalLog = field(default_factory=RefusalLog)
    expensive_reads: ExpensiveReads = field(default_factory=lambda: ExpensiveReads(1))
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    # ``workplane serve --no-auth`` only (loopback, with a warning): every request acts as administrator.
    auth_disabled: bool = False


# Dependencies that do no blocking work are ``async``: FastAPI runs a plain ``def`` dependency in the
# thread pool, and a hop there and back costs more than these functions themselves.
async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def read_connection(svc: ServicesDep) -> Iterator[sa.Connection]:
    with svc.db.read() as connection:
        yield connection


def write_connection(svc: ServicesDep) -> Iterator[sa.Connection]:
    with svc.db.write() as connection:
        yield connection


# scope="function": the transaction ends (a write commits) when the route returns, *before* the answer
# is sent. FastAPI's default ends a yield dependency after the response has gone out, which would
# answer 200 for a write not yet committed (a client reading right after it could see the old value,
# and a failing commit could not become the 503 it should be).
ReadConn = Annotated[sa.Connection, Depends(read_connection, scope="function")]
WriteConn = Annotated[sa.Connection, Depends(write_connection, scope="function")]


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="workplane"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def _load(svc: Services, client_id: str) -> Access | None:
    with svc.db.read() as connection:
        return load_access(connection, client_id)


async def caller(request: Request, svc: ServicesDep) -> Access:
    """The authenticated caller and its access rules (401 without a valid token of a live key)."""
    if svc.auth_disabled:
        access = administrator(ADMIN_CLIENT_ID)
        request.state.access = access
        return access
    header = request.headers.get("authorization")
    if not header:
        svc.metrics.bearer_refusals.labels("missing").inc()
        raise unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        svc.metrics.bearer_refusals.labels("malformed").inc()
        raise unauthorized("the Authorization header must be 'Bearer <token>'")
    try:
        claims = svc.signer.verify(token.strip())
    except InvalidToken as exc:
        svc.metrics.bearer_refusals.labels("invalid").inc()
        raise unauthorized(f"invalid token: {exc}") from None
    found, resolved = svc.access.get(claims.subject)
    if not found:
        resolved = await run_in_threadpool(_load, svc, claims.subject)
        svc.access.put(claims.subject, resolved)
    if resolved is None:
        svc.metrics.bearer_refusals.labels("revoked").inc()
        raise unauthorized("invalid token: its access key is no longer valid")
    request.state.access = resolved
    return resolved


Caller = Annotated[Access, Depends(caller)]


def require(permission: Permission) -> Callable[[Access], Coroutine[Any, Any, Access]]:
    """A dependency: the caller, if some access rule grants it ``permission`` (else 403)."""

    async def check(access: Caller) -> Access:
        if not access.allows(permission):
            raise forbidden(f"permission denied: {permission} is not granted to {access.client_id}")
        return access

    return check


WorkloadReader = Annotated[Access, Depends(require(Permission.WORKLOADS_READ))]
WorkloadWriter = Annotated[Access, Depends(require(Permission.WORKLOADS_WRITE))]
CatalogReader = Annotated[Access, Depends(require(Permission.CATALOG_READ))]
CatalogWriter = Annotated[Access, Depends(require(Permission.CATALOG_WRITE))]
ClusterAgent = Annotated[Access, Depends(require(Permission.SYNC))]
AccessAdmin = Annotated[Access, Depends(require(Permission.ACCESS_ADMIN))]


def readable(access: Access) -> ScopeSet:
    """Where ``access`` may read workloads (list, count, get, telemetry, metrics)."""
    return access.scopes(Permission.WORKLOADS_READ)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
