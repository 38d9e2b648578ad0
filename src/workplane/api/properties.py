"""Workload categories, priorities and types (docs/contract.md §6)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from workplane.api.deps import CatalogReader, CatalogWriter, ReadConn, ServicesDep, WriteConn, client_address
from workplane.api.errors import ApiError, bad_request, not_found
from workplane.api.openapi import error_responses, json_response
from workplane.api.params import parse_bool
from workplane.api.responses import json_answer
from workplane.auth import audit
from workplane.domain import catalog as defaults
from workplane.domain.fields import FieldSpec, Kind
from workplane.domain.timefmt import format_ms, now_ms
from workplane.query.filters import parse_filter
from workplane.store import catalog as store
from workplane.store.compile import text_predicate
from workplane.store.schema import workload_types

router = APIRouter(prefix="/api/v1", tags=["Workload properties"])

TYPE_FILTER_FIELDS = {"name": FieldSpec("name", Kind.TEXT), "group": FieldSpec("group", Kind.TEXT)}


def _uuid(param: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise bad_request(f"invalid {param}: {value!r} is not a UUID") from None


def _category(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "createdAt": format_ms(row.created_at),
        "createdBy": store.SEEDED_BY,
    }


def _priority(row: sa.Row[Any], tenant_id: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "value": row.value,
        "source": "Run:ai",
        "createdAt": format_ms(row.created_at),
        "updatedAt": format_ms(row.updated_at),
        "scopeType": "tenant",
        "scopeId": str(tenant_id),
    }


def _type(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "group": row.group,
        "categoryId": row.category_id,
        "categoryName": row.category_name,
        "priorityId": row.priority_id,
        "priorityName": row.priority_name,
        "createdAt": format_ms(row.created_at),
        "createdBy": row.created_by,
        "updatedAt": format_ms(row.updated_at),
        "updatedBy": row.updated_by,
    }


@router.get(
    "/workload-categories",
    operation_id="list_workload_categories",
    summary="List workload categories.",
    responses={**json_response("Categories", "CategoriesPage"), **error_responses(401, 403, 503)},
    response_class=Response,
)
def list_categories(conn: ReadConn, _caller: CatalogReader) -> Response:
    return json_answer({"categories": [_category(r) for r in store.list_categories(conn)]})


@router.get(
    "/workload-categories/{categoryId}",
    operation_id="get_workload_category_by_id",
    summary="Get a workload category.",
    responses={
        **json_response("The category", "WorkloadCategory"),
        **error_responses(400, 401, 403, 404, 503),
    },
    response_class=Response,
)
def get_category(conn: ReadConn, _caller: CatalogReader, categoryId: str) -> Response:
    row = store.get_category(conn, _uuid("categoryId", categoryId))
    if row is None:
        raise not_found(f"workload category {categoryId} not found")
    return json_answer(_category(row))


@router.get(
    "/workload-priorities",
    operation_id="list_workload_priorities",
    summary="List workload priorities.",
    responses={**json_response("Priorities", "PrioritiesPage"), **error_responses(401, 403, 503)},
    response_class=Response,
)
def list_priorities(svc: ServicesDep, conn: ReadConn, _caller: CatalogReader) -> Response:
    tenant = svc.settings.tenant_id
    return json_answer({"priorities": [_priority(r, tenant) for r in store.list_priorities(conn)]})


@router.get(
    "/workload-types",
    operation_id="list_workload_types",
    summary="List workload types.",
    responses={**json_response("Types", "TypesPage"), **error_responses(400, 401, 403, 503)},
    response_class=Response,
)
def list_types(
    conn: ReadConn,
    _caller: CatalogReader,
    external_types_only: Annotated[
        str | None,
        Query(
            alias="externalTypesOnly",
            description="true: only third-party and administrator-registered types.",
        ),
    ] = None,
    filter_by: Annotated[
        list[str] | None, Query(alias="filterBy", description="Terms on name or group, e.g. group==apps.")
    ] = None,
) -> Response:
    terms = parse_filter(filter_by or [], fields=TYPE_FILTER_FIELDS)
    where = [text_predicate(workload_types.c[t.field.name], t.op, t.text) for t in terms]
    rows = store.list_types(
        conn, external_only=parse_bool("externalTypesOnly", external_types_only), where=where
    )
    return json_answer({"types": [_type(r) for r in rows]})


@router.get(
    "/workload-types/{workloadTypeId}",
    operation_id="get_workload_type_by_id",
    summary="Get a workload type.",
    responses={**json_response("The type", "WorkloadTypeConfig"), **error_responses(400, 401, 403, 404, 503)},
    response_class=Response,
)
def get_type(conn: ReadConn, _caller: CatalogReader, workloadTypeId: str) -> Response:
    row = store.get_type(conn, _uuid("workloadTypeId", workloadTypeId))
    if row is None:
        raise not_found(f"workload type {workloadTypeId} not found")
    return json_answer(_type(row))


class TypeUpdate(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    category_id: uuid.UUID | None = Field(default=None, alias="categoryId")
    priority_id: uuid.UUID | None = Field(default=None, alias="priorityId")


class TypeCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    name: str = Field(pattern=defaults.KIND_NAME_PATTERN, max_length=63)
    group: str = Field(pattern=defaults.GROUP_PATTERN, max_length=253)
    category_id: uuid.UUID = Field(alias="categoryId")
    priority_id: uuid.UUID = Field(alias="priorityId")


def _resolve(
    conn: sa.Connection, category_id: uuid.UUID | None, priority_id: uuid.UUID | None
) -> store.TypeChange:
    category = priority = None
    if category_id is not None:
        category = store.category_name_by_id(conn, str(category_id))
        if category is None:
            raise bad_request(f"invalid categoryId: no category {category_id}")
    if priority_id is not None:
        priority = store.priority_name_by_id(conn, str(priority_id))
        if priority is None:
            raise bad_request(f"invalid priorityId: no priority {priority_id}")
    return store.TypeChange(category, priority)


@router.put(
    "/workload-types/{workloadTypeId}",
    operation_id="update_workload_type",
    summary="Change a workload type's default category or priority.",
    responses={**json_response("Updated", "WorkloadTypeConfig"), **error_responses(400, 401, 403, 404, 503)},
    response_class=Response,
)
def update_type(
    request: Request,
    conn: WriteConn,
    caller: CatalogWriter,
    workloadTypeId: str,
    update: Annotated[TypeUpdate, Body()],
) -> Response:
    type_id = _uuid("workloadTypeId", workloadTypeId)
    if store.get_type(conn, type_id) is None:
        raise not_found(f"workload type {workloadTypeId} not found")
    change = _resolve(conn, update.category_id, update.priority_id)
    store.update_type(conn, type_id, change, by=caller.client_id, now_ms=now_ms())
    row = store.get_type(conn, type_id)
    assert row is not None
    audit.record(
        conn,
        actor=caller.client_id,
        action="workload-type.update",
        target=row.name,
        address=client_address(request),
        detail=f"category={row.category_name} priority={row.priority_name}",
    )
    return json_answer(_type(row))


@router.post(
    "/workload-types",
    operation_id="create_workload_type",
    summary="Register a third-party workload type.",
    status_code=201,
    responses={
        **json_response("Created", "WorkloadTypeConfig", 201),
        **error_responses(400, 401, 403, 409, 503),
    },
    response_class=Response,
)
def create_type(
    request: Request, conn: WriteConn, caller: CatalogWriter, body: Annotated[TypeCreate, Body()]
) -> Response:
    change = _resolve(conn, body.category_id, body.priority_id)
    if change.category_name is None or change.priority_name is None:  # both ids are required fields
        raise bad_request("categoryId and priorityId are required")
    if store.type_name_exists(conn, body.name):
        raise ApiError(409, f"workload type {body.name!r} already exists")
    if not re.fullmatch(defaults.GROUP_PATTERN, body.group):
        raise bad_request(f"invalid group {body.group!r}")
    type_id = store.create_type(
        conn,
        name=body.name,
        group=body.group,
        category_name=change.category_name,
        priority_name=change.priority_name,
        by=caller.client_id,
        now_ms=now_ms(),
    )
    row = store.get_type(conn, type_id)
    assert row is not None
    audit.record(
        conn,
        actor=caller.client_id,
        action="workload-type.create",
        target=row.name,
        status=201,
        address=client_address(request),
        detail=f"group={row.group} category={row.category_name} priority={row.priority_name}",
    )
    return json_answer(_type(row), status=201)


@router.delete(
    "/workload-types/{workloadTypeId}",
    operation_id="delete_workload_type",
    summary="Delete an administrator-registered workload type.",
    status_code=204,
    responses={204: {"description": "Deleted"}, **error_responses(400, 401, 403, 404, 409, 503)},
    response_class=Response,
)
def delete_type(request: Request, conn: WriteConn, caller: CatalogWriter, workloadTypeId: str) -> Response:
    type_id = _uuid("workloadTypeId", workloadTypeId)
    row = store.get_type(conn, type_id)
    if row is None:
        raise not_found(f"workload type {workloadTypeId} not found")
    if row.source != defaults.TYPE_SOURCE_USER:
        raise bad_request(f"workload type {row.name} is built in ({row.source}) and cannot be deleted")
    if store.type_in_use(conn, row.name):
        raise ApiError(409, f"workload type {row.name} still has workloads")
    store.delete_type(conn, type_id)
    audit.record(
        conn,
        actor=caller.client_id,
        action="workload-type.delete",
        target=row.name,
        status=204,
        address=client_address(request),
    )
    return Response(status_code=204)
