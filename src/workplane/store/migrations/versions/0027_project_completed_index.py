"""an index of each project's live completed workloads by completion time

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-08

A project viewer's range on completedAt: the range holds a third of the live rows tenant-wide (more
than the project holds), and the project's own matches are its newest rows, so neither the
completion-day index nor the project's creation-ordered index finds them without reading most of
what it holds. SQLite, at 100,000 workloads, read the project's 15,000 rows and sorted the 273 that
matched (a page 25 ms, its count 23 ms). This index holds the live completed rows by project, then
completion time: a scoped range reads its own matches, and the page sorts only those (decision
0022, "A project viewer's completedAt range").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_LIVE_COMPLETED = "completed_at IS NOT NULL AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_workloads_live_project_completed",
        "workloads",
        ["project_id", "completed_at", "id"],
        sqlite_where=sa.text(_LIVE_COMPLETED),
        postgresql_where=sa.text(_LIVE_COMPLETED),
    )


def downgrade() -> None:
    op.drop_index("ix_workloads_live_project_completed", "workloads")
