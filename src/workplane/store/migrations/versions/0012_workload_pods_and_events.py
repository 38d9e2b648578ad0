"""workload pods and events: what agents report with their workloads

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

Agents (the Kubernetes agent first) report each workload's pods and events through the sync protocol;
the API serves them under ``/api/v1/workloads/{workloadId}/pods`` and ``…/events``. Their rows go with
their workload.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workload_pods",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("workload_id", sa.String(36), nullable=False),
        sa.Column("cluster_id", sa.String(36), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("k8s_phase", sa.String(32), nullable=False),
        sa.Column("k8s_phase_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("resync_id", sa.String(64), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workloads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workload_pods_workload", "workload_pods", ["workload_id", "created_at", "id"])
    op.create_index("ix_workload_pods_cluster", "workload_pods", ["cluster_id", "deleted_at"])
    op.create_table(
        "workload_events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("workload_id", sa.String(36), nullable=False),
        sa.Column("cluster_id", sa.String(36), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workloads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workload_events_workload", "workload_events", ["workload_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_workload_events_workload", table_name="workload_events")
    op.drop_table("workload_events")
    op.drop_index("ix_workload_pods_cluster", table_name="workload_pods")
    op.drop_index("ix_workload_pods_workload", table_name="workload_pods")
    op.drop_table("workload_pods")
