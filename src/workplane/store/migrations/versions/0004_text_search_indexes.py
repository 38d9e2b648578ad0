"""trigram indexes for substring filters and search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

SQLite: an FTS5 table with the trigram tokenizer over ``name`` and ``search_text``, kept in step with
``workloads`` by triggers (external content: the text is stored once, in ``workloads``). The query
layer asks it for candidate rows when a substring is selective (``store.dialects``).
PostgreSQL: pg_trgm GIN indexes on the same expressions the filters use (``lower(name)`` and
``search_text``, live rows), which the planner picks by itself.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SQLITE_UP = (
    "CREATE VIRTUAL TABLE workload_text USING fts5("
    "name, search_text, content='workloads', content_rowid='rowid', tokenize='trigram')",
    "INSERT INTO workload_text(workload_text) VALUES ('rebuild')",
    "CREATE TRIGGER workload_text_insert AFTER INSERT ON workloads BEGIN "
    "INSERT INTO workload_text(rowid, name, search_text) VALUES (new.rowid, new.name, new.search_text); END",
    "CREATE TRIGGER workload_text_delete AFTER DELETE ON workloads BEGIN "
    "INSERT INTO workload_text(workload_text, rowid, name, search_text) "
    "VALUES ('delete', old.rowid, old.name, old.search_text); END",
    # Only when the indexed text changes: a phase change rewrites search_text, other updates do not.
    "CREATE TRIGGER workload_text_update AFTER UPDATE OF name, search_text ON workloads BEGIN "
    "INSERT INTO workload_text(workload_text, rowid, name, search_text) "
    "VALUES ('delete', old.rowid, old.name, old.search_text); "
    "INSERT INTO workload_text(rowid, name, search_text) VALUES (new.rowid, new.name, new.search_text); END",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS workload_text_update",
    "DROP TRIGGER IF EXISTS workload_text_delete",
    "DROP TRIGGER IF EXISTS workload_text_insert",
    "DROP TABLE IF EXISTS workload_text",
)
POSTGRESQL_UP = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_workloads_name_trgm ON workloads USING gin (lower(name) gin_trgm_ops) "
    "WHERE deleted_at IS NULL",
    "CREATE INDEX ix_workloads_search_trgm ON workloads USING gin (search_text gin_trgm_ops) "
    "WHERE deleted_at IS NULL",
)
POSTGRESQL_DOWN = (
    "DROP INDEX IF EXISTS ix_workloads_search_trgm",
    "DROP INDEX IF EXISTS ix_workloads_name_trgm",
)


def _run(statements: tuple[str, ...]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_UP)
    else:
        _run(POSTGRESQL_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_DOWN)
    else:
        _run(POSTGRESQL_DOWN)
