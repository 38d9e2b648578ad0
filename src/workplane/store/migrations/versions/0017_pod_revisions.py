"""pod revisions: the workload revision a pod belongs to, filtered, sorted and counted by

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

Agents now report the revision that owns a pod (a Knative Service's pods belong to one of its
Revisions): ``workload_pods.revision_id``, with a partial index over the live pods that have one (the
filter ``revisionId==`` and its count). Pods without a revision, most of them, add no index entry.

``pod_counts`` gains ``revision_id`` (an empty text for none) as a fourth key column, so that a count
with terms on revisionId is still summed from its rows, as it was while no pod had a revision. The
rows are one per (cluster, department, project, revision) with live pods: a few more per Knative
Service, which a count with no filter sums as well. Revisions come and go (every change of a
Service's template makes one, and scaling to zero empties it), so a revision's row is deleted when its
count reaches zero, by the trigger that took it there; the rows without a revision stay as 0016 keeps
them. The table and its triggers are made again with the new key (same shape as 0016's), counted
from the stored pods.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

LIVE_WITH_REVISION = "deleted_at IS NULL AND revision_id IS NOT NULL"
_BEFORE = ("cluster_id", "department_id", "project_id")
_AFTER = (*_BEFORE, "revision_id")
_TRIGGERS = ("pod_counts_insert", "pod_counts_update", "pod_counts_delete")


def _key(row: str, key: tuple[str, ...]) -> str:
    return ", ".join(f"{row}.{c}" if c == "cluster_id" else f"coalesce({row}.{c}, '')" for c in key)


def _sqlite_triggers(key: tuple[str, ...]) -> list[str]:
    columns = ", ".join(key)
    new, old = _key("new", key), _key("old", key)
    add = (
        f"INSERT INTO pod_counts ({columns}, live) SELECT {new}, 1 "
        "WHERE new.deleted_at IS NULL ON CONFLICT DO UPDATE SET live = live + 1;"
    )
    remove = f"UPDATE pod_counts SET live = live - 1 WHERE old.deleted_at IS NULL AND ({columns}) = ({old});"
    if "revision_id" in key:
        remove += (
            " DELETE FROM pod_counts WHERE old.deleted_at IS NULL AND old.revision_id IS NOT NULL "
            f"AND live = 0 AND ({columns}) = ({old});"
        )
    changed = "(old.deleted_at IS NULL) <> (new.deleted_at IS NULL) OR " + " OR ".join(
        f"old.{c} IS NOT new.{c}" for c in key
    )
    return [
        f"CREATE TRIGGER pod_counts_insert AFTER INSERT ON workload_pods BEGIN {add} END",
        f"CREATE TRIGGER pod_counts_delete AFTER DELETE ON workload_pods BEGIN {remove} END",
        f"CREATE TRIGGER pod_counts_update AFTER UPDATE OF deleted_at, {columns} ON workload_pods "
        f"WHEN {changed} BEGIN {remove} {add} END",
    ]


def _pg_deltas(parts: list[tuple[str, int]], key: tuple[str, ...]) -> str:
    """One upsert of the summed changes of the transition tables ``parts`` (name, +1 or -1), the keys
    in order (concurrent writers lock counter rows in the same order)."""
    columns = ", ".join(key)
    rows = " UNION ALL ".join(
        f"SELECT {_key('t', key)}, {sign} AS d FROM {table} t WHERE t.deleted_at IS NULL"
        for table, sign in parts
    )
    return (
        f"INSERT INTO pod_counts AS c ({columns}, live) "
        f"SELECT {columns}, sum(d) FROM ({rows}) x ({columns}, d) GROUP BY {columns} HAVING sum(d) <> 0 "
        f"ORDER BY {columns} "
        f"ON CONFLICT ({columns}) DO UPDATE SET live = c.live + excluded.live;"
    )


def _pg_prune(key: tuple[str, ...]) -> str:
    """Drop the revisions' counter rows that the statement took to zero. Those rows are locked by this
    transaction already (its upsert changed them), so the delete waits for no other writer; a row
    that a concurrent writer's pod keeps above zero is not deleted, and a writer that adds to a row
    being deleted inserts it again once this transaction commits (``ON CONFLICT`` retries)."""
    columns = ", ".join(key)
    gone = (
        f"SELECT DISTINCT {_key('t', key)} FROM old_rows t "
        "WHERE t.deleted_at IS NULL AND t.revision_id IS NOT NULL"
    )
    matched = " AND ".join(f"c.{c} = o.{c}" for c in key)
    return f"DELETE FROM pod_counts c USING ({gone}) o ({columns}) WHERE c.live = 0 AND {matched};"


def _pg_function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
    )


def _postgresql_triggers(key: tuple[str, ...]) -> list[str]:
    prune = f"\n{_pg_prune(key)}" if "revision_id" in key else ""
    return [
        _pg_function("pod_counts_insert", _pg_deltas([("new_rows", 1)], key)),
        _pg_function("pod_counts_update", _pg_deltas([("new_rows", 1), ("old_rows", -1)], key) + prune),
        _pg_function("pod_counts_delete", _pg_deltas([("old_rows", -1)], key) + prune),
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


def _drop_counts() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in _TRIGGERS:
        if sqlite:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON workload_pods")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("pod_counts")


def _create_counts(key: tuple[str, ...]) -> None:
    """``pod_counts`` keyed by ``key``, counted from the stored live pods, and its triggers."""
    op.create_table(
        "pod_counts",
        sa.Column("cluster_id", sa.String(36), primary_key=True),
        *(sa.Column(c, _text_c(), primary_key=True) for c in key[1:]),
        sa.Column("live", sa.BigInteger(), nullable=False),
    )
    columns = ", ".join(key)
    groups = ", ".join(str(n + 1) for n in range(len(key)))
    op.execute(
        f"INSERT INTO pod_counts ({columns}, live) SELECT {_key('p', key)}, count(*) "
        f"FROM workload_pods p WHERE p.deleted_at IS NULL GROUP BY {groups}"
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _sqlite_triggers(key) if sqlite else _postgresql_triggers(key):
        op.execute(statement)


def upgrade() -> None:
    op.add_column("workload_pods", sa.Column("revision_id", _text_c(), nullable=True))
    op.create_index(
        "ix_workload_pods_live_revision_id",
        "workload_pods",
        ["revision_id", "created_at", "id"],
        sqlite_where=sa.text(LIVE_WITH_REVISION),
        postgresql_where=sa.text(LIVE_WITH_REVISION),
    )
    _drop_counts()
    _create_counts(_AFTER)


def downgrade() -> None:
    _drop_counts()
    op.drop_index("ix_workload_pods_live_revision_id", table_name="workload_pods")
    # SQLite drops the column in place (3.35+): a batch would copy the table, and with it lose the
    # triggers and the row ids that pod_text (0015) refers to.
    op.drop_column("workload_pods", "revision_id")
    _create_counts(_BEFORE)


def _text_c() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
