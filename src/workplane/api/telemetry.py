"""GET /api/v1/workloads/telemetry (docs/contract.md §7).

Its router is registered before the workloads router, so ``/workloads/telemetry`` is never taken for
``/workloads/{workloadId}``.
"""

from __future__ import annotations

import csv
import io
import uuid
from functools import partial
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from workplane.api.deps import ServicesDep, WorkloadReader, readable
from workplane.api.openapi import error_responses
from workplane.api.params import parse_enum, strip_enum_prefix
from workplane.domain.phases import Phase
from workplane.domain.timefmt import format_ms, now_ms
from workplane.query.filters import MAX_VALUE_LENGTH, QueryError
from workplane.query.telemetry import MAX_GROUP_BY, PENDING_TIME_KEY, GroupKey, TelemetryQuery, TelemetryType
from workplane.store import telemetry as store
from workplane.store.scopes import restrict

router = APIRouter(prefix="/api/v1", tags=["Workloads"])

CSV = "text/csv"

TELEMETRY_HELP = (
    "Counts (WORKLOADS_COUNT), summed allocated GPUs (GPU_ALLOCATION) or the number of Pending workloads "
    "by time since entering Pending (PENDING_TIME_DISTRIBUTION: buckets 0-5m, 5m-1h, 1h-24h, 24h+, lower "
    "bound inclusive, as a group with key PendingTime; all four always present) over the workloads that "
    "are not deleted, optionally grouped by up to two keys (one with PENDING_TIME_DISTRIBUTION: a value "
    "has at most two groups); one value per combination that has workloads, and a workload in two "
    "current node pools counts in both. Values are decimal strings. "
    "`Accept: text/csv` answers a header row (the group keys, then `value`) and one row per value."
)


def _items(raw: list[str] | None) -> list[str]:
    """Items of a list parameter, comma-joined in one value (the official client) and/or repeated,
    each with an optional ``SomeEnum.`` prefix."""
    return [
        strip_enum_prefix(item.strip()) for value in raw or [] for item in value.split(",") if item.strip()
    ]


def _text(param: str, value: str | None) -> str | None:
    if not value:
        return None
    if "\x00" in value:
        raise QueryError(param, f"{value!r} contains a NUL character")
    if len(value) > MAX_VALUE_LENGTH:
        raise QueryError(param, f"{value[:40]!r}... is longer than {MAX_VALUE_LENGTH}")
    return value


def parse_telemetry(
    telemetry_type: str | None,
    *,
    group_by: list[str] | None = None,
    cluster_id: str | None = None,
    department_id: str | None = None,
    nodepool_name: str | None = None,
    filter_by_phases: list[str] | None = None,
) -> TelemetryQuery:
    if not telemetry_type:
        raise QueryError("telemetryType", f"is required (one of {', '.join(t.value for t in TelemetryType)})")
    kind = parse_enum("telemetryType", telemetry_type, TelemetryType)
    keys: list[GroupKey] = []
    for item in _items(group_by):
        key = parse_enum("groupBy", item, GroupKey)
        if key in keys:
            raise QueryError("groupBy", f"{item!r} is given twice")
        keys.append(key)
    if len(keys) > MAX_GROUP_BY:
        raise QueryError(
            "groupBy", f"at most {MAX_GROUP_BY} keys, got {len(keys)}: {','.join(group_by or [])!r}"
        )
    if kind is TelemetryType.PENDING_TIME_DISTRIBUTION and len(keys) > MAX_GROUP_BY - 1:
        # The time bucket is a group of its own, and a value has at most two (TelemetryResponse's
        # maxItems, which the official client's model enforces).
        raise QueryError(
            "groupBy",
            f"PENDING_TIME_DISTRIBUTION takes at most {MAX_GROUP_BY - 1} key besides its PendingTime "
            f"bucket, got {len(keys)}",
        )
    phases = frozenset(parse_enum("filterByPhases", item, Phase).value for item in _items(filter_by_phases))
    cluster = _text("clusterId", cluster_id)
    if cluster is not None:
        try:
            cluster = str(uuid.UUID(cluster))
        except ValueError:
            raise QueryError("clusterId", f"{cluster_id!r} is not a UUID") from None
    return TelemetryQuery(
        type=kind,
        group_by=tuple(keys),
        cluster_id=cluster,
        department_id=_text("departmentId", department_id),
        nodepool=_text("nodepoolName", nodepool_name),
        phases=phases or None,
    )


