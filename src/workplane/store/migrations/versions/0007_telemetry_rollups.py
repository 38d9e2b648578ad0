"""telemetry rollups: allocated GPUs in the live counts, live counts per current node pool,
an index of Pending workloads; statement-level count triggers on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

Telemetry (``GET /workloads/telemetry``) sums counts and allocated GPUs per group over every live
workload; a GROUP BY over a million rows costs 100+ ms on either database, so both sums are kept by
the database as rows are written:

- ``workload_counts`` (0005) gains ``gpu_micro``: the summed allocated GPUs in millionths. An integer,
  so that adding and later subtracting a workload's share leaves no floating-point residue however
  many times it moves between groups.
- ``workload_pool_counts``: the same per (cluster, department, project, type, phase, own category,
  current node pool). A workload in two pools counts in both; a pool named twice by one workload
  counts once.

Triggers keep both exact whatever writes the rows (store functions, sync batches, purges, hand-written
SQL). On SQLite they are row triggers (cheap there: no per-statement machinery to amortise). On
PostgreSQL they are statement triggers over transition tables: one aggregated upsert per statement
instead of one counter update per row, so a multi-row statement (hand-written SQL, the purge, a batch
sent as one statement) touches each counter row once. The store's executemany INSERTs and UPDATEs are
one statement per row with psycopg 3, so they gain only once a batch is sent as one statement. The
0005 row triggers of ``workload_counts`` are replaced the same way. PostgreSQL refuses a column list
on a trigger with transition tables, so the UPDATE trigger fires for every UPDATE statement and
first checks, in one query, whether any counted value changed.

Deleting a live workload row removes its pool rows by cascade *before* any AFTER trigger of the
workload runs, so its pool counts are taken away by a BEFORE DELETE row trigger that fires only for
live rows (never for the purge, which deletes workloads already marked deleted); the cascaded pool
deletions then find no live workload and change nothing.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# workload_counts' dimensions (0005) and the pool rollup's.
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
POOLED = ("cluster_id", "department_id", "project_id", "type", "phase", "own_category")
NULLABLE = ("own_category", "own_priority")


def gpu(row: str) -> str:
    """A workload's allocated GPUs in millionths (the rollups' unit)."""
    return f"CAST(round(coalesce({row}.allocated_gpu, 0) * 1000000) AS BIGINT)"


def _part(expr: str, nullable: bool) -> str:
    part = f"length({expr}) || ':' || {expr}"
    return f"coalesce({part}, '-')" if nullable else part


def count_key(row: str) -> str:
    """0005's key: every part length-prefixed so no two combinations collide; NULL is '-'."""
    return " || '/' || ".join(_part(f"{row}.{c}", c in NULLABLE) for c in COUNTED)


def pool_key(row: str, pool: str) -> str:
    parts = [_part(f"{row}.{c}", c in NULLABLE) for c in POOLED] + [_part(pool, False)]
    return " || '/' || ".join(parts)


def _values(row: str, columns: tuple[str, ...]) -> str:
    return ", ".join(f"{row}.{c}" for c in columns)


_COUNT_COLUMNS = ", ".join(COUNTED)
_POOL_COLUMNS = ", ".join(POOLED)
_ADD_COUNTS = "ON CONFLICT (key) DO UPDATE SET n = workload_counts.n + excluded.n, "
_ADD_COUNTS += "gpu_micro = workload_counts.gpu_micro + excluded.gpu_micro"
_ADD_POOLS = "ON CONFLICT (key) DO UPDATE SET n = workload_pool_counts.n + excluded.n, "
_ADD_POOLS += "gpu_micro = workload_pool_counts.gpu_micro + excluded.gpu_micro"


# --- SQLite: row triggers -------------------------------------------------------------------------


def _sqlite_add_counts(row: str) -> str:
    return (
        f"INSERT INTO workload_counts (key, {_COUNT_COLUMNS}, n, gpu_micro) "
        f"SELECT {count_key(row)}, {_values(row, COUNTED)}, 1, {gpu(row)} "
        f"WHERE {row}.deleted_at IS NULL {_ADD_COUNTS};"
    )


