"""the token throttle's counts move into the store, shared by every server process

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

Failed token requests were counted in each process: with several server processes a guesser had each
process's allowance, and requests arriving together all passed the check before any failure was
counted. One row per counted key, updated in the writer's transaction, closes both (``auth.throttle``).
Existing projects and departments keep the cluster that first reported them (``cluster_id``); from now
on no other cluster's agent may report workloads into them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_throttle",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("blocked_until_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("token_throttle")
