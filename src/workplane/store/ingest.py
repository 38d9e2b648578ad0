"""Applying sync batches: what agents observed becomes the inventory and its history.

One batch is applied in one write transaction, all or nothing; the server works out its rows just
before, in a read transaction (``prepare_batch``; the whole operation, samples included, is
``services.ingest``). Per workload, an observation applies only when its ``revision`` is newer than
the stored one, so repeated, retried and out-of-order batches change nothing twice. Derived facts
(phase clock, completedAt, deletedAt, category/priority defaults) come from ``domain``; rows are
built by ``domain.record.build_row`` like every other write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from workplane.domain.batch import SyncBatch
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.observation import FullResync, Observation, derived_values, history_key
from workplane.domain.phases import PhaseClock
from workplane.domain.record import Previous, Transition, build_row, transition
from workplane.domain.timefmt import to_ms
from workplane.store.database import (
    chunked,
    dialect_of,
    insert_rows,
    rows_by_key,
    update_rows,
    upsert,
)
from workplane.store.events import apply_events
from workplane.store.pods import PodError, apply_pods, delete_unseen_pods, follow_workloads
from workplane.store.rollups import RollupDeltas, deferred_triggers
from workplane.store.schema import clusters, workload_history, workload_nodepools, workloads
from workplane.store.workloads import (
    ForeignOrganisation,
    InvalidWorkload,
    check_record,
    mark_deleted,
    nodepool_rows,
    upsert_organisation,
)

w = workloads.c


class BatchError(ValueError):
    """A batch item that cannot be applied; the whole batch is refused."""


@dataclass
class BatchResult:
    applied: int = 0
    ignored: int = 0
    deleted: int = 0
    samples: int = 0
    pods: int = 0
    events: int = 0
    errors: list[str] = field(default_factory=list)
    # The workloads an observation of the batch changed, whose samples' derived fields the metrics
    # store brings up to date (``services.ingest``).
    applied_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Stored:
    row: dict[str, Any]  # every stored column but the document, to write back only what changed

    @property
    def clock(self) -> PhaseClock:
        r = self.row
        return PhaseClock(
            r["pending_closed_ms"], r["pending_since_ms"], r["running_closed_ms"], r["running_since_ms"]
        )


def _load(connection: sa.Connection, ids: list[str], *, lock: bool = False) -> dict[str, _Stored]:
    """The stored rows of these workloads, all but their documents: a batch rebuilds the document of
    every row it changes from the observation, so the stored one is never an input (and reading it
    was most of the cost of reading a row). ``lock``: PostgreSQL keeps other writers off these rows
    until the transaction ends (``rows_by_key``)."""
    rows = rows_by_key(connection, workloads, ids, without=("doc",), for_update=lock)
    return {r["id"]: _Stored(r) for r in rows}


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


def _stored_pools(connection: sa.Connection, ids: list[str]) -> dict[str, list[str]]:
    """The current pools of stored workloads, in order, as their pool rows say (what the rollups
    counted, and what a new observation's pools are compared with)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for r in rows_by_key(connection, workload_nodepools, ids, key="workload_id"):
        found.setdefault(r["workload_id"], []).append((r["position"], r["name"]))
    return {workload_id: [name for _, name in sorted(rows)] for workload_id, rows in found.items()}


def _read_stored(
    connection: sa.Connection, ids: list[str], *, lock: bool = False
) -> tuple[dict[str, _Stored], dict[str, list[str]]]:
    """What a plan is worked out from: the stored rows of these workloads and their pools."""
    rows = _load(connection, ids, lock=lock)
    return rows, (_stored_pools(connection, list(rows)) if rows else {})


def _latest(observations: list[Observation]) -> dict[str, tuple[int, Observation]]:
    """Per workload id, the observation with the highest revision (and its index in the batch)."""
    latest: dict[str, tuple[int, Observation]] = {}
    for index, obs in enumerate(observations):
        key = str(obs.id)
        if key not in latest or obs.revision >= latest[key][1].revision:
            latest[key] = (index, obs)
    return latest


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated sync batch checked for its cluster (``check_batch``): the body, where and when it
    was received, and per workload its newest observation."""

    body: SyncBatch
    cluster_id: str
    tenant_id: int
    now_ms: int
    latest: dict[str, tuple[int, Observation]]  # per workload, its newest observation and its index

    @property
    def resync_id(self) -> str | None:
        return self.body.full_resync.id if self.body.full_resync is not None else None


@dataclass
class Plan:
    """Everything a batch writes, worked out from the stored rows it read (``stored``, ``pools``): it
    holds for as long as those rows are unchanged."""

    stored: dict[str, _Stored]
    stored_pools: dict[str, list[str]]
    result: BatchResult
    rollups: RollupDeltas
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    changes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    replaced_pools: list[str] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    applied: list[Observation] = field(default_factory=list)


def check_batch(
    body: SyncBatch, *, cluster_id: str, tenant_id: int, now_ms: int, catalog: CatalogSnapshot
) -> Batch:
    """Check each workload item on its own against the batch's cluster and the catalog (no database
    needed); the first bad one refuses the batch."""
    batch_cluster = uuid.UUID(cluster_id)
    for index, obs in enumerate(body.workloads):
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
    return Batch(body, cluster_id, tenant_id, now_ms, _latest(body.workloads))


def write_batch(connection: sa.Connection, batch: Batch) -> BatchResult:
    """Plan and write a checked batch's workloads, pods and events in one write transaction (its
    samples are the metrics store's: ``services.ingest``)."""
    return _write(connection, batch, _plan(connection, batch))


