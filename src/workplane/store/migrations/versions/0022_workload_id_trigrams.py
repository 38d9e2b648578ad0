"""PostgreSQL: a pg_trgm index on the workloads' ids, for a substring of a pod's workloadId

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07

``workloadId=@<hex>`` on the pods (``store.pods._workload_ids``) looks the matching workloads up before
the pods, which are then read by their workload's index. Without an index on the ids' substrings that
look-up read every workload id: a parallel index-only scan of the 200,000 ids at a million pods, about
100–130 ms. The index is on ``workload_search`` (0010), one row per workload, written when a workload
is inserted and when its name or search text changes: not on ``workloads``, whose phase changes are
not HOT updates and would add the id's trigrams to the index at each one, nor on the pods' table, five
times larger. The expression is the one the filter compiles to (``lower(workload_id)``).

SQLite: nothing (its look-up reads the ids from the primary key's index; decision 0021).
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

POSTGRESQL_UP = (
    "CREATE INDEX ix_workload_search_id_trgm ON workload_search USING gin (lower(workload_id) gin_trgm_ops)",
    # Statistics on the expression now, not when autovacuum comes by.
    "ANALYZE workload_search",
)
POSTGRESQL_DOWN = ("DROP INDEX IF EXISTS ix_workload_search_id_trgm",)


def _run(statements: tuple[str, ...]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _run(POSTGRESQL_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _run(POSTGRESQL_DOWN)
