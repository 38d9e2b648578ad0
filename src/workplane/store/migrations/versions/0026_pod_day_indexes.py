"""indexes of the live completed pods and of the deleted pods by the day of that time, then creation

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07

A pods page with a range on completedAt (on deletedAt, over deleted pods) in the creation order (the
default), as migration 0025 for workloads: the pods completed (deleted) recently were created all
along the creation-time index's newest end, and no index gave them in that order: at a million pods
the 10,000 recently completed were looked up by the completion-time index and sorted (35–110 ms).
These indexes hold those pods by the day of the time (``<time> / 86400000``), then by ``(created_at,
id)``: each day of the range gives its first pods along it, and the page is their merge
(``store.ordering.page_by_days``; decision 0021, "A time range in the creation order, day by day").
On PostgreSQL an expression statistics object on each day gives the planner its distribution, which
it keeps for no partial index's expression.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# (index, statistics object, time column, the pods it holds)
_INDEXES = (
    (
        "ix_workload_pods_completed_day",
        "st_workload_pods_completed_day",
        "completed_at",
        "completed_at IS NOT NULL AND deleted_at IS NULL",
    ),
    ("ix_workload_pods_deleted_day", "st_workload_pods_deleted_day", "deleted_at", "deleted_at IS NOT NULL"),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for index, statistics, time, where in _INDEXES:
        day = f"({time} / 86400000)"
        columns: list[str | sa.TextClause] = [
            sa.text(day),
            "created_at",
            "id",
            *dict.fromkeys((time, "deleted_at")),
        ]
        op.create_index(
            index, "workload_pods", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )
        if postgresql:
            op.execute(f"CREATE STATISTICS IF NOT EXISTS {statistics} ON ({day}) FROM workload_pods")
    if postgresql:
        op.execute("ANALYZE workload_pods")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for index, statistics, _time, _where in _INDEXES:
        if postgresql:
            op.execute(f"DROP STATISTICS IF EXISTS {statistics}")
        op.drop_index(index, "workload_pods")