def prepare_batch(connection: sa.Connection, batch: Batch) -> Plan | None:
    """Plan a batch in a read transaction, to be written in a write transaction later
    (``write_prepared``). Building the rows is most of a batch's work; done before the write lock,
    it overlaps another batch's writing instead of queueing behind it (SQLite has one writer).
    None when the batch would be refused as things are stored now: it is judged again when written."""
    try:
        return _plan(connection, batch)
    except BatchError:
        return None


def write_prepared(connection: sa.Connection, batch: Batch, prepared: Plan | None) -> BatchResult:
    """Write a batch planned earlier (``prepare_batch``) in ``connection``'s write transaction. If a
    row the plan read has changed since (another writer came first), the batch is planned again from
    what is stored now, under the lock: the outcome is exactly that of planning it there in the first
    place. (A change to a document alone does not count: no plan reads a stored document.) On
    PostgreSQL, where writers do not exclude one another, the rows read here stay locked until the
    batch commits, so that none changes between this check and the batch's own writes."""
    plan = prepared
    stored, pools = _read_stored(connection, list(batch.latest), lock=True)
    if (
        plan is None
        or stored.keys() != plan.stored.keys()
        or pools != plan.stored_pools
        or any(stored[k].row != plan.stored[k].row for k in stored)
    ):
        plan = _plan(connection, batch, stored=(stored, pools))
    return _write(connection, batch, plan)


def _plan(
    connection: sa.Connection,
    batch: Batch,
    *,
    stored: tuple[dict[str, _Stored], dict[str, list[str]]] | None = None,
) -> Plan:
    """Work out every row the batch writes from the stored rows of its workloads (read here unless
    given), without writing anything: per workload, its newest observation is a new workload, a
    change to a stored one, or older than what is stored (ignored)."""
    if stored is None:
        stored = _read_stored(connection, list(batch.latest))
    plan = Plan(stored[0], stored[1], BatchResult(), RollupDeltas(dialect_of(connection)))
    for workload_id, (index, obs) in batch.latest.items():
        before = plan.stored.get(workload_id)
        if before is None:
            _plan_new(plan, batch, workload_id, obs)
        elif before.row["cluster_id"] != batch.cluster_id:
            raise BatchError(f"workloads[{index}]: workload {workload_id} belongs to another cluster")
        elif obs.revision <= before.row["revision"]:
            plan.result.ignored += 1  # not newer than what is stored: seen already
        else:
            _plan_change(plan, batch, workload_id, obs, before)
    return plan


def _plan_new(plan: Plan, batch: Batch, workload_id: str, obs: Observation) -> None:
    """A workload not stored yet: its row, its pools, its first history entry, its rollup counts."""
    observed_ms = _observed_ms(obs, batch.now_ms)
    change = transition(obs, None, observed_ms)
    obs = change.record
    deleted_at = _deletion(plan, None, obs)
    row = _row(batch, workload_id, change, observed_ms, deleted_at)
    plan.history.append(_history_entry(workload_id, obs, change.phase_at_ms, row["history_key"]))
    plan.new_rows.append(row)
    plan.pools.extend(nodepool_rows(workload_id, obs.current_node_pools))
    plan.rollups.move(None, (), row, obs.current_node_pools)
    _applied(plan, obs)


def _plan_change(plan: Plan, batch: Batch, workload_id: str, obs: Observation, before: _Stored) -> None:
    """A newer revision of a stored workload: the columns that changed, its pools if they changed, a
    history entry if its phase or derived values changed, the rollup counts moved."""
    observed_ms = _observed_ms(obs, batch.now_ms)
    r = before.row
    change = transition(
        obs, Previous(r["phase"], r["phase_updated_at"], before.clock, r["completed_at"]), observed_ms
    )
    obs = change.record
    deleted_at = _deletion(plan, r["deleted_at"], obs)
    row = _row(batch, workload_id, change, observed_ms, deleted_at)
    if r["history_key"] != row["history_key"]:
        at = change.phase_at_ms if r["phase"] != obs.phase else observed_ms
        plan.history.append(_history_entry(workload_id, obs, at, row["history_key"]))
    # The document is always written (it holds updatedAt, and it was not read).
    plan.changes.append((workload_id, {k: v for k, v in row.items() if k == "doc" or r[k] != v}))
    old_pools = plan.stored_pools.get(workload_id, [])
    new_pools = old_pools
    if old_pools != obs.current_node_pools:
        plan.replaced_pools.append(workload_id)
        plan.pools.extend(nodepool_rows(workload_id, obs.current_node_pools))
        new_pools = obs.current_node_pools
    plan.rollups.move(r, old_pools, row, new_pools)
    _applied(plan, obs)