def _sqlite_remove_counts(row: str) -> str:
    return (
        f"UPDATE workload_counts SET n = n - 1, gpu_micro = gpu_micro - {gpu(row)} "
        f"WHERE {row}.deleted_at IS NULL AND key = {count_key(row)};"
    )


def _sqlite_add_pools(row: str) -> str:
    """Count a live workload in each of its (distinct) current pools."""
    return (
        f"INSERT INTO workload_pool_counts (key, {_POOL_COLUMNS}, nodepool, n, gpu_micro) "
        f"SELECT {pool_key(row, 'p.name')}, {_values(row, POOLED)}, p.name, 1, {gpu(row)} "
        f"FROM (SELECT DISTINCT name FROM workload_nodepools WHERE workload_id = {row}.id) p "
        f"WHERE {row}.deleted_at IS NULL {_ADD_POOLS};"
    )


def _sqlite_remove_pools(row: str) -> str:
    return (
        f"UPDATE workload_pool_counts SET n = n - 1, gpu_micro = gpu_micro - {gpu(row)} "
        f"WHERE {row}.deleted_at IS NULL AND key IN "
        f"(SELECT {pool_key(row, 'name')} FROM workload_nodepools WHERE workload_id = {row}.id);"
    )


def _sqlite_pool_added(pool: str) -> str:
    """A pool row appeared: its workload (if live) enters the pool unless it was already in it."""
    return (
        f"INSERT INTO workload_pool_counts (key, {_POOL_COLUMNS}, nodepool, n, gpu_micro) "
        f"SELECT {pool_key('w', f'{pool}.name')}, {_values('w', POOLED)}, {pool}.name, 1, {gpu('w')} "
        f"FROM workloads w WHERE w.id = {pool}.workload_id AND w.deleted_at IS NULL AND NOT EXISTS "
        f"(SELECT 1 FROM workload_nodepools o WHERE o.workload_id = {pool}.workload_id "
        f"AND o.name = {pool}.name AND o.position <> {pool}.position) {_ADD_POOLS};"
    )


def _sqlite_pool_removed(pool: str) -> str:
    """A pool row went: its workload (if live) leaves the pool unless another row still names it."""
    return (
        f"UPDATE workload_pool_counts SET n = n - 1, gpu_micro = gpu_micro - "
        f"(SELECT {gpu('w')} FROM workloads w WHERE w.id = {pool}.workload_id) "
        f"WHERE key = (SELECT {pool_key('w', f'{pool}.name')} FROM workloads w "
        f"WHERE w.id = {pool}.workload_id AND w.deleted_at IS NULL) AND NOT EXISTS "
        f"(SELECT 1 FROM workload_nodepools o WHERE o.workload_id = {pool}.workload_id "
        f"AND o.name = {pool}.name);"
    )


SQLITE_TRIGGERS = (
    "workload_counts_insert",
    "workload_counts_delete",
    "workload_counts_update",
    "workload_pools_insert",
    "workload_pools_update",
    "workload_pools_delete",
    "workload_nodepools_insert",
    "workload_nodepools_delete",
    "workload_nodepools_update",
)


