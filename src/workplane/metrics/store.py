"""The embedded metrics store: samples in ``metric_chunks``, many per row, on SQLite and PostgreSQL.

Layout. A chunk holds samples of one (workload, metric) within one UTC day ("block"), encoded by
``codec`` (about 1–2.5 bytes a sample). Ingestion writes each batch's samples as they come, split at
day boundaries, so a chunk never spans two blocks. ``compact`` later merges the chunks of a block into
one: rows are then few and large (a day of 15-second samples is one row of a few kilobytes), which
keeps the per-row and per-page overhead of both databases well below a byte a sample, and lets a
week be read in seven rows.

Retention (``purge_samples``) drops whole chunks whose last sample is older than the cut-off: a chunk
spanning the cut-off stays until all of its samples are past it, so up to one day more than the
retention period may be kept and served. History (``workload_history``) is never touched here.

These functions take a connection and never commit; the caller owns the transaction.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from workplane.domain.observation import MeasuredMetric, SampleSeries
from workplane.domain.scopes import ScopeSet
from workplane.metrics import codec
from workplane.metrics.idle import gpus_idle, idle_fields
from workplane.metrics.sampling import Steps
from workplane.metrics.series import Samples
from workplane.store.database import chunked, insert_ignore, keys_present
from workplane.store.schema import metric_chunks, workload_history, workloads
from workplane.store.scopes import restrict

BLOCK_MS = 86_400_000  # one UTC day per compacted chunk
COMPACT_OPEN_AT = 8  # the current day's block is merged once it has this many chunks

c = metric_chunks.c
w = workloads.c


class UnknownSeriesWorkload(ValueError):
    """Samples for a workload the reporting cluster does not have."""


def _split_by_block(series: SampleSeries) -> Iterator[tuple[list[int], list[float]]]:
    times, values = series.timestamps, series.values
    if times[0] // BLOCK_MS == times[-1] // BLOCK_MS:
        yield times, values
        return
    start = 0
    while start < len(times):
        stop = bisect_left(times, (times[start] // BLOCK_MS + 1) * BLOCK_MS, lo=start)
        yield times[start:stop], values[start:stop]
        start = stop


def store_samples(
    connection: sa.Connection, cluster_id: str, samples: list[SampleSeries], observed: Sequence[str] = ()
) -> int:
    """Store a sync batch's samples (each workload must belong to ``cluster_id``) and bring the idle
    GPU fields of the workloads concerned up to date — those with new GPU_UTILIZATION samples and
    those in ``observed`` (just updated from an observation, which may change their allocation).
    Returns the number of samples."""
    ids = sorted({s.workload_id.lower() for s in samples})
    known = keys_present(connection, workloads, "id", ids, cluster_id=cluster_id)
    chunks = []
    utilisation: set[str] = set()
    for index, series in enumerate(samples):
        workload_id = series.workload_id.lower()
        if workload_id not in known:
            raise UnknownSeriesWorkload(f"samples[{index}]: no workload {workload_id} in this cluster")
        if series.metric is MeasuredMetric.GPU_UTILIZATION:
            utilisation.add(workload_id)
        for times, values in _split_by_block(series):
            chunks.append(
                {
                    "workload_id": workload_id,
                    "metric": str(series.metric),
                    "start_ms": times[0],
                    "end_ms": times[-1],
                    "count": len(values),
                    "data": codec.encode(times, values),
                }
            )
    # A retried batch carries the same chunks: the primary key (workload, metric, start) drops them.
    # (If compaction merged them meanwhile, the copy is stored again; readers and compaction keep
    # one value per instant.)
    insert_ignore(connection, metric_chunks, chunks)
    refresh = utilisation | _with_utilisation(connection, [i for i in observed if i not in utilisation])
    refresh_idle(connection, sorted(refresh))
    return sum(len(s.values) for s in samples)


def _with_utilisation(connection: sa.Connection, ids: list[str]) -> set[str]:
    return keys_present(
        connection, metric_chunks, "workload_id", ids, metric=MeasuredMetric.GPU_UTILIZATION.value
    )


# --- reading ---------------------------------------------------------------------------------------


class ChunkStore:
    """The embedded back end of ``metrics.backend.SampleSource``, over one connection."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def read(self, workload_id: str, metric: MeasuredMetric, after_ms: int, until_ms: int) -> list[Samples]:
        rows = self.connection.execute(
            sa.select(c.data)
            .where(
                c.workload_id == workload_id,
                c.metric == metric.value,
                # A chunk lies within one day: this bounds the primary-key range that is walked.
                c.start_ms > after_ms - BLOCK_MS,
                c.start_ms <= until_ms,
                c.end_ms > after_ms,
            )
            .order_by(c.start_ms)
        ).scalars()
        return [codec.decode_chunk(data) for data in rows]

    def newest_first(self, workload_id: str, metric: MeasuredMetric) -> Iterator[Samples]:
        """The series' chunks from the latest back, each decoded only when the caller asks for it
        (the idle rule usually stops within the newest)."""
        before: int | None = None
        batch = 1
        while True:
            query = sa.select(c.start_ms, c.data).where(
                c.workload_id == workload_id, c.metric == metric.value
            )
            if before is not None:
                query = query.where(c.start_ms < before)
            rows = self.connection.execute(query.order_by(c.start_ms.desc()).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield codec.decode_chunk(row.data)
            before = rows[-1].start_ms
            batch = 16


@dataclass(frozen=True, slots=True)
class WorkloadFacts:
    id: str
    type: str
    created_ms: int
    deleted_ms: int | None


def workload_facts(connection: sa.Connection, workload_id: str, *, scope: ScopeSet) -> WorkloadFacts | None:
    """The workload's facts, or None when it does not exist or lies outside ``scope``."""
    row = connection.execute(
        sa.select(w.id, w.type, w.created_at, w.deleted_at).where(
            w.id == workload_id, restrict(workloads, scope)
        )
    ).first()
    return None if row is None else WorkloadFacts(row.id, row.type, row.created_at, row.deleted_at)


def history_steps(
    connection: sa.Connection, facts: WorkloadFacts, metrics: Sequence[str], now_ms: int
) -> dict[str, Steps]:
    """Each derived series as a step function over the workload's history, valid from its first
    entry (never before ``createdAt``) until its deletion or now, whichever is first."""
    h = workload_history.c
    rows = connection.execute(
        sa.select(h.at_ms, h["values"]).where(h.workload_id == facts.id).order_by(h.at_ms, h.revision)
    ).all()
    times = [r.at_ms for r in rows]
    documents = [orjson.loads(r[1]) for r in rows]
    valid_from = max(times[0], facts.created_ms) if times else facts.created_ms
    valid_until = min(facts.deleted_ms if facts.deleted_ms is not None else now_ms + 1, now_ms + 1)
    return {
        metric: Steps(times, [_number(d.get(metric)) for d in documents], valid_from, valid_until)
        for metric in metrics
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- idle GPUs -------------------------------------------------------------------------------------


def refresh_idle(
    connection: sa.Connection, workload_ids: Sequence[str], known: Mapping[str, bool | None] | None = None
) -> int:
    """Recompute ``idle_gpus`` / ``idle_allocated_gpus`` (columns and document) of these workloads
    from their GPU_UTILIZATION samples — or, with ``known``, from whether their GPUs are idle as
    another source (Prometheus) found it; rows are written only where a value changes."""
    if not workload_ids:
        return 0
    source = ChunkStore(connection)
    updates = []
    for part in chunked(list(workload_ids)):
        rows = connection.execute(
            sa.select(w.id, w.allocated_gpu, w.idle_gpus, w.idle_allocated_gpus, w.doc).where(w.id.in_(part))
        ).all()
        for row in rows:
            if known is not None:
                idle = known.get(row.id)
            else:
                idle = gpus_idle(source.newest_first(row.id, MeasuredMetric.GPU_UTILIZATION))
            if idle is None:
                continue
            gpus, allocated = idle_fields(idle, row.allocated_gpu)
            if (row.idle_gpus, row.idle_allocated_gpus) == (gpus, allocated):
                continue
            doc = orjson.loads(row.doc)
            doc["idleGpus"], doc["idleAllocatedGpus"] = gpus, allocated
            updates.append(
                {"b_id": row.id, "gpus": gpus, "allocated": allocated, "doc": orjson.dumps(doc).decode()}
            )
    if updates:
        connection.execute(
            workloads.update()
            .where(w.id == sa.bindparam("b_id"))
            .values(
                idle_gpus=sa.bindparam("gpus"),
                idle_allocated_gpus=sa.bindparam("allocated"),
                doc=sa.bindparam("doc"),
            ),
            updates,
        )
    return len(updates)


# --- maintenance -----------------------------------------------------------------------------------


def purge_samples(connection: sa.Connection, *, older_than_ms: int) -> int:
    """Drop the chunks whose every sample is older than ``older_than_ms``. Returns how many."""
    result = connection.execute(metric_chunks.delete().where(c.end_ms < older_than_ms))
    return int(result.rowcount or 0)


def compact(connection: sa.Connection, *, now_ms: int, limit: int = 200) -> int:
    """Merge the chunks of up to ``limit`` blocks that hold more than one: past days always, the
    current day once it has ``COMPACT_OPEN_AT`` chunks. Returns the number of blocks merged (call
    again while it returns ``limit``)."""
    block = c.start_ms // BLOCK_MS
    count = sa.func.count()
    candidates = connection.execute(
        sa.select(c.workload_id, c.metric, block.label("block"), count.label("n"))
        .group_by(c.workload_id, c.metric, block)
        .having(sa.or_(sa.and_(count > 1, block < now_ms // BLOCK_MS), count >= COMPACT_OPEN_AT))
        .limit(limit)
    ).all()
    for workload_id, metric, number, _n in candidates:
        _merge_block(connection, workload_id, metric, number * BLOCK_MS)
    return len(candidates)


def _merge_block(connection: sa.Connection, workload_id: str, metric: str, block_start: int) -> None:
    in_block = sa.and_(
        c.workload_id == workload_id,
        c.metric == metric,
        c.start_ms >= block_start,
        c.start_ms < block_start + BLOCK_MS,
    )
    rows = connection.execute(sa.select(c.start_ms, c.data).where(in_block).order_by(c.start_ms)).all()
    if len(rows) < 2:
        return
    by_time: dict[int, float] = {}
    for row in rows:
        samples = codec.decode_chunk(row.data)
        by_time.update(zip(samples.times, samples.floats(), strict=True))
    times = sorted(by_time)
    values = [by_time[t] for t in times]
    connection.execute(metric_chunks.delete().where(in_block, c.start_ms.in_([r.start_ms for r in rows])))
    connection.execute(
        metric_chunks.insert().values(
            workload_id=workload_id,
            metric=metric,
            start_ms=times[0],
            end_ms=times[-1],
            count=len(times),
            data=codec.encode(times, values),
        )
    )
