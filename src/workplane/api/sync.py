"""POST /api/v1/clusters/{clusterId}/sync: the way in for cluster agents (docs/sync-protocol.md)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from workplane.api.deps import ClusterAgent, ServicesDep, forbidden
from workplane.api.errors import ApiError, bad_request
from workplane.api.openapi import error_responses, json_response
from workplane.domain.batch import MAX_ITEMS, MAX_PODS
from workplane.domain.observation import FullResync
from workplane.services.ingest import apply_body_timed
from workplane.services.store_workers import WorkersUnavailable
from workplane.store.ingest import BatchError

router = APIRouter(prefix="/api/v1", tags=["Cluster sync"])


# The request body as the API description shows it: ``domain.batch.SyncBatch`` with its items as
# plain objects (the Observation schema is long and says less than docs/sync-protocol.md). It only
# documents: the body is validated by ``services.ingest.parse_batch``. The docstring is the
# description served.
class _DocumentedBatch(BaseModel):
    """A batch of observations from one cluster's agent. ``workloads`` items are Run:ai workload
    records (camelCase) plus ``revision`` and optionally ``observedAt`` / ``deletedAt``; ``clusterId``
    may be left out and defaults to the path's (docs/sync-protocol.md)."""

    model_config = ConfigDict(title="SyncBatch", populate_by_name=True, extra="forbid")

    cluster_name: str | None = Field(default=None, alias="clusterName", max_length=253)
    full_resync: FullResync | None = Field(default=None, alias="fullResync")
    workloads: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    samples: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    pods: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PODS)
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PODS)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its local ``$defs`` references replaced by the definitions themselves."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _body_schema() -> dict[str, Any]:
    schema = _DocumentedBatch.model_json_schema(by_alias=True)
    inlined: dict[str, Any] = _inline(schema, schema.pop("$defs", {}))
    return inlined


@router.post(
    "/clusters/{clusterId}/sync",
    operation_id="sync_cluster",
    summary="Report what a cluster's agent observed (workloads, deletions, metric samples).",
    responses={**json_response("Applied", "SyncResult"), **error_responses(400, 401, 403, 503)},
    response_class=Response,
    # The body is read raw and validated by ``services.ingest.parse_batch``; this documents it.
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _body_schema()}}}
    },
)
async def sync_cluster(svc: ServicesDep, agent: ClusterAgent, clusterId: str, request: Request) -> Response:
    try:
        cluster_id = str(uuid.UUID(clusterId))
    except ValueError:
        raise bad_request(f"invalid clusterId: {clusterId!r} is not a UUID") from None
    if not agent.may_sync(cluster_id):
        # Audited as a refused request (api.errors), with the caller and the cluster it wrote for.
        raise forbidden(f"permission denied: {agent.client_id} may not report for cluster {cluster_id}")
    body = await request.body()
    try:
        answer, seconds = await svc.workers.run(
            apply_body_timed, body, cluster_id=cluster_id, tenant_id=svc.settings.tenant_id
        )
    except BatchError as exc:
        svc.metrics.sync_batches.labels("invalid").inc()
        raise bad_request(f"invalid batch: {exc}") from None
    except WorkersUnavailable as exc:
        svc.metrics.sync_batches.labels("unavailable").inc()
        raise ApiError(503, str(exc), headers={"Retry-After": "1"}) from None
    svc.metrics.observe_batch(orjson.loads(answer), seconds)
    return Response(answer, media_type="application/json")