def _sqlite_up() -> list[str]:
    counted = ", ".join((*COUNTED, "deleted_at", "allocated_gpu"))
    pooled = ", ".join((*POOLED, "deleted_at", "allocated_gpu"))
    return [
        f"CREATE TRIGGER workload_counts_insert AFTER INSERT ON workloads BEGIN "
        f"{_sqlite_add_counts('new')} END",
        f"CREATE TRIGGER workload_counts_delete AFTER DELETE ON workloads BEGIN "
        f"{_sqlite_remove_counts('old')} END",
        f"CREATE TRIGGER workload_counts_update AFTER UPDATE OF {counted} ON workloads BEGIN "
        f"{_sqlite_remove_counts('old')} {_sqlite_add_counts('new')} END",
        # A new workload normally has no pool rows yet (they reference it); counted here all the same
        # for a connection that runs without foreign-key enforcement.
        "CREATE TRIGGER workload_pools_insert AFTER INSERT ON workloads BEGIN "
        f"{_sqlite_add_pools('new')} END",
        # Only for a workload that is in some pool: most changes (every Pending one) then cost one probe.
        f"CREATE TRIGGER workload_pools_update AFTER UPDATE OF {pooled} ON workloads "
        "WHEN EXISTS (SELECT 1 FROM workload_nodepools WHERE workload_id = old.id) BEGIN "
        f"{_sqlite_remove_pools('old')} {_sqlite_add_pools('new')} END",
        # BEFORE: the cascade removes the pool rows before any AFTER trigger of the workload runs.
        "CREATE TRIGGER workload_pools_delete BEFORE DELETE ON workloads WHEN old.deleted_at IS NULL "
        f"BEGIN {_sqlite_remove_pools('old')} END",
        "CREATE TRIGGER workload_nodepools_insert AFTER INSERT ON workload_nodepools BEGIN "
        f"{_sqlite_pool_added('new')} END",
        "CREATE TRIGGER workload_nodepools_delete AFTER DELETE ON workload_nodepools BEGIN "
        f"{_sqlite_pool_removed('old')} END",
        "CREATE TRIGGER workload_nodepools_update AFTER UPDATE ON workload_nodepools "
        "WHEN new.workload_id IS NOT old.workload_id OR new.name IS NOT old.name BEGIN "
        f"{_sqlite_pool_removed('old')} {_sqlite_pool_added('new')} END",
    ]


# --- PostgreSQL: statement triggers over transition tables ---------------------------------------


def _pg_function(name: str, body: str, returns: str = "NULL") -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\n"
        f"RETURN {returns};\nEND\n$$"
    )


def _pg_count_deltas(sources: list[tuple[str, int]]) -> str:
    """Upsert the per-combination sums of ``sign`` × (1, GPUs) over the live rows of each source."""
    parts = [
        f"SELECT {_values('r', COUNTED)}, {sign} AS dn, {sign} * {gpu('r')} AS dg "
        f"FROM {source} r WHERE r.deleted_at IS NULL"
        for source, sign in sources
    ]
    return (
        f"INSERT INTO workload_counts (key, {_COUNT_COLUMNS}, n, gpu_micro) "
        f"SELECT {count_key('d')}, {_values('d', COUNTED)}, sum(d.dn), sum(d.dg) "
        f"FROM ({' UNION ALL '.join(parts)}) d GROUP BY {_values('d', COUNTED)} "
        f"HAVING sum(d.dn) <> 0 OR sum(d.dg) <> 0 {_ADD_COUNTS};"
    )


def _pg_pool_deltas_of_workloads(sources: list[tuple[str, int]]) -> str:
    """The same for the pool rollup: each live row in each of its current (distinct) pools."""
    parts = [
        f"SELECT r.id, {_values('r', POOLED)}, {sign} AS dn, {sign} * {gpu('r')} AS dg "
        f"FROM {source} r WHERE r.deleted_at IS NULL"
        for source, sign in sources
    ]
    return (
        f"INSERT INTO workload_pool_counts (key, {_POOL_COLUMNS}, nodepool, n, gpu_micro) "
        f"SELECT {pool_key('d', 'p.name')}, {_values('d', POOLED)}, p.name, sum(d.dn), sum(d.dg) "
        f"FROM ({' UNION ALL '.join(parts)}) d JOIN LATERAL "
        f"(SELECT DISTINCT x.name FROM workload_nodepools x WHERE x.workload_id = d.id) p ON true "
        f"GROUP BY {_values('d', POOLED)}, p.name HAVING sum(d.dn) <> 0 OR sum(d.dg) <> 0 {_ADD_POOLS};"
    )


