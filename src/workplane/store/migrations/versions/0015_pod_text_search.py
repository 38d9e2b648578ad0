"""pod text search: trigram indexes for the pod list's search words

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06

The pod list's ``search`` is a substring of ``workload_pods.search_text``; with only a B-tree on that
column, a selective word walked every live pod (a second at a million pods).

SQLite: an FTS5 trigram table, ``pod_text``, over ``search_text`` (external content: the text is stored
once, in ``workload_pods``), kept in step by triggers as 0004's ``workload_text`` is; the update
trigger fires only when the text really changed (the pod upsert names every column in its SET). The
query layer asks it for candidate rows when a word is selective (``store.dialects``).

PostgreSQL: a pg_trgm GIN index on ``search_text`` over live pods, which the planner weighs by itself.
Not a side table as the workloads have (0010): a pod's search text holds its phase, so the phase
changes that make up most pod updates change the indexed text anyway; a side table would add a row
write to each of them instead of saving one.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

SQLITE_UP = (
    "CREATE VIRTUAL TABLE pod_text USING fts5("
    "search_text, content='workload_pods', content_rowid='rowid', tokenize='trigram')",
    "INSERT INTO pod_text(pod_text) VALUES ('rebuild')",
    "CREATE TRIGGER pod_text_insert AFTER INSERT ON workload_pods BEGIN "
    "INSERT INTO pod_text(rowid, search_text) VALUES (new.rowid, new.search_text); END",
    "CREATE TRIGGER pod_text_delete AFTER DELETE ON workload_pods BEGIN "
    "INSERT INTO pod_text(pod_text, rowid, search_text) VALUES ('delete', old.rowid, old.search_text); END",
    "CREATE TRIGGER pod_text_update AFTER UPDATE OF search_text ON workload_pods "
    "WHEN old.search_text IS NOT new.search_text BEGIN "
    "INSERT INTO pod_text(pod_text, rowid, search_text) VALUES ('delete', old.rowid, old.search_text); "
    "INSERT INTO pod_text(rowid, search_text) VALUES (new.rowid, new.search_text); END",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS pod_text_update",
    "DROP TRIGGER IF EXISTS pod_text_delete",
    "DROP TRIGGER IF EXISTS pod_text_insert",
    "DROP TABLE IF EXISTS pod_text",
)
POSTGRESQL_UP = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_workload_pods_search_trgm ON workload_pods USING gin (search_text gin_trgm_ops) "
    "WHERE deleted_at IS NULL",
)
POSTGRESQL_DOWN = ("DROP INDEX IF EXISTS ix_workload_pods_search_trgm",)


def _run(statements: tuple[str, ...]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _run(SQLITE_UP if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_UP)


def downgrade() -> None:
    _run(SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_DOWN)
