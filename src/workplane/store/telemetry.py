"""Telemetry: counts, allocated GPUs and pending-time buckets of the live workloads, per group.

Counts and GPU sums come from the trigger-kept rollups (migration 0007): ``workload_counts``, or
``workload_pool_counts`` when the request names node pools (grouping by ``CurrentNodepools`` or
filtering by ``nodepoolName``). The one request they cannot answer — workloads in pool X grouped by
every pool they are in — is counted over the workloads themselves, through the same query layer.
Both rollups have the workloads' column names for everything telemetry filters and groups on, so the
filters are the query layer's own compiled terms, evaluated on the rollup rows exactly as
``count_from_aggregate`` does; category resolves through the catalog the same way. The pending-time
distribution depends on the clock: the workloads Pending for less than a day are read themselves (a
range of a small partial index, ``ix_workloads_pending``, through ``Compiler.where`` like the list), and
the oldest bucket is what remains of the rollups' Pending count.

``restrict`` is the one place a further restriction is ANDed in (the caller's access scopes): a
predicate built from a table's ``cluster_id``, ``department_id`` and ``project_id`` columns, which the
rollups and ``workloads`` all have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.phases import Phase
from workplane.query.telemetry import (
    PENDING_BUCKETS,
    PENDING_TIME_KEY,
    GroupKey,
    TelemetryQuery,
    TelemetryType,
)
from workplane.store.compile import Compiler
from workplane.store.database import dialect_of
from workplane.store.schema import (
    clusters,
    departments,
    projects,
    workload_counts,
    workload_nodepools,
    workload_pool_counts,
    workloads,
)

# A predicate over a table that has cluster_id, department_id and project_id columns.
Restriction = Callable[[sa.Table], sa.ColumnElement[bool]]

_GPU_UNIT = Decimal(1_000_000)  # the rollups hold allocated GPUs in millionths

# Where the display name of an id-valued group comes from.
_NAMED: dict[GroupKey, sa.Table] = {
    GroupKey.CLUSTER_ID: clusters,
    GroupKey.DEPARTMENT_ID: departments,
    GroupKey.PROJECT_ID: projects,
}


@dataclass(frozen=True, slots=True)
class Group:
    key: str  # the groupBy token, or PENDING_TIME_KEY
    value: str
    name: str


@dataclass(frozen=True, slots=True)
class TelemetryValue:
    value: str  # a decimal number
    groups: tuple[Group, ...]


def _group_column(key: GroupKey, table: sa.Table, compiler: Compiler) -> sa.ColumnElement[Any]:
    c = table.c
    match key:
        case GroupKey.CLUSTER_ID:
            return c.cluster_id
        case GroupKey.DEPARTMENT_ID:
            return c.department_id
        case GroupKey.PROJECT_ID:
            return c.project_id
        case GroupKey.TYPE:
            return c.type
        case GroupKey.PHASE:
            return c.phase
        case GroupKey.CATEGORY:
            return compiler.category_expr()
        case GroupKey.CURRENT_NODEPOOLS:
            return c.nodepool if "nodepool" in c else workload_nodepools.c.name
    raise AssertionError(key)


def _narrowing(
    query: TelemetryQuery, table: sa.Table, compiler: Compiler, restrict: Restriction | None
) -> list[sa.ColumnElement[bool]]:
    """The population filters that are not already in ``Compiler.where``: phases and the restriction."""
    clauses: list[sa.ColumnElement[bool]] = []
    if query.phases is not None:
        clauses.append(compiler.phase_in(query.phases))
    if restrict is not None:
        clauses.append(restrict(table))
    return clauses


def _gpus(micro: int) -> str:
    """Millionths of a GPU as a plain decimal string: ``7500000`` → ``"7.5"``, ``0`` → ``"0"``."""
    return format((Decimal(micro) / _GPU_UNIT).normalize(), "f")


def _result(query: TelemetryQuery, rows: Iterable[Any], width: int) -> dict[tuple[str, ...], str]:
    """Rows of (group values..., count, GPU millionths) as value strings per combination."""
    values: dict[tuple[str, ...], str] = {}
    for row in rows:
        combination = tuple("" if v is None else str(v) for v in row[:width])
        count, micro = int(row[-2] or 0), int(row[-1] or 0)
        values[combination] = str(count) if query.type is TelemetryType.WORKLOADS_COUNT else _gpus(micro)
    return values


def _from_rollup(
    connection: sa.Connection,
    query: TelemetryQuery,
    catalog: CatalogSnapshot,
    now_ms: int,
    restrict: Restriction | None,
) -> dict[tuple[str, ...], str]:
    per_pool = GroupKey.CURRENT_NODEPOOLS in query.group_by or query.nodepool is not None
    table = workload_pool_counts if per_pool else workload_counts
    compiler = Compiler(catalog, now_ms, dialect_of(connection), table=table)
    columns = [_group_column(k, table, compiler) for k in query.group_by]
    n, gpu = sa.func.sum(table.c.n), sa.func.sum(table.c.gpu_micro)
    statement = (
        sa.select(*columns, n, gpu)
        .where(*(compiler.term(t) for t in query.terms))
        .where(*_narrowing(query, table, compiler, restrict))
    )
    if columns:
        # Counter rows of combinations that no longer have workloads stay behind with n = 0.
        statement = statement.group_by(*columns).having(n > 0)
    return _result(query, connection.execute(statement), len(columns))


def _from_rows(
    connection: sa.Connection,
    query: TelemetryQuery,
    catalog: CatalogSnapshot,
    now_ms: int,
    restrict: Restriction | None,
) -> dict[tuple[str, ...], str]:
    """The same sums over the workloads themselves, for what no rollup holds: workloads in pool X
    (``nodepoolName``) grouped by *all* their current pools. Each (workload, pool) once."""
    w = workloads.c
    compiler = Compiler(catalog, now_ms, dialect_of(connection))
    columns = [_group_column(k, workloads, compiler).label(f"g{i}") for i, k in enumerate(query.group_by)]
    micro = sa.cast(sa.func.round(sa.func.coalesce(w.allocated_gpu, 0) * 1_000_000), sa.BigInteger)
    source: sa.FromClause = workloads
    if GroupKey.CURRENT_NODEPOOLS in query.group_by:
        source = workloads.join(workload_nodepools, workload_nodepools.c.workload_id == w.id)
    pairs = (
        sa.select(w.id, *columns, micro.label("micro"))
        .select_from(source)
        .where(*compiler.where(query.selection()))
        .where(*_narrowing(query, workloads, compiler, restrict))
        .distinct()
        .subquery()
    )
    grouped = [pairs.c[f"g{i}"] for i in range(len(columns))]
    statement = sa.select(*grouped, sa.func.count(), sa.func.sum(pairs.c.micro))
    if grouped:
        statement = statement.group_by(*grouped)
    return _result(query, connection.execute(statement), len(columns))


def _pending_rows(
    connection: sa.Connection,
    query: TelemetryQuery,
    catalog: CatalogSnapshot,
    now_ms: int,
    restrict: Restriction | None,
    younger_than_ms: int | None,
) -> dict[tuple[str, ...], list[int]]:
    """Per combination of the groupBy values, the number of live Pending workloads in each bucket,
    counted over the workloads (only those Pending for less than ``younger_than_ms``, when given)."""
    w = workloads.c
    compiler = Compiler(catalog, now_ms, dialect_of(connection))
    age = sa.literal(now_ms, sa.BigInteger) - w.phase_updated_at
    # Bucket i holds ages from its lower bound (inclusive) up to the next bucket's.
    upper_bounds = [lower for _, lower in PENDING_BUCKETS[1:]]
    bucket = sa.case(
        *((age < sa.literal(bound, sa.BigInteger), index) for index, bound in enumerate(upper_bounds)),
        else_=len(upper_bounds),
    )
    columns = [_group_column(k, workloads, compiler) for k in query.group_by]
    source: sa.FromClause = workloads
    count: sa.ColumnElement[int] = sa.func.count()
    if GroupKey.CURRENT_NODEPOOLS in query.group_by:
        source = workloads.join(workload_nodepools, workload_nodepools.c.workload_id == w.id)
        count = sa.func.count(sa.distinct(w.id))  # a pool named twice by one workload counts once
    statement = (
        sa.select(bucket, *columns, count)
        .select_from(source)
        .where(*compiler.where(query.selection()))
        # A literal, not a bound value: SQLite uses a partial index only when the query's own text
        # implies the index's condition.
        .where(w.phase == sa.literal_column(f"'{Phase.PENDING.value}'"))
        .where(*_narrowing(query, workloads, compiler, restrict))
        .group_by(bucket, *columns)
    )
    if younger_than_ms is not None:
        statement = statement.where(w.phase_updated_at > sa.literal(now_ms - younger_than_ms, sa.BigInteger))
    buckets: dict[tuple[str, ...], list[int]] = {}
    if not columns:
        buckets[()] = [0] * len(PENDING_BUCKETS)  # all four buckets, always
    for row in connection.execute(statement):
        combination = tuple("" if v is None else str(v) for v in row[1 : 1 + len(columns)])
        buckets.setdefault(combination, [0] * len(PENDING_BUCKETS))[int(row[0])] += int(row[-1])
    return buckets


def _pending(
    connection: sa.Connection,
    query: TelemetryQuery,
    catalog: CatalogSnapshot,
    now_ms: int,
    restrict: Restriction | None,
) -> dict[tuple[str, ...], list[int]]:
    """The pending-time buckets per combination. Where work waits long, most Pending workloads are in
    the oldest bucket: only the younger ones are read (an index range), and the oldest bucket is the
    rest of the combination's Pending count, which the rollups hold (same transaction, same filters)."""
    if GroupKey.CURRENT_NODEPOOLS in query.group_by and query.nodepool is not None:
        return _pending_rows(connection, query, catalog, now_ms, restrict, None)  # no rollup holds it
    oldest = PENDING_BUCKETS[-1][1]
    buckets = _pending_rows(connection, query, catalog, now_ms, restrict, oldest)
    if query.phases is not None and Phase.PENDING.value not in query.phases:
        return buckets  # nothing is counted
    pending_only = replace(query, type=TelemetryType.WORKLOADS_COUNT, phases=frozenset({Phase.PENDING.value}))
    for combination, total in _from_rollup(connection, pending_only, catalog, now_ms, restrict).items():
        counts = buckets.setdefault(combination, [0] * len(PENDING_BUCKETS))
        counts[-1] = int(total) - sum(counts[:-1])
    return buckets


