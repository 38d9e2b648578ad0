"""sync protocol: revisions, history, metric chunks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_chunks",
        sa.Column("workload_id", sa.String(length=36), nullable=False),
        sa.Column("metric", sa.String(length=48), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workloads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workload_id", "metric", "start_ms"),
    )
    with op.batch_alter_table("metric_chunks", schema=None) as batch_op:
        batch_op.create_index("ix_metric_chunks_end", ["end_ms"], unique=False)

    op.create_table(
        "workload_history",
        sa.Column("workload_id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("values", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workloads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workload_id", "revision"),
    )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_sync_at", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("resync_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("history_key", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("history_key")
        batch_op.drop_column("resync_id")
        batch_op.drop_column("revision")

    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_column("last_sync_at")

    op.drop_table("workload_history")
    with op.batch_alter_table("metric_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_chunks_end")

    op.drop_table("metric_chunks")
