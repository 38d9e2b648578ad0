"""PostgreSQL: the trigram indexes move from ``workloads`` to a narrow side table, ``workload_search``

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

A phase change updates indexed columns of ``workloads``, so PostgreSQL cannot make it a HOT update: the
new row version gets an entry in every index of the table, the two pg_trgm GIN indexes of 0004
included, although ``name`` and ``search_text`` almost never change. Those two entries were about a
third of the cost of an updated row. The text and its indexes now live in ``workload_search``, one row
per workload (live or deleted), which triggers keep in step:

- after an INSERT into ``workloads``: one statement-level trigger copies the new rows (a batch of
  workloads is one INSERT statement, so one INSERT ... SELECT per batch);
- after an UPDATE naming ``name`` or ``search_text``: a row trigger, only for rows whose value really
  changed. The store's writers name in SET only the columns that changed, so a phase change does not
  fire it at all;
- a DELETE (the purge) removes the side rows by the foreign key's cascade.

The query layer asks ``workload_search`` for substring matches (``store.dialects``). SQLite keeps
its FTS5 table (0004): nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UP = (
    # The id type and the name's "C" collation are those of ``workloads``, so that lower() folds
    # exactly as the filters do (ASCII only) and LIKE compares the same characters.
    "CREATE TABLE workload_search ("
    "workload_id varchar(36) NOT NULL PRIMARY KEY "
    "REFERENCES workloads (id) ON DELETE CASCADE ON UPDATE CASCADE, "
    'name_lower text COLLATE "C" NOT NULL, '
    "search_text text NOT NULL)",
    "INSERT INTO workload_search (workload_id, name_lower, search_text) "
    "SELECT id, lower(name), search_text FROM workloads",
    # Not partial: a deleted workload keeps its row here (deleted rows are a few percent of the
    # inventory, the retention purge removes them), so deleted=true listings can use the indexes too.
    "CREATE INDEX ix_workload_search_name_trgm ON workload_search USING gin (name_lower gin_trgm_ops)",
    "CREATE INDEX ix_workload_search_text_trgm ON workload_search USING gin (search_text gin_trgm_ops)",
    "DROP INDEX IF EXISTS ix_workloads_search_trgm",
    "DROP INDEX IF EXISTS ix_workloads_name_trgm",
    """CREATE FUNCTION workload_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO workload_search (workload_id, name_lower, search_text)
    SELECT id, lower(name), search_text FROM new_rows;
    RETURN NULL;
END
$$""",
    """CREATE FUNCTION workload_search_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workload_search SET name_lower = lower(NEW.name), search_text = NEW.search_text
    WHERE workload_id = NEW.id;
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER workload_search_insert AFTER INSERT ON workloads REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION workload_search_insert()",
    # A column list and a WHEN clause: PostgreSQL checks both before calling the function, so an UPDATE
    # that leaves the text alone costs nothing here.
    "CREATE TRIGGER workload_search_update AFTER UPDATE OF name, search_text ON workloads FOR EACH ROW "
    "WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.search_text IS DISTINCT FROM NEW.search_text) "
    "EXECUTE FUNCTION workload_search_update()",
    # Statistics now, not when autovacuum comes by: the planner weighs the trigram plans by them.
    "ANALYZE workload_search",
)

# Back to the 0004 state: the partial GIN indexes on ``workloads`` itself.
DOWN = (
    "DROP TRIGGER IF EXISTS workload_search_update ON workloads",
    "DROP TRIGGER IF EXISTS workload_search_insert ON workloads",
    "DROP FUNCTION IF EXISTS workload_search_update()",
    "DROP FUNCTION IF EXISTS workload_search_insert()",
    "DROP TABLE IF EXISTS workload_search",
    "CREATE INDEX ix_workloads_name_trgm ON workloads USING gin (lower(name) gin_trgm_ops) "
    "WHERE deleted_at IS NULL",
    "CREATE INDEX ix_workloads_search_trgm ON workloads USING gin (search_text gin_trgm_ops) "
    "WHERE deleted_at IS NULL",
)


def _run(statements: tuple[str, ...]) -> None:
    # SQLite keeps its FTS5 table (0004); this revision changes nothing there.
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _run(UP)


def downgrade() -> None:
    _run(DOWN)
