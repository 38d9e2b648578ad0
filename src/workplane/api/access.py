"""Administrator-only API for credentials, access rules and the audit log.

``/access-keys`` (create, list, rotate the secret, revoke), ``/authorization/access-rules`` (grant,
list, revoke), ``/authorization/roles`` (the permission table) and ``/audit``. Every change is recorded
in the audit log in its own transaction, and clears this process's cache of resolved callers once
committed, so a revoked key or rule takes effect on the next request.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workplane.api.deps import AccessAdmin, Services, ServicesDep, client_address
from workplane.api.errors import ApiError, bad_request, not_found
from workplane.api.openapi import error_responses
from workplane.api.responses import json_answer
from workplane.auth import audit, credentials
from workplane.auth import rules as access_rules
from workplane.auth.rules import ROLE_PERMISSIONS, ROLE_SCOPES
from workplane.domain.roles import KeyKind, Role
from workplane.domain.scopes import Scope, ScopeType
from workplane.domain.timefmt import format_ms, now_ms
from workplane.domain.values import INT64_MAX
from workplane.store.schema import access_keys
from workplane.store.schema import access_rules as rules_table

router = APIRouter(prefix="/api/v1", tags=["Access control"])

_ERRORS = error_responses(400, 401, 403, 404, 409, 503)


def _ms(value: int | None) -> str | None:
    return format_ms(value) if value is not None else None


def _key(row: Any) -> dict[str, Any]:
    return {
        "clientId": row.client_id,
        "name": row.name,
        "kind": row.kind,
        "clusterId": row.cluster_id,
        "createdAt": format_ms(row.created_at),
        "createdBy": row.created_by,
        "rotatedAt": _ms(row.rotated_at),
        "revokedAt": _ms(row.revoked_at),
    }


def _rule(row: Any, tenant_id: int) -> dict[str, Any]:
    tenant = row.scope_type == ScopeType.TENANT
    return {
        "id": row.id,
        "subjectId": row.subject,
        "roleName": row.role,
        "scopeType": row.scope_type,
        "scopeId": str(tenant_id) if tenant else row.scope_id,
        "createdAt": format_ms(row.created_at),
        "createdBy": row.created_by,
    }


def _write(svc: Services, change: Any) -> Any:
    """Run ``change(connection)`` in a write transaction; once committed, forget cached callers."""

    def run() -> Any:
        with svc.db.write() as connection:
            result = change(connection)
        svc.access.clear()
        return result

    return run_in_threadpool(run)


def _read(svc: Services, query: Any) -> Any:
    def run() -> Any:
        with svc.db.read() as connection:
            return query(connection)

    return run_in_threadpool(run)


def _administrators_left(
    connection: sa.Connection, *, without_key: str | None, without_rule: str | None
) -> int:
    """Live keys that would still be administrators on the tenant after the change."""
    statement = (
        sa.select(sa.func.count(sa.distinct(access_keys.c.client_id)))
        .select_from(access_keys.join(rules_table, rules_table.c.subject == access_keys.c.client_id))
        .where(
            access_keys.c.revoked_at.is_(None),
            rules_table.c.role == Role.ADMINISTRATOR.value,
            rules_table.c.scope_type == ScopeType.TENANT.value,
        )
    )
    if without_key is not None:
        statement = statement.where(access_keys.c.client_id != without_key)
    if without_rule is not None:
        statement = statement.where(rules_table.c.id != without_rule)
    return int(connection.execute(statement).scalar_one())


_LAST_ADMIN = "refused: no live administrator would be left (grant the role to another key first)"


# --- access keys -----------------------------------------------------------------------------------


class KeyCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: KeyKind = KeyKind.USER
    client_id: str | None = Field(default=None, alias="clientId", pattern=credentials.CLIENT_ID_PATTERN)
    cluster_id: uuid.UUID | None = Field(default=None, alias="clusterId")


@router.get(
    "/access-keys",
    operation_id="list_access_keys",
    summary="List access keys (never their secrets).",
    responses=_ERRORS,
    response_class=Response,
)
async def list_keys(svc: ServicesDep, _admin: AccessAdmin) -> Response:
    rows = await _read(svc, credentials.list_keys)
    return json_answer({"accessKeys": [_key(r) for r in rows]})


@router.post(
    "/access-keys",
    operation_id="create_access_key",
    summary="Create an access key; its secret is in this answer only.",
    status_code=201,
    responses=_ERRORS,
    response_class=Response,
)
async def create_key(
    request: Request, svc: ServicesDep, admin: AccessAdmin, body: Annotated[KeyCreate, Body()]
) -> Response:
    cluster = str(body.cluster_id) if body.cluster_id else None

    def change(connection: sa.Connection) -> tuple[credentials.NewKey, Any]:
        try:
            new = credentials.create_key(
                connection,
                kind=body.kind,
                name=body.name,
                by=admin.client_id,
                now_ms=now_ms(),
                client_id=body.client_id,
                cluster_id=cluster,
            )
        except credentials.AccessKeyError as exc:
            code = 409 if "already exists" in str(exc) else 400
            raise ApiError(code, str(exc)) from None
        audit.record(
            connection,
            actor=admin.client_id,
            action="access-key.create",
            target=new.client_id,
            status=201,
            address=client_address(request),
            detail=f"kind={body.kind.value}" + (f" cluster={cluster}" if cluster else ""),
        )
        return new, credentials.get_key(connection, new.client_id)

    new, row = await _write(svc, change)
    return json_answer({**_key(row), "clientSecret": new.secret}, status=201)


@router.post(
    "/access-keys/{clientId}/secret",
    operation_id="rotate_access_key",
    summary="Replace an access key's secret; the new secret is in this answer only.",
    responses=_ERRORS,
    response_class=Response,
)
async def rotate_key(request: Request, svc: ServicesDep, admin: AccessAdmin, clientId: str) -> Response:
    def change(connection: sa.Connection) -> str:
        secret = credentials.rotate_key(connection, clientId, now_ms=now_ms())
        if secret is None:
            raise not_found(f"no live access key {clientId}")
        audit.record(
            connection,
            actor=admin.client_id,
            action="access-key.rotate",
            target=clientId,
            address=client_address(request),
        )
        return secret

    secret = await _write(svc, change)
    return json_answer({"clientId": clientId, "clientSecret": secret})


@router.delete(
    "/access-keys/{clientId}",
    operation_id="revoke_access_key",
    summary="Revoke an access key: its tokens are refused from now on.",
    status_code=204,
    responses=_ERRORS,
    response_class=Response,
)
async def revoke_key(request: Request, svc: ServicesDep, admin: AccessAdmin, clientId: str) -> Response:
    def change(connection: sa.Connection) -> None:
        if _administrators_left(connection, without_key=clientId, without_rule=None) == 0:
            raise ApiError(409, _LAST_ADMIN)
        if not credentials.revoke_key(connection, clientId, now_ms=now_ms()):
            raise not_found(f"no live access key {clientId}")
        audit.record(
            connection,
            actor=admin.client_id,
            action="access-key.revoke",
            target=clientId,
            status=204,
            address=client_address(request),
        )

    await _write(svc, change)
    return Response(status_code=204)


# --- access rules ----------------------------------------------------------------------------------


class RuleCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    subject_id: str = Field(alias="subjectId", min_length=1, max_length=128)
    role_name: Role = Field(alias="roleName")
    scope_type: ScopeType = Field(alias="scopeType")
    scope_id: str | None = Field(default=None, alias="scopeId", max_length=253)


def _scope(body: RuleCreate) -> Scope:
    if body.scope_type is ScopeType.TENANT:
        return Scope(ScopeType.TENANT, access_rules.TENANT_SCOPE_ID)
    if not body.scope_id:
        raise bad_request(f"invalid access rule: a {body.scope_type} scope needs scopeId")
    if body.scope_type is ScopeType.CLUSTER:
        try:
            return Scope(ScopeType.CLUSTER, str(uuid.UUID(body.scope_id)))
        except ValueError:
            raise bad_request(f"invalid scopeId: {body.scope_id!r} is not a cluster UUID") from None
    return Scope(body.scope_type, body.scope_id)


@router.get(
    "/authorization/access-rules",
    operation_id="list_access_rules",
    summary="List access rules.",
    responses=_ERRORS,
    response_class=Response,
)
async def list_rules(
    svc: ServicesDep,
    _admin: AccessAdmin,
    subject_id: Annotated[
        str | None, Query(alias="subjectId", description="Only this subject's rules.")
    ] = None,
) -> Response:
    rows = await _read(svc, lambda c: access_rules.list_rules(c, [subject_id] if subject_id else None))
    tenant = svc.settings.tenant_id
    return json_answer({"accessRules": [_rule(r, tenant) for r in rows]})


@router.post(
    "/authorization/access-rules",
    operation_id="create_access_rule",
    summary="Grant a role on a scope to an access key.",
    status_code=201,
    responses=_ERRORS,
    response_class=Response,
)
async def create_rule(
    request: Request, svc: ServicesDep, admin: AccessAdmin, body: Annotated[RuleCreate, Body()]
) -> Response:
    scope = _scope(body)

    def change(connection: sa.Connection) -> Any:
        key = credentials.get_key(connection, body.subject_id)
        if key is None or key.revoked_at is not None:
            raise bad_request(f"invalid access rule: no live access key {body.subject_id}")
        if body.role_name is Role.CLUSTER_AGENT and key.kind == KeyKind.AGENT and key.cluster_id != scope.id:
            raise bad_request("invalid access rule: an agent key reports for its own cluster only")
        try:
            rule_id = access_rules.grant(
                connection, body.subject_id, body.role_name, scope, by=admin.client_id, now_ms=now_ms()
            )
        except access_rules.RuleError as exc:
            raise bad_request(f"invalid access rule: {exc}") from None
        audit.record(
            connection,
            actor=admin.client_id,
            action="access-rule.grant",
            target=body.subject_id,
            status=201,
            address=client_address(request),
            detail=f"{body.role_name.value} on {scope.type.value} {scope.id}",
        )
        return connection.execute(sa.select(rules_table).where(rules_table.c.id == rule_id)).one()

    row = await _write(svc, change)
    return json_answer(_rule(row, svc.settings.tenant_id), status=201)


@router.delete(
    "/authorization/access-rules/{ruleId}",
    operation_id="delete_access_rule",
    summary="Revoke an access rule.",
    status_code=204,
    responses=_ERRORS,
    response_class=Response,
)
async def delete_rule(request: Request, svc: ServicesDep, admin: AccessAdmin, ruleId: str) -> Response:
    def change(connection: sa.Connection) -> None:
        if _administrators_left(connection, without_key=None, without_rule=ruleId) == 0:
            raise ApiError(409, _LAST_ADMIN)
        row = access_rules.revoke_rule(connection, ruleId)
        if row is None:
            raise not_found(f"no access rule {ruleId}")
        audit.record(
            connection,
            actor=admin.client_id,
            action="access-rule.revoke",
            target=row.subject,
            status=204,
            address=client_address(request),
            detail=f"{row.role} on {row.scope_type} {row.scope_id}",
        )

    await _write(svc, change)
    return Response(status_code=204)


@router.get(
    "/authorization/roles",
    operation_id="list_roles",
    summary="The roles, their permissions and the scope types they can be granted on.",
    responses=_ERRORS,
    response_class=Response,
)
async def list_roles(_admin: AccessAdmin) -> Response:
    roles = [
        {
            "name": role.value,
            "permissions": sorted(p.value for p in ROLE_PERMISSIONS[role]),
            "scopeTypes": [t.value for t in ScopeType if t in ROLE_SCOPES[role]],
        }
        for role in Role
    ]
    return json_answer({"roles": roles})


# --- audit log -------------------------------------------------------------------------------------


@router.get(
    "/audit",
    operation_id="list_audit_entries",
    summary="Read the audit log, oldest first; page on with after=<last id>.",
    responses=_ERRORS,
    response_class=Response,
)
async def list_audit(
    svc: ServicesDep,
    _admin: AccessAdmin,
    after: Annotated[int, Query(ge=0, le=INT64_MAX, description="Entries with a larger id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: Annotated[str | None, Query(description="Only this actor's entries.")] = None,
    action: Annotated[str | None, Query(description="Only this action, e.g. request.refused.")] = None,
) -> Response:
    # Refusals still in this process's buffer are written first, so the answer is up to date.
    await run_in_threadpool(svc.refusals.flush, svc.db)
    rows = await _read(
        svc, lambda c: audit.list_entries(c, after=after, limit=limit, actor=actor, action=action)
    )
    entries = [
        {
            "id": r.id,
            "at": format_ms(r.at_ms),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "status": r.status,
            "address": r.address,
            "detail": r.detail,
        }
        for r in rows
    ]
    body: dict[str, Any] = {"entries": entries}
    if len(rows) == limit:
        body["next"] = rows[-1].id
    return json_answer(body)
