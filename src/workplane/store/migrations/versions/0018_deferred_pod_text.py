"""the pod text index's insert trigger steps aside for a writer that indexes its new pods itself

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

SQLite's FTS5 insert trigger of 0015 put each new pod in ``pod_text`` on its own: about 45 µs of CPU
of a sync batch's ~140 µs per new pod (measured at 40,000 pods), all of it under the write lock. As
0009 did for ``workload_text``, the trigger now first asks whether its transaction deferred it
(``triggers_deferred`` holds a row), and the sync path indexes the batch's new pods in one
``INSERT ... SELECT`` by row id instead (``SqlDialect.index_rows_after``). Every other writer is
indexed by the trigger as before. (The update and delete triggers fire only when a pod's text changes
or it goes, which a batch leaves to them.) PostgreSQL's pod text index is a GIN index: unchanged.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TEXT_INSERT = "pod_text_insert"  # 0015's FTS5 insert trigger


def _text_insert_trigger(guarded: bool) -> str:
    text_search = importlib.import_module("workplane.store.migrations.versions.0015_pod_text_search")
    deferred = importlib.import_module("workplane.store.migrations.versions.0009_deferred_triggers")
    (statement,) = [s for s in text_search.SQLITE_UP if f"TRIGGER {TEXT_INSERT} " in s]
    guarded_statement: str = deferred._guarded_sqlite_trigger(statement)
    return guarded_statement if guarded else statement


def _replace(guarded: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TEXT_INSERT}")
        op.execute(_text_insert_trigger(guarded))


def upgrade() -> None:
    _replace(guarded=True)


def downgrade() -> None:
    _replace(guarded=False)
