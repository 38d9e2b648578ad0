"""The live-count rollups kept by a writer that knows each row's old and new values (sync batches).

The triggers of migrations 0007 and 0009 keep ``workload_counts`` and ``workload_pool_counts`` exact for
every other writer. A sync batch changes thousands of rows whose old values it has just read, so it
adds their moves up itself — one upsert per combination instead of a trigger run per row, which on
SQLite cost more than the row's own write — inside ``deferred_triggers``, where the triggers stand
aside (SQLite's text-index insert trigger too: the batch indexes its new rows in one statement,
``SqlDialect.index_rows_after``). Keys and GPU units are those of the triggers, to the rounding, so
that a row counted here and later changed by another writer is taken away by the triggers exactly as
they would have added it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from workplane.store.database import SqlDialect, dialect_of
from workplane.store.schema import (
    COUNTED_COLUMNS,
    POOL_COUNTED_COLUMNS,
    workload_counts,
    workload_pool_counts,
)

_COUNTED = itemgetter(*COUNTED_COLUMNS)
# The pool rollup's columns are among the counted ones: picked from a row's counted values.
_POOLED = itemgetter(*(COUNTED_COLUMNS.index(c) for c in POOL_COUNTED_COLUMNS))


def deferred_triggers(connection: sa.Connection) -> AbstractContextManager[None]:
    """Within the block, this transaction's writes to workloads and their pools are not counted by the
    rollup triggers (nor, on SQLite, are new workloads and pods put in their text indexes): the
    caller does both itself (``RollupDeltas``, ``SqlDialect.index_rows_after``). Restored on the way
    out, so later statements of the same transaction are seen by the triggers again. There is no
    ``finally``: an error inside must roll the transaction back (``Database.write`` does), which
    takes the deferral with it."""
    return dialect_of(connection).deferred_triggers(connection)


def _part(value: str | None) -> str:
    return "-" if value is None else f"{len(value)}:{value}"


def _key(values: Iterable[str | None]) -> str:
    """The triggers' key: each part length-prefixed, NULL as ``-``, joined with ``/``."""
    return "/".join(_part(v) for v in values)


class RollupDeltas:
    """The moves of a batch's rows between combinations, summed, then written in one upsert per
    combination (ON CONFLICT adds to the stored sums)."""

    def __init__(self, dialect: SqlDialect) -> None:
        # Rounds GPUs into millionths as the database's triggers do (``SqlDialect.gpu_micro``).
        self._gpu_micro = dialect.gpu_micro
        self._counts: dict[tuple[Any, ...], list[int]] = {}
        self._pools: dict[tuple[Any, ...], list[int]] = {}

    def move(
        self,
        old: Mapping[str, Any] | None,
        old_pools: Iterable[str],
        new: Mapping[str, Any] | None,
        new_pools: Iterable[str],
    ) -> None:
        """A workload row went from ``old`` (None: it did not exist) to ``new``, and its current pools
        from ``old_pools`` to ``new_pools``. A deleted row (``deleted_at`` set) counts nowhere."""
        before = self._share(old, old_pools)
        after = self._share(new, new_pools)
        if before == after:
            return  # most changes move no count (same combination, GPUs and pools)
        if before is not None:
            self._add(*before, -1)
        if after is not None:
            self._add(*after, 1)

    def _share(
        self, row: Mapping[str, Any] | None, pools: Iterable[str]
    ) -> tuple[tuple[Any, ...], int, frozenset[str]] | None:
        """Where a row counts: its combination, its GPUs in millionths and its distinct pools."""
        if row is None or row["deleted_at"] is not None:
            return None
        return _COUNTED(row), self._gpu_micro(row["allocated_gpu"]), frozenset(pools)

    def _add(self, counted: tuple[Any, ...], gpu: int, pools: frozenset[str], sign: int) -> None:
        gpu *= sign
        total = self._counts.setdefault(counted, [0, 0])
        total[0] += sign
        total[1] += gpu
        pooled = _POOLED(counted)
        for pool in pools:
            total = self._pools.setdefault((*pooled, pool), [0, 0])
            total[0] += sign
            total[1] += gpu

    def write(self, connection: sa.Connection) -> None:
        sql = dialect_of(connection)
        pooled = (*POOL_COUNTED_COLUMNS, "nodepool")
        for table, columns, totals in (
            (workload_counts, COUNTED_COLUMNS, self._counts),
            (workload_pool_counts, pooled, self._pools),
        ):
            rows = [
                {"key": _key(k), **dict(zip(columns, k, strict=True)), "n": n, "gpu_micro": g}
                for k, (n, g) in totals.items()
                if n or g
            ]
            # In key order: concurrent batches lock the counters they add to in the same order.
            rows.sort(key=lambda row: str(row["key"]))
            sql.add_on_conflict(connection, table, rows, key="key", sums=("n", "gpu_micro"))