def _names(
    connection: sa.Connection, keys: tuple[GroupKey, ...], combinations: Iterable[tuple[str, ...]]
) -> dict[tuple[GroupKey, str], str]:
    """Display names of the id-valued groups (cluster, department, project); other values name
    themselves."""
    names: dict[tuple[GroupKey, str], str] = {}
    combinations = list(combinations)
    for position, key in enumerate(keys):
        table = _NAMED.get(key)
        ids = sorted({c[position] for c in combinations})
        if table is None or not ids:
            continue
        for found_id, name in connection.execute(
            sa.select(table.c.id, table.c.name).where(table.c.id.in_(ids))
        ):
            names[(key, found_id)] = name
    return names


def workload_telemetry(
    connection: sa.Connection,
    query: TelemetryQuery,
    *,
    catalog: CatalogSnapshot,
    now_ms: int,
    restrict: Restriction | None,
) -> list[TelemetryValue]:
    """The telemetry values, ordered by their group values (and, for the pending-time distribution,
    by bucket within each combination). Only live workloads are counted."""
    keys = query.group_by
    if query.type is TelemetryType.PENDING_TIME_DISTRIBUTION:
        counts = _pending(connection, query, catalog, now_ms, restrict)
        combinations = sorted(counts)
    else:
        # The pool rollup counts a workload once per pool; "in pool X, grouped by every pool it is in"
        # relates two pools of one workload, which it does not hold.
        exact = query.nodepool is not None and GroupKey.CURRENT_NODEPOOLS in query.group_by
        values = (_from_rows if exact else _from_rollup)(connection, query, catalog, now_ms, restrict)
        combinations = sorted(values)
    names = _names(connection, keys, combinations)

    def groups(combination: tuple[str, ...]) -> tuple[Group, ...]:
        return tuple(
            Group(key.value, value, names.get((key, value), value))
            for key, value in zip(keys, combination, strict=True)
        )

    if query.type is not TelemetryType.PENDING_TIME_DISTRIBUTION:
        return [TelemetryValue(values[c], groups(c)) for c in combinations]
    return [
        TelemetryValue(str(counts[c][index]), (Group(PENDING_TIME_KEY, label, label), *groups(c)))
        for c in combinations
        for index, (label, _) in enumerate(PENDING_BUCKETS)
    ]
