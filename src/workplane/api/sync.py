"""POST /api/v1/clusters/{clusterId}/sync: the way in for cluster agents (docs/sync-protocol.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workplane.api.deps import ClusterAgent, ServicesDep, WriteConn, forbidden
from workplane.api.errors import bad_request
from workplane.api.openapi import error_responses, json_response
from workplane.domain.observation import FullResync, Observation, SampleSeries
from workplane.domain.timefmt import now_ms
from workplane.store.ingest import BatchError, apply_batch

router = APIRouter(prefix="/api/v1", tags=["Cluster sync"])

MAX_ITEMS = 20_000


class SyncBatch(BaseModel):
    """A batch of observations from one cluster's agent. ``workloads`` items are Run:ai workload
    records (camelCase) plus ``revision`` and optionally ``observedAt`` / ``deletedAt``; ``clusterId``
    may be left out and defaults to the path's."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    cluster_name: str | None = Field(default=None, alias="clusterName", max_length=253)
    full_resync: FullResync | None = Field(default=None, alias="fullResync")
    workloads: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    samples: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)


def _describe(prefix: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{prefix}{'.' + where if where else ''}: {first.get('msg', 'invalid')}"


def _parse(batch: SyncBatch, cluster_id: str) -> tuple[list[Observation], list[SampleSeries]]:
    observations = []
    for index, item in enumerate(batch.workloads):
        item.setdefault("clusterId", cluster_id)
        try:
            observations.append(Observation.model_validate(item))
        except ValidationError as exc:
            raise bad_request(f"invalid batch: {_describe(f'workloads[{index}]', exc)}") from None
    samples = []
    for index, item in enumerate(batch.samples):
        try:
            samples.append(SampleSeries.model_validate(item))
        except ValidationError as exc:
            raise bad_request(f"invalid batch: {_describe(f'samples[{index}]', exc)}") from None
    return observations, samples


@router.post(
    "/clusters/{clusterId}/sync",
    operation_id="sync_cluster",
    summary="Report what a cluster's agent observed (workloads, deletions, metric samples).",
    responses={**json_response("Applied", "SyncResult"), **error_responses(400, 401, 403, 503)},
    response_class=Response,
)
def sync_cluster(
    svc: ServicesDep,
    conn: WriteConn,
    agent: ClusterAgent,
    clusterId: str,
    batch: Annotated[SyncBatch, Body()],
) -> Response:
    try:
        cluster_id = str(uuid.UUID(clusterId))
    except ValueError:
        raise bad_request(f"invalid clusterId: {clusterId!r} is not a UUID") from None
    if not agent.may_sync(cluster_id):
        # Audited as a refused request (api.errors), with the caller and the cluster it wrote for.
        raise forbidden(f"permission denied: {agent.client_id} may not report for cluster {cluster_id}")
    observations, samples = _parse(batch, cluster_id)
    try:
        result = apply_batch(
            conn,
            cluster_id=cluster_id,
            cluster_name=batch.cluster_name,
            observations=observations,
            samples=samples,
            resync=batch.full_resync,
            catalog=svc.catalog.get(conn),
            tenant_id=svc.settings.tenant_id,
            now_ms=now_ms(),
        )
    except BatchError as exc:
        # Raising inside the WriteConn dependency rolls the whole batch back.
        raise bad_request(f"invalid batch: {exc}") from None
    body = {
        "applied": result.applied,
        "ignored": result.ignored,
        "deleted": result.deleted,
        "samples": result.samples,
    }
    return Response(orjson.dumps(body), media_type="application/json")