def _observed_ms(obs: Observation, now_ms: int) -> int:
    """When the observation was made: as the agent says, else the record's updatedAt, else now."""
    if obs.observed_at:
        return to_ms(obs.observed_at)
    return to_ms(obs.updated_at) if obs.updated_at else now_ms


def _deletion(plan: Plan, stored_ms: int | None, obs: Observation) -> int | None:
    """When the workload was deleted: as stored, else as this observation first says (a deletion the
    batch counts)."""
    if stored_ms is None and obs.deleted_at is not None:
        plan.result.deleted += 1
        return to_ms(obs.deleted_at)
    return stored_ms


def _row(
    batch: Batch, workload_id: str, change: Transition[Observation], observed_ms: int, deleted_at: int | None
) -> dict[str, Any]:
    """The stored row of an applied observation (a deleted workload's phase clock stops then)."""
    obs = change.record
    clock = change.clock if deleted_at is None else change.clock.stop(deleted_at)
    row = build_row(
        obs,
        workload_id=workload_id,
        tenant_id=batch.tenant_id,
        clock=clock,
        updated_at_ms=observed_ms,
        deleted_at_ms=deleted_at,
        completed_at_ms=change.completed_at_ms,
    )
    key = history_key(str(obs.phase), derived_values(obs))
    row.update(revision=obs.revision, resync_id=batch.resync_id, history_key=key)
    return row


def _history_entry(workload_id: str, obs: Observation, at_ms: int, key: str) -> dict[str, Any]:
    return {
        "workload_id": workload_id,
        "revision": obs.revision,
        "at_ms": at_ms,
        "phase": str(obs.phase),
        "values": key,
    }


def _applied(plan: Plan, obs: Observation) -> None:
    plan.applied.append(obs)
    plan.result.applied += 1


def _write(connection: sa.Connection, batch: Batch, plan: Plan) -> BatchResult:
    """Everything the plan says, in the caller's write transaction."""
    result = plan.result
    if plan.applied:
        _write_workloads(connection, plan)
    body = batch.body
    try:
        result.pods = apply_pods(
            connection,
            cluster_id=batch.cluster_id,
            pods=body.pods,
            resync_id=batch.resync_id,
            tenant_id=batch.tenant_id,
            now_ms=batch.now_ms,
        )
        result.events = apply_events(connection, cluster_id=batch.cluster_id, events=body.events)
    except PodError as exc:
        raise BatchError(str(exc)) from None
    if body.full_resync is not None:
        result.deleted += _resync(connection, batch, body.full_resync, plan)
    result.applied_ids = [str(o.id) for o in plan.applied]
    _touch_cluster(connection, batch.cluster_id, body.cluster_name, batch.now_ms)
    return result


def _write_workloads(connection: sa.Connection, plan: Plan) -> None:
    """The applied observations' organisations, rows, pools, rollup counts and history."""
    try:
        upsert_organisation(connection, plan.applied)
    except ForeignOrganisation as exc:
        raise BatchError(f"workloads: {exc}") from None
    # The batch counts and indexes its own rows (one upsert per combination, one text-index
    # statement): the row triggers would cost more than the rows' own writes (migration 0009).
    sql = dialect_of(connection)
    with deferred_triggers(connection):
        before_insert = sql.last_rowid(connection, workloads) if plan.new_rows else None
        insert_rows(connection, workloads, plan.new_rows)
        sql.index_rows_after(connection, workloads, before_insert)
        _write_changes(connection, plan.changes)
        follow_workloads(connection, plan.changes)
        for part in chunked(plan.replaced_pools):
            connection.execute(workload_nodepools.delete().where(workload_nodepools.c.workload_id.in_(part)))
        insert_rows(connection, workload_nodepools, plan.pools)
        plan.rollups.write(connection)
    insert_rows(connection, workload_history, plan.history, skip_existing=True)


def _resync(connection: sa.Connection, batch: Batch, resync: FullResync, plan: Plan) -> int:
    """A full resync's bookkeeping: the stored workloads the batch saw carry its id (applied rows
    already do); at its final batch, the cluster's workloads and pods no batch of it saw are
    deleted. The number of workloads deleted."""
    seen = [wid for wid in batch.latest if wid in plan.stored]
    for part in chunked(seen):
        connection.execute(workloads.update().where(w.id.in_(part)).values(resync_id=resync.id))
    if not resync.final:
        return 0
    deleted = _delete_unseen(connection, batch.cluster_id, resync.id, batch.now_ms)
    delete_unseen_pods(connection, batch.cluster_id, resync.id, batch.now_ms)
    return deleted


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
        sa.select(
            workload_history.c.at_ms,
            workload_history.c.phase,
            workload_history.c["values"],
            workload_history.c.revision,
        )
        .where(workload_history.c.workload_id == workload_id)
        .order_by(workload_history.c.at_ms, workload_history.c.revision)
    ).all()
    return [
        {"at_ms": r.at_ms, "phase": r.phase, "values": orjson.loads(r[2]), "revision": r.revision}
        for r in rows
    ]
