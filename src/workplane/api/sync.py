"""POST /api/v1/clusters/{clusterId}/sync: the way in for cluster agents (docs/sync-protocol.md)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from workplane.api.deps import ClusterAgent, ServicesDep, forbidden
from workplane.api.errors import ApiError, bad_request
from workplane.api.openapi import error_responses, json_response
from workplane.domain.events import EventObservation
from workplane.domain.observation import FullResync, Observation, SampleSeries
from workplane.domain.pods import PodObservation
from workplane.domain.record import NO_NUL_CHECKED
from workplane.domain.timefmt import now_ms
from workplane.services.store_workers import WorkersUnavailable
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.ingest import BatchError, sync_batch

router = APIRouter(prefix="/api/v1", tags=["Cluster sync"])

MAX_ITEMS = 20_000
MAX_PODS = 50_000


class SyncBatch(BaseModel):
    """A batch of observations from one cluster's agent. ``workloads`` items are Run:ai workload
    records (camelCase) plus ``revision`` and optionally ``observedAt`` / ``deletedAt``; ``clusterId``
    may be left out and defaults to the path's."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    cluster_name: str | None = Field(default=None, alias="clusterName", max_length=253)
    full_resync: FullResync | None = Field(default=None, alias="fullResync")
    workloads: list[Observation] = Field(default_factory=list, max_length=MAX_ITEMS)
    samples: list[SampleSeries] = Field(default_factory=list, max_length=MAX_ITEMS)
    pods: list[PodObservation] = Field(default_factory=list, max_length=MAX_PODS)
    events: list[EventObservation] = Field(default_factory=list, max_length=MAX_PODS)

    @field_validator("cluster_name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


# The request body as the API description shows it: items as plain objects (the Observation schema is
# long and says less than docs/sync-protocol.md). The docstring is the description served.
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


_BATCH = TypeAdapter(SyncBatch)
_NUL_ESCAPE = b"\\u0000"  # the only way a NUL can appear in JSON text (a raw one is invalid JSON)


def _where(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the message shows it: ``workloads[3].phase``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def parse_batch(body: bytes) -> SyncBatch:
    """The whole request body validated in one call, straight from its JSON text: pydantic's parser
    builds the observations without an intermediate dict per item, which is most of what a
    per-item ``model_validate`` used to cost. The first error names the item (``BatchError``)."""
    context = {NO_NUL_CHECKED: _NUL_ESCAPE not in body}
    try:
        return _BATCH.validate_json(body, context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            raise BatchError("body: not valid JSON") from None
        where = _where(tuple(first.get("loc", ())))
        raise BatchError(f"{where}: {first.get('msg', 'invalid')}") from None


def apply_body(
    db: Database, catalogs: CatalogCache, body: bytes, *, cluster_id: str, tenant_id: int
) -> bytes:
    """Validate and apply one request body; the answer's JSON. A store task (``StoreWorkers``): it
    runs in a worker process when the server has them, the body and the answer travelling as bytes."""
    batch = parse_batch(body)
    result = sync_batch(
        db,
        catalogs,
        cluster_id=cluster_id,
        cluster_name=batch.cluster_name,
        observations=batch.workloads,
        samples=batch.samples,
        resync=batch.full_resync,
        tenant_id=tenant_id,
        now_ms=now_ms(),
        pods=batch.pods,
        events=batch.events,
    )
    answer = {
        "applied": result.applied,
        "ignored": result.ignored,
        "deleted": result.deleted,
        "samples": result.samples,
    }
    # Only then: an agent that sends no pods or events sees the answer it always did.
    if batch.pods:
        answer["pods"] = result.pods
    if batch.events:
        answer["events"] = result.events
    return orjson.dumps(answer)


def apply_body_timed(
    db: Database, catalogs: CatalogCache, body: bytes, *, cluster_id: str, tenant_id: int
) -> tuple[bytes, float]:
    """``apply_body``, and the seconds it took where it ran: the server process counts them for its
    metrics, so a worker process never keeps a metric of its own (``workplane.server_metrics``)."""
    started = time.perf_counter()
    answer = apply_body(db, catalogs, body, cluster_id=cluster_id, tenant_id=tenant_id)
    return answer, time.perf_counter() - started


@router.post(
    "/clusters/{clusterId}/sync",
    operation_id="sync_cluster",
    summary="Report what a cluster's agent observed (workloads, deletions, metric samples).",
    responses={**json_response("Applied", "SyncResult"), **error_responses(400, 401, 403, 503)},
    response_class=Response,
    # The body is read raw and validated by ``parse_batch``; this documents it.
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
