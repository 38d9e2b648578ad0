"""pod listing: the columns and indexes of GET /api/v1/workloads/pods and its count

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

The cluster-wide pod list filters and sorts by node, node pool and completion time and searches pod
and workload names: those move out of the stored document into columns, with partial indexes over live
pods (as the workloads have), and the existing pods are filled in from their documents. A pod also
carries its workload's project and department, which scope it (the caller's scopes are then an indexed
condition on the pods themselves, not a join with the workloads). The index on
(cluster_id, deleted_at) gives way to the live pods' (cluster_id, created_at, id), which answers a full
resync's "live pods of this cluster" as well.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

LIVE = "deleted_at IS NULL"
DELETED = "deleted_at IS NOT NULL"
_TERMINAL = ("Succeeded", "Failed")
_LIVE_INDEXED = ("cluster_id", "department_id", "project_id", "node_name", "current_nodepool", "search_text")
_COLUMNS = ("project_id", "department_id", "node_name", "current_nodepool", "completed_at", "search_text")
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _text_c() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name, "workload_pods", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
    )


def _iso_ms(text: str | None) -> int | None:
    if not text:
        return None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _backfill() -> None:
    """Fill the new columns of the stored pods from their documents and workloads, a page of pods at a
    time (by id), so that a large table is never held in memory at once."""
    connection = op.get_bind()
    page = sa.text(
        "SELECT p.id, p.document, p.k8s_phase, p.k8s_phase_updated_at, w.name AS workload_name, "
        "w.project_id, w.department_id "
        "FROM workload_pods p JOIN workloads w ON w.id = p.workload_id "
        "WHERE p.id > :after ORDER BY p.id LIMIT 2000"
    )
    update = sa.text(
        "UPDATE workload_pods SET node_name = :node, current_nodepool = :pool, completed_at = :done, "
        "search_text = :search, project_id = :project, department_id = :department WHERE id = :id"
    )
    after = ""
    while rows := connection.execute(page, {"after": after}).all():
        connection.execute(update, [_filled(row) for row in rows])
        after = rows[-1].id


def _filled(row: sa.Row[Any]) -> dict[str, Any]:
    document = json.loads(row.document)
    node, pool = document.get("nodeName"), document.get("currentNodePool")
    done = _iso_ms(document.get("completedAt"))
    if done is None and row.k8s_phase in _TERMINAL:
        done = row.k8s_phase_updated_at
    words = [document.get("name"), row.workload_name, node, pool, row.k8s_phase]
    return {
        "id": row.id,
        "node": node,
        "pool": pool,
        "done": done,
        "search": " ".join(w for w in words if w).translate(_FOLD),
        "project": row.project_id,
        "department": row.department_id,
    }


def upgrade() -> None:
    op.add_column("workload_pods", sa.Column("project_id", _text_c(), nullable=True))
    op.add_column("workload_pods", sa.Column("department_id", _text_c(), nullable=True))
    op.add_column("workload_pods", sa.Column("node_name", _text_c(), nullable=True))
    op.add_column("workload_pods", sa.Column("current_nodepool", _text_c(), nullable=True))
    op.add_column("workload_pods", sa.Column("completed_at", sa.BigInteger(), nullable=True))
    op.add_column("workload_pods", sa.Column("search_text", _text_c(), nullable=True))
    _backfill()
    op.drop_index("ix_workload_pods_cluster", table_name="workload_pods")
    for column in (
        "cluster_id",
        "department_id",
        "project_id",
        "node_name",
        "current_nodepool",
        "search_text",
    ):
        _partial(f"ix_workload_pods_live_{column}", [column, "created_at", "id"], LIVE)
    _partial("ix_workload_pods_live_created", ["created_at", "id"], LIVE)
    _partial("ix_workload_pods_deleted_created", ["created_at", "id"], DELETED)
    _partial("ix_workload_pods_deleted_at", ["deleted_at", "id"], DELETED)
    _partial("ix_workload_pods_completed_at", ["completed_at", "id"], "completed_at IS NOT NULL")


def downgrade() -> None:
    for name in (
        "ix_workload_pods_completed_at",
        "ix_workload_pods_deleted_at",
        "ix_workload_pods_deleted_created",
        "ix_workload_pods_live_created",
        "ix_workload_pods_live_search_text",
        "ix_workload_pods_live_current_nodepool",
        "ix_workload_pods_live_node_name",
        "ix_workload_pods_live_project_id",
        "ix_workload_pods_live_department_id",
        "ix_workload_pods_live_cluster_id",
    ):
        op.drop_index(name, table_name="workload_pods")
    op.create_index("ix_workload_pods_cluster", "workload_pods", ["cluster_id", "deleted_at"])
    with op.batch_alter_table("workload_pods") as batch:
        for column in (
            "search_text",
            "completed_at",
            "current_nodepool",
            "node_name",
            "department_id",
            "project_id",
        ):
            batch.drop_column(column)
