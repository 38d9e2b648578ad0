"""access control: key kinds and cluster binding, access rules, audit log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

The single ``role`` of a key becomes access rules: a key that had the bootstrap role "admin" gets the
administrator role on the tenant scope, every other key keeps its name and secret but no rule (it
could do nothing more than read before, and now reads nothing until an administrator grants a rule).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_keys") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="service"))
        batch.add_column(sa.Column("cluster_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("created_by", sa.Text(), nullable=False, server_default="workplane"))
        batch.add_column(sa.Column("rotated_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "access_rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject", "role", "scope_type", "scope_id", name="uq_access_rules_grant"),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at_ms"], unique=False)

    bind = op.get_bind()
    keys = sa.table("access_keys", sa.column("client_id"), sa.column("role"), sa.column("created_at"))
    admins = bind.execute(sa.select(keys.c.client_id, keys.c.created_at).where(keys.c.role == "admin")).all()
    rules = sa.table(
        "access_rules",
        *(
            sa.column(c)
            for c in ("id", "subject", "role", "scope_type", "scope_id", "created_at", "created_by")
        ),
    )
    for client_id, created_at in admins:
        bind.execute(
            rules.insert().values(
                id=str(uuid.uuid4()),
                subject=client_id,
                role="administrator",
                scope_type="tenant",
                scope_id="*",
                created_at=created_at,
                created_by="workplane",
            )
        )
    with op.batch_alter_table("access_keys") as batch:
        batch.drop_column("role")
        # The defaults served only to fill existing rows; new rows always say who and what.
        batch.alter_column("kind", server_default=None)
        batch.alter_column("created_by", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("access_keys") as batch:
        batch.add_column(sa.Column("role", sa.String(length=64), nullable=False, server_default="none"))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE access_keys SET role = 'admin' WHERE client_id IN (SELECT subject FROM access_rules "
            "WHERE role = 'administrator' AND scope_type = 'tenant')"
        )
    )
    with op.batch_alter_table("access_keys") as batch:
        batch.alter_column("role", server_default=None)
        batch.drop_column("rotated_at")
        batch.drop_column("created_by")
        batch.drop_column("cluster_id")
        batch.drop_column("kind")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("access_rules")
