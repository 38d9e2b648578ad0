"""Applying sync batches: what agents observed becomes the inventory and its history.

One batch is applied in one transaction, all or nothing. Per workload, an observation applies only
when its ``revision`` is newer than the stored one, so repeated, retried and out-of-order batches
change nothing twice. Derived facts (phase clock, completedAt, deletedAt, category/priority defaults)
come from ``domain``; rows are built by ``domain.record.build_row`` like every other write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import FullResync, Observation, SampleSeries, derived_values, history_key
from workplane.domain.phases import PhaseClock
from workplane.domain.record import Previous, build_row, transition
from workplane.domain.timefmt import to_ms
from workplane.metrics.store import UnknownSeriesWorkload, store_samples
from workplane.store.database import insert_rows, rows_by_key, update_rows, upsert
from workplane.store.rollups import RollupDeltas, deferred_triggers
from workplane.store.text_search import index_rows_after, last_rowid
from workplane.store.schema import clusters, workload_history, workload_nodepools, workloads
from workplane.store.workloads import (
    InvalidWorkload,
    check_record,
    mark_deleted,
    nodepool_rows,
    upsert_organisation,
)

w = workloads.c
_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


class BatchError(ValueError):
    """A batch item that cannot be applied; the whole batch is refused."""


@dataclass
class BatchResult:
    applied: int = 0
    ignored: int = 0
    deleted: int = 0
    samples: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Stored:
    row: dict[str, Any]  # every stored column, to write back only what changed

    @property
    def clock(self) -> PhaseClock:
        r = self.row
        return PhaseClock(
            r["pending_closed_ms"], r["pending_since_ms"], r["running_closed_ms"], r["running_since_ms"]
        )


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _load(connection: sa.Connection, ids: list[str]) -> dict[str, _Stored]:
    return {r["id"]: _Stored(r) for r in rows_by_key(connection, workloads, ids)}


def _write_changes(connection: sa.Connection, changes: list[tuple[str, dict[str, Any]]]) -> None:
    """UPDATE existing rows, grouped by the set of columns that changed: SQLite maintains every index
    on a column named in SET, changed or not, so writing only what changed keeps a phase change from
    touching the indexes of the twenty columns that stayed the same. Each group is one statement on
    PostgreSQL (``update_rows``)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for workload_id, changed in changes:
        groups.setdefault(tuple(sorted(changed)), []).append({"id": workload_id, **changed})
    for rows in groups.values():
        update_rows(connection, workloads, rows)


def _pools_changed(before: _Stored, pools: list[str]) -> bool:
    if before.row["first_nodepool"] is None and not pools:
        return False
    previous: list[str] = orjson.loads(before.row["doc"])["currentNodePools"]
    return previous != pools


def _stored_pools(connection: sa.Connection, ids: list[str]) -> dict[str, list[str]]:
    """The current pools of stored workloads, as their pool rows say (what the rollups counted)."""
    pools: dict[str, list[str]] = {}
    for r in rows_by_key(connection, workload_nodepools, ids, key="workload_id"):
        pools.setdefault(r["workload_id"], []).append(r["name"])
    return pools


def _latest(observations: list[Observation]) -> dict[str, tuple[int, Observation]]:
    """Per workload id, the observation with the highest revision (and its index in the batch)."""
    latest: dict[str, tuple[int, Observation]] = {}
    for index, obs in enumerate(observations):
        key = str(obs.id)
        if key not in latest or obs.revision >= latest[key][1].revision:
            latest[key] = (index, obs)
    return latest