def _pg_pool_rows_changed(new: bool, old: bool) -> str:
    """Pool rows were inserted / deleted / updated. Per (workload, pool) named by the statement: it is
    in the pool now if some row names it; it was before if (rows now − rows added + rows removed) > 0.
    The difference moves the workload's share, if the workload is live."""
    sources = []
    if new:
        sources.append("SELECT workload_id, name, 1 AS added, 0 AS removed FROM new_rows")
    if old:
        sources.append("SELECT workload_id, name, 0 AS added, 1 AS removed FROM old_rows")
    return (
        "INSERT INTO workload_pool_counts "
        f"(key, {_POOL_COLUMNS}, nodepool, n, gpu_micro) "
        f"SELECT {pool_key('w', 'c.name')}, {_values('w', POOLED)}, c.name, sum(c.dn), "
        f"sum(c.dn * {gpu('w')}) FROM ("
        "SELECT t.workload_id, t.name, "
        "(CASE WHEN t.now > 0 THEN 1 ELSE 0 END) - "
        "(CASE WHEN t.now - t.added + t.removed > 0 THEN 1 ELSE 0 END) AS dn FROM ("
        "SELECT s.workload_id, s.name, sum(s.added) AS added, sum(s.removed) AS removed, "
        "(SELECT count(*) FROM workload_nodepools x WHERE x.workload_id = s.workload_id "
        "AND x.name = s.name) AS now "
        f"FROM ({' UNION ALL '.join(sources)}) s GROUP BY s.workload_id, s.name) t) c "
        "JOIN workloads w ON w.id = c.workload_id "
        f"WHERE w.deleted_at IS NULL AND c.dn <> 0 GROUP BY {_values('w', POOLED)}, c.name "
        f"HAVING sum(c.dn) <> 0 {_ADD_POOLS};"
    )


def _pg_changed_rows() -> str:
    watched = (*COUNTED, "deleted_at", "allocated_gpu")
    return (
        "SELECT 1 FROM old_rows o FULL JOIN new_rows n ON n.id = o.id WHERE o.id IS NULL OR n.id IS NULL "
        f"OR ({_values('o', watched)}) IS DISTINCT FROM ({_values('n', watched)})"
    )


PG_FUNCTIONS = (
    "workload_rollups_insert",
    "workload_rollups_update",
    "workload_rollups_delete",
    "workload_pools_forget",
    "workload_nodepools_insert",
    "workload_nodepools_update",
    "workload_nodepools_delete",
)


def _postgresql_up() -> list[str]:
    old, new = ("old_rows", -1), ("new_rows", 1)
    return [
        # A new workload has no pool rows yet: they reference it, and PostgreSQL always enforces that.
        _pg_function("workload_rollups_insert", _pg_count_deltas([new])),
        _pg_function(
            "workload_rollups_update",
            f"IF NOT EXISTS ({_pg_changed_rows()}) THEN RETURN NULL; END IF;\n"
            f"{_pg_count_deltas([old, new])}\n{_pg_pool_deltas_of_workloads([old, new])}",
        ),
        _pg_function("workload_rollups_delete", _pg_count_deltas([old])),
        _pg_function(
            "workload_pools_forget",
            "UPDATE workload_pool_counts SET n = n - 1, gpu_micro = gpu_micro - "
            f"{gpu('OLD')} WHERE key IN (SELECT {pool_key('OLD', 'x.name')} FROM workload_nodepools x "
            "WHERE x.workload_id = OLD.id);",
            returns="OLD",
        ),
        _pg_function("workload_nodepools_insert", _pg_pool_rows_changed(new=True, old=False)),
        _pg_function("workload_nodepools_update", _pg_pool_rows_changed(new=True, old=True)),
        _pg_function("workload_nodepools_delete", _pg_pool_rows_changed(new=False, old=True)),
        "CREATE TRIGGER workload_rollups_insert AFTER INSERT ON workloads REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION workload_rollups_insert()",
        "CREATE TRIGGER workload_rollups_update AFTER UPDATE ON workloads "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION workload_rollups_update()",
        "CREATE TRIGGER workload_rollups_delete AFTER DELETE ON workloads REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION workload_rollups_delete()",
        "CREATE TRIGGER workload_pools_forget BEFORE DELETE ON workloads FOR EACH ROW "
        "WHEN (OLD.deleted_at IS NULL) EXECUTE FUNCTION workload_pools_forget()",
        "CREATE TRIGGER workload_nodepools_insert AFTER INSERT ON workload_nodepools "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION workload_nodepools_insert()",
        "CREATE TRIGGER workload_nodepools_update AFTER UPDATE ON workload_nodepools "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION workload_nodepools_update()",
        "CREATE TRIGGER workload_nodepools_delete AFTER DELETE ON workload_nodepools "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION workload_nodepools_delete()",
        # As 0006 did for workload_counts: counter rows turn over constantly under ingestion.
        "ALTER TABLE workload_pool_counts SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)",
    ]


