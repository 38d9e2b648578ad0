"""live-workload counts per (cluster, department, project, type, phase, own category/priority)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

The ``workload_counts`` table is kept exact by triggers, so no code path that writes workloads (store
functions, sync batches, purges, or a hand-run SQL statement) can leave it behind.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COUNTED = (
    "cluster_id",
    "department_id",
    "department_name",
    "project_id",
    "project_name",
    "type",
    "phase",
    "own_category",
    "own_priority",
)
NULLABLE = ("own_category", "own_priority")


def _key(row: str) -> str:
    """The combination as one text, each part length-prefixed so that no two combinations collide
    whatever characters names hold; a NULL part is written '-'."""
    parts = []
    for column in COUNTED:
        part = f"length({row}.{column}) || ':' || {row}.{column}"
        parts.append(f"coalesce({part}, '-')" if column in NULLABLE else part)
    return " || '/' || ".join(parts)


_COLUMNS = ", ".join(COUNTED)


def _values(row: str) -> str:
    return ", ".join(f"{row}.{c}" for c in COUNTED)


def _sqlite_up() -> list[str]:
    insert_new = (
        f"INSERT INTO workload_counts (key, {_COLUMNS}, n) SELECT {_key('new')}, {_values('new')}, 1 "
        "WHERE new.deleted_at IS NULL ON CONFLICT (key) DO UPDATE SET n = n + 1;"
    )
    remove_old = f"UPDATE workload_counts SET n = n - 1 WHERE old.deleted_at IS NULL AND key = {_key('old')};"
    return [
        f"CREATE TRIGGER workload_counts_insert AFTER INSERT ON workloads BEGIN {insert_new} END",
        f"CREATE TRIGGER workload_counts_delete AFTER DELETE ON workloads BEGIN {remove_old} END",
        f"CREATE TRIGGER workload_counts_update AFTER UPDATE OF {_COLUMNS}, deleted_at ON workloads "
        f"BEGIN {remove_old} {insert_new} END",
    ]


def _postgresql_up() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in (*COUNTED, "deleted_at"))
    return [
        f"""CREATE FUNCTION workload_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
        UPDATE workload_counts SET n = n - 1 WHERE key = {_key("OLD")};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        INSERT INTO workload_counts (key, {_COLUMNS}, n) VALUES ({_key("NEW")}, {_values("NEW")}, 1)
        ON CONFLICT (key) DO UPDATE SET n = workload_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$""",
        "CREATE TRIGGER workload_counts_insert_delete AFTER INSERT OR DELETE ON workloads "
        "FOR EACH ROW EXECUTE FUNCTION workload_counts_track()",
        f"CREATE TRIGGER workload_counts_update AFTER UPDATE ON workloads FOR EACH ROW WHEN ({changed}) "
        "EXECUTE FUNCTION workload_counts_track()",
    ]


def upgrade() -> None:
    op.create_table(
        "workload_counts",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("cluster_id", sa.String(length=36), nullable=False),
        *(
            sa.Column(c, sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=c in NULLABLE)
            for c in COUNTED[1:]
        ),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    # Existing workloads, counted once; the triggers keep the counts from here on.
    op.execute(
        f"INSERT INTO workload_counts (key, {_COLUMNS}, n) "
        f"SELECT {_key('w')}, {_values('w')}, count(*) FROM workloads w WHERE w.deleted_at IS NULL "
        f"GROUP BY {_values('w')}"
    )
    statements = _sqlite_up() if op.get_bind().dialect.name == "sqlite" else _postgresql_up()
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("workload_counts_insert", "workload_counts_delete", "workload_counts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS workload_counts_update ON workloads")
        op.execute("DROP TRIGGER IF EXISTS workload_counts_insert_delete ON workloads")
        op.execute("DROP FUNCTION IF EXISTS workload_counts_track()")
    op.drop_table("workload_counts")
