"""leaner indexes: sparse fields indexed only where present, deleted rows on their own

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Indexed only where the column has a value: a NULL never satisfies a positive filter operator, and
# rows without the field (most of them, for most of these) then cost no index write at all.
SPARSE = (
    "completed_at",
    "guaranteed_runtime_ends_at",
    "allocated_gpu",
    "idle_gpus",
    "idle_allocated_gpus",
    "distributed_framework",
    "ai_application_id",
    "ai_application_name",
    "first_nodepool",
    "own_category",
    "own_priority",
)
DELETED = "deleted_at IS NOT NULL"


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        "workloads",
        columns,
        unique=False,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    for column in SPARSE:
        op.drop_index(f"ix_workloads_{column}", table_name="workloads")
        _partial(f"ix_workloads_{column}", [column, "id"], f"{column} IS NOT NULL")
    op.drop_index("ix_workloads_live_submitted_by", table_name="workloads")
    _partial("ix_workloads_submitted_by", ["submitted_by", "id"], "submitted_by IS NOT NULL")
    op.drop_index("ix_workloads_deleted_at", table_name="workloads")
    _partial("ix_workloads_deleted_at", ["deleted_at", "id"], DELETED)
    _partial("ix_workloads_deleted_created", ["created_at", "id"], DELETED)


def downgrade() -> None:
    op.drop_index("ix_workloads_deleted_created", table_name="workloads")
    op.drop_index("ix_workloads_deleted_at", table_name="workloads")
    op.create_index("ix_workloads_deleted_at", "workloads", ["deleted_at", "id"])
    op.drop_index("ix_workloads_submitted_by", table_name="workloads")
    _partial("ix_workloads_live_submitted_by", ["submitted_by", "created_at", "id"], "deleted_at IS NULL")
    for column in SPARSE:
        op.drop_index(f"ix_workloads_{column}", table_name="workloads")
        op.create_index(f"ix_workloads_{column}", "workloads", [column, "id"])
