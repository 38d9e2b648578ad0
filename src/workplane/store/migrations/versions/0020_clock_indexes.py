"""phase-clock indexes: sorts, ranges and counts on totalPendingTimeSeconds / totalRunningTimeSeconds

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06

The two totals are computed at request time from the stored clock (``closed + (now - since)`` while an
interval is open), so no index ordered them: a sort, a range or a count read every row. On each of
three disjoint sets of rows the total is a stored key plus a constant, and these indexes order each
set by its key (decision 0022): stopped clocks by ``closed`` in whole seconds (the served value);
open ones by ``closed - since`` (an expression index); open ones that start after now by ``since``.
The last two hold live Pending, resp. Running, rows only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

CLOCKS = ("pending", "running")


def _index(name: str, columns: list[str | sa.TextClause], where: str | None = None) -> None:
    """An index on ``workloads``, over the rows satisfying ``where`` (None: every row; PostgreSQL
    keeps statistics of an indexed expression only for an index without a condition)."""
    if where is None:
        op.create_index(name, "workloads", columns)
    else:
        op.create_index(
            name, "workloads", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )


def upgrade() -> None:
    for clock in CLOCKS:
        closed, since = f"{clock}_closed_ms", f"{clock}_since_ms"
        _index(
            f"ix_workloads_{clock}_stopped",
            [sa.text(f"({closed} / 1000)"), "id", closed, "deleted_at", since],
        )
        _index(
            f"ix_workloads_{clock}_open",
            [sa.text(f"({closed} - {since})"), "id", since, "deleted_at"],
            f"{since} IS NOT NULL",
        )
        _index(f"ix_workloads_{clock}_since", [since, closed, "id", "deleted_at"], f"{since} IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        # Statistics of the indexed expressions: until the next automatic ANALYZE the planner would
        # take a range on the stopped clocks' to select a third of the table, and scan it.
        op.execute("ANALYZE workloads")


def downgrade() -> None:
    for clock in CLOCKS:
        for kind in ("since", "open", "stopped"):
            op.drop_index(f"ix_workloads_{clock}_{kind}", table_name="workloads")
