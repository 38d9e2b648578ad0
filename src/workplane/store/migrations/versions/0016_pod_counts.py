"""pod counts: live pods per cluster, department and project, kept by triggers

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

``GET /workloads/pods/count`` with no filter counted every live pod's index entry (0.2-0.4 s at a
million pods). ``pod_counts`` holds the number of live pods per (cluster, department, project), an
empty text standing for a missing department or project, kept exact by triggers whatever writes
``workload_pods`` (sync batches, the purge, a workload moving its pods to another project), so a count
with no filter but the caller's scopes sums a few rows.

SQLite: row triggers, each one upsert of one counter row, only when a pod appears, goes, or changes
its key or its liveness (the pod upsert names these columns in every SET, so the update trigger
compares values). PostgreSQL: statement triggers over the transition tables, as 0007's rollups: one
aggregate and one upsert per statement, the keys in order (concurrent writers lock counter rows in
the same order); a row trigger would rewrite a counter row once per pod of a batch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_KEY = ("cluster_id", "department_id", "project_id")


def _key(row: str) -> str:
    return f"{row}.cluster_id, coalesce({row}.department_id, ''), coalesce({row}.project_id, '')"


def _changed(old: str, new: str) -> str:
    return f"({old}.deleted_at IS NULL) <> ({new}.deleted_at IS NULL) OR " + " OR ".join(
        f"{old}.{c} IS NOT {new}.{c}" for c in _KEY
    )


_SQLITE_ADD = (
    "INSERT INTO pod_counts (cluster_id, department_id, project_id, live) SELECT {key}, 1 "
    "WHERE {row}.deleted_at IS NULL ON CONFLICT DO UPDATE SET live = live + 1;"
)
_SQLITE_REMOVE = (
    "UPDATE pod_counts SET live = live - 1 WHERE {row}.deleted_at IS NULL "
    "AND (cluster_id, department_id, project_id) = ({key});"
)


def _sqlite_up() -> list[str]:
    add = _SQLITE_ADD.format(key=_key("new"), row="new")
    remove = _SQLITE_REMOVE.format(key=_key("old"), row="old")
    return [
        f"CREATE TRIGGER pod_counts_insert AFTER INSERT ON workload_pods BEGIN {add} END",
        f"CREATE TRIGGER pod_counts_delete AFTER DELETE ON workload_pods BEGIN {remove} END",
        f"CREATE TRIGGER pod_counts_update AFTER UPDATE OF deleted_at, {', '.join(_KEY)} ON workload_pods "
        f"WHEN {_changed('old', 'new')} BEGIN {remove} {add} END",
    ]


def _pg_deltas(parts: list[tuple[str, int]]) -> str:
    """One upsert of the summed changes of the transition tables ``parts`` (name, +1 or -1)."""
    rows = " UNION ALL ".join(
        f"SELECT {_key('t')}, {sign} AS d FROM {table} t WHERE t.deleted_at IS NULL" for table, sign in parts
    )
    return (
        "INSERT INTO pod_counts AS c (cluster_id, department_id, project_id, live) "
        f"SELECT cluster_id, department_id, project_id, sum(d) FROM ({rows}) x (cluster_id, department_id, "
        "project_id, d) GROUP BY cluster_id, department_id, project_id HAVING sum(d) <> 0 "
        "ORDER BY cluster_id, department_id, project_id "
        "ON CONFLICT (cluster_id, department_id, project_id) DO UPDATE SET live = c.live + excluded.live;"
    )


def _pg_function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
    )


def _postgresql_up() -> list[str]:
    return [
        _pg_function("pod_counts_insert", _pg_deltas([("new_rows", 1)])),
        _pg_function("pod_counts_update", _pg_deltas([("new_rows", 1), ("old_rows", -1)])),
        _pg_function("pod_counts_delete", _pg_deltas([("old_rows", -1)])),
        "CREATE TRIGGER pod_counts_insert AFTER INSERT ON workload_pods REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION pod_counts_insert()",
        "CREATE TRIGGER pod_counts_update AFTER UPDATE ON workload_pods "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION pod_counts_update()",
        "CREATE TRIGGER pod_counts_delete AFTER DELETE ON workload_pods REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION pod_counts_delete()",
        # As 0006 did for workload_counts: counter rows turn over with every batch.
        "ALTER TABLE pod_counts SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)",
    ]


def upgrade() -> None:
    op.create_table(
        "pod_counts",
        sa.Column("cluster_id", sa.String(36), primary_key=True),
        sa.Column("department_id", _text_c(), primary_key=True),
        sa.Column("project_id", _text_c(), primary_key=True),
        sa.Column("live", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO pod_counts (cluster_id, department_id, project_id, live) "
        f"SELECT {_key('p')}, count(*) FROM workload_pods p WHERE p.deleted_at IS NULL "
        "GROUP BY 1, 2, 3"
    )
    for statement in _sqlite_up() if op.get_bind().dialect.name == "sqlite" else _postgresql_up():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("pod_counts_insert", "pod_counts_delete", "pod_counts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name in ("pod_counts_insert", "pod_counts_update", "pod_counts_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON workload_pods")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("pod_counts")


def _text_c() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
