"""PostgreSQL: statistics of the open clocks' keys, which their partial indexes do not keep

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

Migration 0020 orders the open phase clocks by ``closed - since`` in partial indexes, and PostgreSQL
keeps statistics of an indexed expression only for an index without a condition. Without them a
range on that key was taken to select a third of the open clocks, so the planner read all of them
(30,000 open Pending clocks at 1M workloads) from the ``since`` index and kept the few in range, where
the key's index holds them side by side (decision 0022, "PostgreSQL at a million"). An expression
statistics object (PostgreSQL 14 and later) gives ANALYZE that key to sample, at no cost to a write.
Nothing on SQLite, which keeps no statistics here.
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

CLOCKS = ("pending", "running")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for clock in CLOCKS:
        op.execute(
            f"CREATE STATISTICS IF NOT EXISTS st_workloads_{clock}_open "
            f"ON ({clock}_closed_ms - {clock}_since_ms) FROM workloads"
        )
    # Until the next automatic ANALYZE the planner would not have them.
    op.execute("ANALYZE workloads")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for clock in CLOCKS:
        op.execute(f"DROP STATISTICS IF EXISTS st_workloads_{clock}_open")