def _text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


PENDING = sa.text("deleted_at IS NULL AND phase = 'Pending'")
# Led by phase, although the index holds only Pending rows: the query's "phase = 'Pending'" is then an
# equality on a covering index, which SQLite's planner (no statistics) prefers to the live-phase index.
PENDING_COLUMNS = (
    "phase",
    "phase_updated_at",
    "cluster_id",
    "department_id",
    "project_id",
    "type",
    "own_category",
    "id",
    # Always NULL here, but SQLite counts an index as covering only if it holds every column the query
    # names, and the query names deleted_at.
    "deleted_at",
)


def _drop_0005_triggers(sqlite: bool) -> None:
    if sqlite:
        for name in ("workload_counts_insert", "workload_counts_delete", "workload_counts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS workload_counts_update ON workloads")
        op.execute("DROP TRIGGER IF EXISTS workload_counts_insert_delete ON workloads")
        op.execute("DROP FUNCTION IF EXISTS workload_counts_track()")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_0005_triggers(sqlite)
    op.add_column(
        "workload_counts", sa.Column("gpu_micro", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_table(
        "workload_pool_counts",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("cluster_id", sa.String(length=36), nullable=False),
        *(sa.Column(c, _text(), nullable=c in NULLABLE) for c in POOLED[1:]),
        sa.Column("nodepool", _text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("gpu_micro", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        "ix_workloads_pending",
        "workloads",
        list(PENDING_COLUMNS),
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    # Existing workloads, counted once; the triggers keep the sums from here on.
    op.execute("DELETE FROM workload_counts")
    op.execute(
        f"INSERT INTO workload_counts (key, {_COUNT_COLUMNS}, n, gpu_micro) "
        f"SELECT {count_key('w')}, {_values('w', COUNTED)}, count(*), sum({gpu('w')}) "
        f"FROM workloads w WHERE w.deleted_at IS NULL GROUP BY {_values('w', COUNTED)}"
    )
    op.execute(
        f"INSERT INTO workload_pool_counts (key, {_POOL_COLUMNS}, nodepool, n, gpu_micro) "
        f"SELECT {pool_key('w', 'p.name')}, {_values('w', POOLED)}, p.name, count(*), sum({gpu('w')}) "
        "FROM workloads w JOIN (SELECT DISTINCT workload_id, name FROM workload_nodepools) p "
        f"ON p.workload_id = w.id WHERE w.deleted_at IS NULL GROUP BY {_values('w', POOLED)}, p.name"
    )
    for statement in _sqlite_up() if sqlite else _postgresql_up():
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in (
            ("workload_rollups_insert", "workloads"),
            ("workload_rollups_update", "workloads"),
            ("workload_rollups_delete", "workloads"),
            ("workload_pools_forget", "workloads"),
            ("workload_nodepools_insert", "workload_nodepools"),
            ("workload_nodepools_update", "workload_nodepools"),
            ("workload_nodepools_delete", "workload_nodepools"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index("ix_workloads_pending", table_name="workloads")
    op.drop_table("workload_pool_counts")
    op.drop_column("workload_counts", "gpu_micro")
    # 0005's row triggers, as that revision created them.
    live_counts = importlib.import_module("workplane.store.migrations.versions.0005_live_counts")
    for statement in live_counts._sqlite_up() if sqlite else live_counts._postgresql_up():
        op.execute(statement)