def wants_csv(accept: str | None) -> bool:
    """``text/csv`` when the Accept header prefers it to JSON (JSON by default, and for ``*/*``)."""
    if not accept:
        return False
    best_csv = best_json = -1.0
    for rank, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        score = quality - rank * 1e-6  # equal qualities: the earlier one wins
        if quality <= 0:
            continue
        if media.lower() == CSV:
            best_csv = max(best_csv, score)
        elif media.lower() in ("application/json", "application/*", "*/*"):
            best_json = max(best_json, score)
    return best_csv > best_json


def _json(kind: TelemetryType, at_ms: int, values: list[store.TelemetryValue]) -> bytes:
    body = {
        "type": kind.value,
        "timestamp": format_ms(at_ms),
        "values": [
            {"value": v.value, "groups": [{"key": g.key, "value": g.value, "name": g.name} for g in v.groups]}
            if v.groups
            else {"value": v.value}
            for v in values
        ],
    }
    return orjson.dumps(body)


def _csv(keys: list[str], values: list[store.TelemetryValue]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)  # RFC 4180: CRLF line ends, quoting where needed
    writer.writerow([*keys, "value"])
    for v in values:
        writer.writerow([*(g.value for g in v.groups), v.value])
    return out.getvalue()


@router.get(
    "/workloads/telemetry",
    operation_id="get_workloads_telemetry",
    summary="Get the workloads telemetry.",
    description=TELEMETRY_HELP,
    responses={
        200: {
            "description": "Executed successfully.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TelemetryResponse"}},
                CSV: {"schema": {"type": "string"}},
            },
        },
        **error_responses(400, 401, 403, 503),
    },
    response_class=Response,
)
def get_workloads_telemetry(
    svc: ServicesDep,
    access: WorkloadReader,
    telemetry_type: Annotated[
        str | None,
        Query(
            alias="telemetryType", description="WORKLOADS_COUNT, GPU_ALLOCATION or PENDING_TIME_DISTRIBUTION."
        ),
    ] = None,
    cluster_id: Annotated[
        str | None, Query(alias="clusterId", description="Only this cluster (UUID).")
    ] = None,
    nodepool_name: Annotated[
        str | None, Query(alias="nodepoolName", description="Only workloads currently in this node pool.")
    ] = None,
    department_id: Annotated[
        str | None, Query(alias="departmentId", description="Only this department.")
    ] = None,
    group_by: Annotated[
        list[str] | None,
        Query(
            alias="groupBy",
            description="Up to two of ClusterId, DepartmentId, ProjectId, Type, CurrentNodepools, Phase, "
            "Category; comma-joined or repeated.",
        ),
    ] = None,
    filter_by_phases: Annotated[
        list[str] | None,
        Query(alias="filterByPhases", description="Only these phases; comma-joined or repeated."),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    query = parse_telemetry(
        telemetry_type,
        group_by=group_by,
        cluster_id=cluster_id,
        department_id=department_id,
        nodepool_name=nodepool_name,
        filter_by_phases=filter_by_phases,
    )
    now = now_ms()
    with svc.db.read() as conn:
        values = store.workload_telemetry(
            conn,
            query,
            catalog=svc.catalog.get(conn),
            now_ms=now,
            restrict=partial(restrict, scopes=readable(access)),
        )
    if wants_csv(accept):
        keys = [PENDING_TIME_KEY] if query.type is TelemetryType.PENDING_TIME_DISTRIBUTION else []
        keys += [k.value for k in query.group_by]
        return Response(_csv(keys, values), media_type=CSV)
    return Response(_json(query.type, now, values), media_type="application/json")
