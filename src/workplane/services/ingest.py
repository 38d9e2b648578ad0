"""Ingesting a sync batch: its workloads, pods and events written by the store, then its samples by
the metrics store, in the same write transaction — all or nothing."""

from __future__ import annotations

from typing import Unpack

import sqlalchemy as sa

from workplane.domain.catalog import CatalogSnapshot
from workplane.metrics.store import UnknownSeriesWorkload, store_samples
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database
from workplane.store.ingest import (
    Batch,
    BatchArgs,
    BatchError,
    BatchResult,
    PreparedBatch,
    check_batch,
    write_batch,
)


def apply_batch(
    connection: sa.Connection, *, catalog: CatalogSnapshot, **args: Unpack[BatchArgs]
) -> BatchResult:
    """Check, plan and write a batch in one write transaction."""
    batch = check_batch(catalog=catalog, **args)
    return _with_samples(connection, batch, write_batch(connection, batch))


def sync_batch(db: Database, catalogs: CatalogCache, **args: Unpack[BatchArgs]) -> BatchResult:
    """Check and plan a batch in a read transaction, then write it in a write transaction: on SQLite
    the write lock (one writer at a time) is held for the writing only, so another agent's batch is
    planned meanwhile. An error while writing rolls the whole batch back."""
    with db.read() as connection:
        prepared = PreparedBatch(connection, check_batch(catalog=catalogs.get(connection), **args))
    with db.write() as connection:
        return write_prepared(connection, prepared)


def write_prepared(connection: sa.Connection, prepared: PreparedBatch) -> BatchResult:
    """Write a batch planned earlier (``PreparedBatch``), samples included."""
    return _with_samples(connection, prepared.batch, prepared.write(connection))


def _with_samples(connection: sa.Connection, batch: Batch, result: BatchResult) -> BatchResult:
    """Store the batch's samples once its workloads are written (a sample must name one of the
    cluster's workloads, and those the batch changed get their idle GPU fields recomputed)."""
    try:
        result.samples = store_samples(connection, batch.cluster_id, batch.samples, result.applied_ids)
    except UnknownSeriesWorkload as exc:
        raise BatchError(str(exc)) from None
    return result
