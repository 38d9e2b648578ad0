"""Dependencies shared by the routes: the services object, the store connection, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from workplane.api.errors import ApiError
from workplane.auth.credentials import Principal
from workplane.auth.tokens import InvalidToken, TokenSigner
from workplane.settings import Settings
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    catalog: CatalogCache
    signer: TokenSigner


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


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="workplane"'})


async def caller(request: Request, svc: ServicesDep) -> Principal:
    """The authenticated caller. Scopes and roles (access rules) will narrow what it may see;
    for now every valid token acts with the role it was issued for."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    try:
        claims = svc.signer.verify(token.strip())
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    return Principal(claims.subject, claims.role)


Caller = Annotated[Principal, Depends(caller)]
