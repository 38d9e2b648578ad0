"""rollup and text-index triggers step aside for a writer that keeps them itself

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27

The triggers of 0007 keep ``workload_counts`` and ``workload_pool_counts`` exact whatever writes the
rows. On SQLite they run once per row, and for a sync batch (every row changes phase) they cost more
than the rest of the row's write put together: ~110 µs of ~150 µs per updated row. The sync path knows
each row's old and new values anyway, so it adds up the batch's changes itself and writes one
upsert per combination (``store.rollups``). The same holds for SQLite's FTS5 insert trigger: indexing
the batch's new rows in one ``INSERT ... SELECT`` costs 10–20 µs per row, the trigger ~100 µs. While
the batch writes, these triggers must not count or index the same rows again: each now first asks
whether its transaction deferred them.

- SQLite: ``triggers_deferred`` holds a row only inside a transaction that keeps them itself
  (inserted at its start and deleted before it commits, so no other connection ever sees it, and a
  rollback takes it away). Every rollup trigger, and the text index's insert trigger, gets
  ``WHEN NOT EXISTS (SELECT 1 FROM triggers_deferred)``. (The text index's update and delete triggers
  fire only when a name changes or a row goes, which a batch leaves to them.)
- PostgreSQL: the transaction sets ``workplane.rollups`` to ``deferred`` (``set_config(..., true)``,
  local to the transaction and to its connection, so concurrent writers are unaffected) and every
  rollup trigger function returns at once when it is. (PostgreSQL's text index, the side table of
  migration 0010, is kept by triggers of its own that a batch leaves on: they fire only for new rows
  and changed text.)

Every other writer — the store's own functions, the purge, hand-written SQL — is counted by the
triggers as before.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SQLITE_GUARD = "NOT EXISTS (SELECT 1 FROM triggers_deferred)"
PG_GUARD = "current_setting('workplane.rollups', true) = 'deferred'"
TEXT_INSERT = "workload_text_insert"  # 0004's FTS5 insert trigger


def _rollups() -> ModuleType:
    """Migration 0007: its trigger and function statements are the ones guarded here."""
    return importlib.import_module("workplane.store.migrations.versions.0007_telemetry_rollups")


def _guarded_sqlite_trigger(statement: str) -> str:
    """0007's trigger with the guard in front of its own condition (the header ends at `` BEGIN ``)."""
    header, body = statement.split(" BEGIN ", 1)
    if " WHEN " in header:
        head, condition = header.split(" WHEN ", 1)
        header = f"{head} WHEN {SQLITE_GUARD} AND ({condition})"
    else:
        header = f"{header} WHEN {SQLITE_GUARD}"
    return f"{header} BEGIN {body}"


def _guarded_pg_function(statement: str) -> str:
    """0007's trigger function, replaced by one that first returns when its transaction deferred it."""
    returns = "OLD" if "RETURN OLD;" in statement else "NULL"
    guard = f"IF {PG_GUARD} THEN RETURN {returns}; END IF;\n"
    replaced = statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    return replaced.replace("$$\nBEGIN\n", f"$$\nBEGIN\n{guard}", 1)


def _sqlite_triggers(guarded: bool) -> list[str]:
    statements: list[str] = _rollups()._sqlite_up()
    return [_guarded_sqlite_trigger(s) if guarded else s for s in statements]


def _pg_functions(guarded: bool) -> list[str]:
    functions = [s for s in _rollups()._postgresql_up() if s.startswith("CREATE FUNCTION")]
    if guarded:
        return [_guarded_pg_function(s) for s in functions]
    return [s.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1) for s in functions]


def _text_insert_trigger(guarded: bool) -> str:
    text_search = importlib.import_module("workplane.store.migrations.versions.0004_text_search_indexes")
    (statement,) = [s for s in text_search.SQLITE_UP if f"TRIGGER {TEXT_INSERT} " in s]
    return _guarded_sqlite_trigger(statement) if guarded else statement


def _replace_sqlite_triggers(guarded: bool) -> None:
    for name in (*_rollups().SQLITE_TRIGGERS, TEXT_INSERT):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in (*_sqlite_triggers(guarded), _text_insert_trigger(guarded)):
        op.execute(statement)


def upgrade() -> None:
    # On both databases, so that the schema is the same (PostgreSQL never writes to it).
    op.create_table("triggers_deferred", sa.Column("id", sa.Integer(), primary_key=True))
    if op.get_bind().dialect.name == "sqlite":
        _replace_sqlite_triggers(guarded=True)
    else:
        for statement in _pg_functions(guarded=True):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _replace_sqlite_triggers(guarded=False)
    else:
        for statement in _pg_functions(guarded=False):
            op.execute(statement)
    op.drop_table("triggers_deferred")
