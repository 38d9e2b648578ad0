"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_keys",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "departments",
        sa.Column("id", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("cluster_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column(
            "department_id", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("cluster_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "workload_categories",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "workload_priorities",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "workload_types",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("group", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "category_name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column(
            "priority_name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "workloads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cluster_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("namespace", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("project_id", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column(
            "project_name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column(
            "department_id", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column(
            "department_name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("type", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column(
            "own_category", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True
        ),
        sa.Column(
            "own_priority", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True
        ),
        sa.Column("own_preemptible", sa.Boolean(), nullable=True),
        sa.Column(
            "submitted_by", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True
        ),
        sa.Column("phase", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column(
            "distributed_framework",
            sa.Text().with_variant(sa.Text(collation="C"), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "ai_application_id", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True
        ),
        sa.Column(
            "ai_application_name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("phase_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("guaranteed_runtime_ends_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("allocated_gpu", sa.Float(), nullable=True),
        sa.Column("idle_gpus", sa.Integer(), nullable=True),
        sa.Column("idle_allocated_gpus", sa.Float(), nullable=True),
        sa.Column("pending_closed_ms", sa.BigInteger(), nullable=False),
        sa.Column("pending_since_ms", sa.BigInteger(), nullable=True),
        sa.Column("running_closed_ms", sa.BigInteger(), nullable=False),
        sa.Column("running_since_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "first_nodepool", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=True
        ),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.Column("pending_messages", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.create_index("ix_workloads_ai_application_id", ["ai_application_id", "id"], unique=False)
        batch_op.create_index("ix_workloads_ai_application_name", ["ai_application_name", "id"], unique=False)
        batch_op.create_index("ix_workloads_allocated_gpu", ["allocated_gpu", "id"], unique=False)
        batch_op.create_index("ix_workloads_completed_at", ["completed_at", "id"], unique=False)
        batch_op.create_index("ix_workloads_deleted_at", ["deleted_at", "id"], unique=False)
        batch_op.create_index(
            "ix_workloads_distributed_framework", ["distributed_framework", "id"], unique=False
        )
        batch_op.create_index("ix_workloads_first_nodepool", ["first_nodepool", "id"], unique=False)
        batch_op.create_index(
            "ix_workloads_guaranteed_runtime_ends_at", ["guaranteed_runtime_ends_at", "id"], unique=False
        )
        batch_op.create_index("ix_workloads_idle_allocated_gpus", ["idle_allocated_gpus", "id"], unique=False)
        batch_op.create_index("ix_workloads_idle_gpus", ["idle_gpus", "id"], unique=False)
        batch_op.create_index(
            "ix_workloads_live_cluster_id",
            ["cluster_id", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_created",
            ["created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_department_id",
            ["department_id", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_department_name",
            ["department_name", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_name",
            ["name", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_phase",
            ["phase", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_project_id",
            ["project_id", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_project_name",
            ["project_name", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_submitted_by",
            ["submitted_by", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_workloads_live_type",
            ["type", "created_at", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index("ix_workloads_own_category", ["own_category", "id"], unique=False)
        batch_op.create_index("ix_workloads_own_priority", ["own_priority", "id"], unique=False)
        batch_op.create_index("ix_workloads_phase_updated_at", ["phase_updated_at", "id"], unique=False)

    op.create_table(
        "workload_nodepools",
        sa.Column("workload_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workloads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workload_id", "position"),
    )
    with op.batch_alter_table("workload_nodepools", schema=None) as batch_op:
        batch_op.create_index("ix_workload_nodepools_name", ["name", "workload_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workload_nodepools", schema=None) as batch_op:
        batch_op.drop_index("ix_workload_nodepools_name")

    op.drop_table("workload_nodepools")
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_index("ix_workloads_phase_updated_at")
        batch_op.drop_index("ix_workloads_own_priority")
        batch_op.drop_index("ix_workloads_own_category")
        batch_op.drop_index(
            "ix_workloads_live_type",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_submitted_by",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_project_name",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_project_id",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_phase",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_name",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_department_name",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_department_id",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_created",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_workloads_live_cluster_id",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index("ix_workloads_idle_gpus")
        batch_op.drop_index("ix_workloads_idle_allocated_gpus")
        batch_op.drop_index("ix_workloads_guaranteed_runtime_ends_at")
        batch_op.drop_index("ix_workloads_first_nodepool")
        batch_op.drop_index("ix_workloads_distributed_framework")
        batch_op.drop_index("ix_workloads_deleted_at")
        batch_op.drop_index("ix_workloads_completed_at")
        batch_op.drop_index("ix_workloads_allocated_gpu")
        batch_op.drop_index("ix_workloads_ai_application_name")
        batch_op.drop_index("ix_workloads_ai_application_id")

    op.drop_table("workloads")
    op.drop_table("workload_types")
    op.drop_table("workload_priorities")
    op.drop_table("workload_categories")
    op.drop_table("projects")
    op.drop_table("departments")
    op.drop_table("clusters")
    op.drop_table("catalog_state")
    op.drop_table("access_keys")
