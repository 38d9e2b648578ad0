"""Ingesting a sync batch: its body validated once into one model (``SyncBatch``), checked for its
cluster, its workloads, pods and events written by the store, then its samples by the metrics store,
in the same write transaction — all or nothing. ``apply_body`` is what a sync worker process runs on
a request's body; the route only reads the request and shapes the answer."""

from __future__ import annotations

import time

import orjson
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from workplane.domain.batch import SyncBatch
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.record import NO_NUL_CHECKED
from workplane.domain.timefmt import now_ms
from workplane.metrics.store import UnknownSeriesWorkload, store_samples
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.ingest import (
    Batch,
    BatchError,
    BatchResult,
    Plan,
    check_batch,
    prepare_batch,
    write_batch,
)
from workplane.store.ingest import write_prepared as write_prepared_rows

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
    result = sync_batch(db, catalogs, batch, cluster_id=cluster_id, tenant_id=tenant_id, now_ms=now_ms())
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


def apply_batch(
    connection: sa.Connection,
    body: SyncBatch,
    *,
    catalog: CatalogSnapshot,
    cluster_id: str,
    tenant_id: int,
    now_ms: int,
) -> BatchResult:
    """Check, plan and write a batch in one write transaction."""
    batch = check_batch(body, cluster_id=cluster_id, tenant_id=tenant_id, now_ms=now_ms, catalog=catalog)
    return _with_samples(connection, batch, write_batch(connection, batch))


def sync_batch(
    db: Database, catalogs: CatalogCache, body: SyncBatch, *, cluster_id: str, tenant_id: int, now_ms: int
) -> BatchResult:
    """Check and plan a batch in a read transaction, then write it in a write transaction: on SQLite
    the write lock (one writer at a time) is held for the writing only, so another agent's batch is
    planned meanwhile. An error while writing rolls the whole batch back."""
    with db.read() as connection:
        catalog = catalogs.get(connection)
        batch = check_batch(body, cluster_id=cluster_id, tenant_id=tenant_id, now_ms=now_ms, catalog=catalog)
        plan = prepare_batch(connection, batch)
    with db.write() as connection:
        return write_prepared(connection, batch, plan)


def write_prepared(connection: sa.Connection, batch: Batch, plan: Plan | None) -> BatchResult:
    """Write a batch planned earlier (``store.ingest.prepare_batch``), samples included."""
    return _with_samples(connection, batch, write_prepared_rows(connection, batch, plan))


def _with_samples(connection: sa.Connection, batch: Batch, result: BatchResult) -> BatchResult:
    """Store the batch's samples once its workloads are written (a sample must name one of the
    cluster's workloads, and those the batch changed get their idle GPU fields recomputed)."""
    try:
        result.samples = store_samples(connection, batch.cluster_id, batch.body.samples, result.applied_ids)
    except UnknownSeriesWorkload as exc:
        raise BatchError(str(exc)) from None
    return result
