"""an index of the live completed workloads by completion day, then creation time

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07

A range on completedAt in the creation order (the default): the rows completed recently were created
all along the creation-time index's newest end, so a walk of it from the oldest finds them only at
its end, and no index gave them in that order: 31,000 rows at 1M were looked up by the
completion-time index and sorted (32–137 ms). This index holds the live rows with a completion time
by its day (``completed_at / 86400000``), then by ``(created_at, id)``: each day of the range gives
its first rows along it, and the page is their merge (``store.ordering.completed_days``; decision
0022, "A completedAt range in the creation order"). On PostgreSQL an expression statistics object
gives the planner the day's distribution, which it keeps for no partial index's expression.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_DAY = "(completed_at / 86400000)"
_LIVE_COMPLETED = "completed_at IS NOT NULL AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_workloads_completed_day",
        "workloads",
        [sa.text(_DAY), "created_at", "id", "completed_at", "deleted_at"],
        sqlite_where=sa.text(_LIVE_COMPLETED),
        postgresql_where=sa.text(_LIVE_COMPLETED),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE STATISTICS IF NOT EXISTS st_workloads_completed_day ON ({_DAY}) FROM workloads")
        op.execute("ANALYZE workloads")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_workloads_completed_day")
    op.drop_index("ix_workloads_completed_day", "workloads")
