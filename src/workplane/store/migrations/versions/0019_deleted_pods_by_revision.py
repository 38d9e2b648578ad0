"""a revision's deleted pods are found by an index, as its live pods are

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06

``GET /workloads/inferences/revisions/{revisionId}/pods`` reads a revision's pods: the live ones
through 0017's partial index, the deleted ones (``deleted=true``, and the question whether a revision
whose pods are all gone is known at all) through this one, over the deleted pods that have a revision.
Without it, both walked every deleted pod. Pods without a revision, most of them, add no entry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

DELETED_WITH_REVISION = "deleted_at IS NOT NULL AND revision_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_workload_pods_deleted_revision_id",
        "workload_pods",
        ["revision_id", "created_at", "id"],
        sqlite_where=sa.text(DELETED_WITH_REVISION),
        postgresql_where=sa.text(DELETED_WITH_REVISION),
    )


def downgrade() -> None:
    op.drop_index("ix_workload_pods_deleted_revision_id", table_name="workload_pods")