def apply_batch(
    connection: sa.Connection,
    *,
    cluster_id: str,
    cluster_name: str | None,
    observations: list[Observation],
    samples: list[SampleSeries],
    resync: FullResync | None,
    catalog: CatalogSnapshot,
    tenant_id: int,
    now_ms: int,
) -> BatchResult:
    batch_cluster = uuid.UUID(cluster_id)
    for index, obs in enumerate(observations):
        if obs.id is None:
            raise BatchError(f"workloads[{index}]: id is required")
        if obs.cluster_id is None:
            obs.cluster_id = batch_cluster  # left out: the batch's own
        elif obs.cluster_id != batch_cluster:
            raise BatchError(f"workloads[{index}]: clusterId {obs.cluster_id} is not the batch's cluster")
        try:
            check_record(obs, catalog)
        except InvalidWorkload as exc:
            raise BatchError(f"workloads[{index}]: {exc}") from None

    latest = _latest(observations)
    stored = _load(connection, list(latest))
    stored_pools = _stored_pools(connection, list(stored)) if stored else {}
    rollups = RollupDeltas(connection.dialect.name)
    result = BatchResult()
    new_rows: list[dict[str, Any]] = []
    changes: list[tuple[str, dict[str, Any]]] = []
    history: list[dict[str, Any]] = []
    replaced_pools: list[str] = []
    pools: list[dict[str, Any]] = []
    applied_records: list[Observation] = []

    for workload_id, (index, obs) in latest.items():
        before = stored.get(workload_id)
        if before is not None and before.row["cluster_id"] != cluster_id:
            raise BatchError(f"workloads[{index}]: workload {workload_id} belongs to another cluster")
        if before is not None and obs.revision <= before.row["revision"]:
            result.ignored += 1
            continue
        observed_ms = (
            to_ms(obs.observed_at)
            if obs.observed_at
            else (to_ms(obs.updated_at) if obs.updated_at else now_ms)
        )
        previous = (
            None
            if before is None
            else Previous(
                before.row["phase"], before.row["phase_updated_at"], before.clock, before.row["completed_at"]
            )
        )
        change = transition(obs, previous, observed_ms)
        obs, phase_at, clock = change.record, change.phase_at_ms, change.clock
        deleted_at = None if before is None else before.row["deleted_at"]
        if deleted_at is None and obs.deleted_at is not None:
            deleted_at = to_ms(obs.deleted_at)
            result.deleted += 1
        if deleted_at is not None:
            clock = clock.stop(deleted_at)
        row = build_row(
            obs,
            workload_id=workload_id,
            tenant_id=tenant_id,
            clock=clock,
            updated_at_ms=observed_ms,
            deleted_at_ms=deleted_at,
            completed_at_ms=change.completed_at_ms,
        )
        key = history_key(str(obs.phase), derived_values(obs))
        row.update(revision=obs.revision, resync_id=resync.id if resync else None, history_key=key)
        if before is None or before.row["history_key"] != key:
            at = phase_at if before is None or before.row["phase"] != obs.phase else observed_ms
            history.append(
                {
                    "workload_id": workload_id,
                    "revision": obs.revision,
                    "at_ms": at,
                    "phase": str(obs.phase),
                    "values": key,
                }
            )
        if before is None:
            new_rows.append(row)
            pools.extend(nodepool_rows(workload_id, obs.current_node_pools))
            rollups.move(None, (), row, obs.current_node_pools)
        else:
            changes.append((workload_id, {k: v for k, v in row.items() if before.row[k] != v}))
            old_pools = stored_pools.get(workload_id, [])
            new_pools = old_pools
            if _pools_changed(before, obs.current_node_pools):
                replaced_pools.append(workload_id)
                pools.extend(nodepool_rows(workload_id, obs.current_node_pools))
                new_pools = obs.current_node_pools
            rollups.move(before.row, old_pools, row, new_pools)
        applied_records.append(obs)
        result.applied += 1

    if applied_records:
        upsert_organisation(connection, applied_records)
        # The batch counts and indexes its own rows (one upsert per combination, one text-index
        # statement): the row triggers would cost more than the rows' own writes (migration 0009).
        with deferred_triggers(connection):
            before_insert = last_rowid(connection) if new_rows else None
            insert_rows(connection, workloads, new_rows)
            index_rows_after(connection, before_insert)
            _write_changes(connection, changes)
            for part in _chunks(replaced_pools):
                connection.execute(
                    workload_nodepools.delete().where(workload_nodepools.c.workload_id.in_(part))
                )
            insert_rows(connection, workload_nodepools, pools)
            rollups.write(connection)
        insert_rows(connection, workload_history, history, skip_existing=True)

    if resync is not None:
        seen = [wid for wid in latest if wid in stored]  # applied rows already carry the resync id
        for part in _chunks(seen):
            connection.execute(workloads.update().where(w.id.in_(part)).values(resync_id=resync.id))
        if resync.final:
            result.deleted += _delete_unseen(connection, cluster_id, resync.id, now_ms)

    try:
        result.samples = store_samples(connection, cluster_id, samples, [str(o.id) for o in applied_records])
    except UnknownSeriesWorkload as exc:
        raise BatchError(str(exc)) from None
    _touch_cluster(connection, cluster_id, cluster_name, now_ms)
    return result


def _delete_unseen(connection: sa.Connection, cluster_id: str, resync_id: str, now_ms: int) -> int:
    """End of a full resync: live workloads of the cluster that no batch of it reported are gone."""
    unseen = sa.and_(w.cluster_id == cluster_id, sa.or_(w.resync_id.is_(None), w.resync_id != resync_id))
    return mark_deleted(connection, unseen, deleted_at_ms=now_ms)


def _touch_cluster(connection: sa.Connection, cluster_id: str, name: str | None, now_ms: int) -> None:
    row = {"id": cluster_id, "name": name or cluster_id, "last_sync_at": now_ms}
    upsert(connection, clusters, [row], ["last_sync_at", *(["name"] if name else [])])


def history_of(connection: sa.Connection, workload_id: str) -> list[dict[str, Any]]:
    """The workload's history entries, oldest first (phase and derived values at each change)."""
    rows = connection.execute(
        sa.select(workload_history.c.at_ms, workload_history.c.phase, workload_history.c["values"])
        .where(workload_history.c.workload_id == workload_id)
        .order_by(workload_history.c.at_ms, workload_history.c.revision)
    ).all()
    return [{"at_ms": r.at_ms, "phase": r.phase, "values": orjson.loads(r[2])} for r in rows]
