"""the live name index holds the scopes' columns

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-08

A project viewer's first page by name at 1,000,000 workloads on SQLite: the project's rows (15,000,
1.6 % of the live ones) read by its own index and sorted took 24 ms; a walk along the name index
that checks each row's project reads 3,100 rows from the table for a page of 50, 20 ms. With the
scopes' columns (cluster, department, project) and ``deleted_at`` in the name index, the walk checks
each entry's scope in the index and reads no table row: 0.2 ms (decision 0022, "A scoped page by
name").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_LIVE = "deleted_at IS NULL"
_NAME = "ix_workloads_live_name"


def _name_index(*columns: str) -> None:
    op.drop_index(_NAME, "workloads")
    op.create_index(
        _NAME,
        "workloads",
        ["name", "created_at", "id", *columns],
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )


def upgrade() -> None:
    _name_index("cluster_id", "department_id", "project_id", "deleted_at")


def downgrade() -> None:
    _name_index()
