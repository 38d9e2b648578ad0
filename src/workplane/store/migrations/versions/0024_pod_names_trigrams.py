"""PostgreSQL: the pods' trigram index on their search text without the phase, and an index on the
phase over live pods

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07

A count of a search word that is a phase's (``succeeded``, a tenth of the pods at a million) read each
candidate row the trigram index on ``search_text`` (0015) gave, to check its ``LIKE``: 340–630 ms. A
word has no white space, so it is in a pod's text exactly where it is in the text without the phase
(the names, node and pool) or in the folded phase, the last part after a space. The trigram index is
now on the text without the phase (``PostgresDialect.POD_NAMES``: the same text, its last
``length(k8s_phase) + 1`` characters cut), and the live pods' phases have a B-tree index of their own:
their distinct values are read one seek each, and the pods of the phases that hold the word are counted
from that index alone (``PostgresDialect.live_pod_text_count``). Replaced, not added: each live pod
has one trigram index entry set as before, less the phase's trigrams, and one entry in the new B-tree.
An expression statistics object (PostgreSQL 14 and later, as 0021's) gives the planner the text
without the phase's histogram, which it does not take from a partial index.

SQLite: nothing (its count is read from ``pod_text``, 0023).
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_NAMES = "left(search_text, greatest(length(search_text) - length(k8s_phase) - 1, 0))"
POSTGRESQL_UP = (
    "CREATE INDEX ix_workload_pods_names_trgm ON workload_pods "
    f"USING gin (({_NAMES}) gin_trgm_ops) WHERE deleted_at IS NULL",
    "CREATE INDEX ix_workload_pods_live_phase ON workload_pods (k8s_phase) WHERE deleted_at IS NULL",
    "DROP INDEX IF EXISTS ix_workload_pods_search_trgm",
    # The planner keeps no statistics of a partial index's expression: without these it priced a
    # word by a fixed rule (a pod's own five hex digits at 1,600 pods of a million, where the
    # whole text's histogram said 100) and walked the creation order for its page.
    f"CREATE STATISTICS IF NOT EXISTS st_workload_pods_names ON ({_NAMES}) FROM workload_pods",
    # Statistics on the expression now, not when autovacuum comes by.
    "ANALYZE workload_pods",
)
POSTGRESQL_DOWN = (
    "CREATE INDEX ix_workload_pods_search_trgm ON workload_pods USING gin (search_text gin_trgm_ops) "
    "WHERE deleted_at IS NULL",
    "DROP STATISTICS IF EXISTS st_workload_pods_names",
    "DROP INDEX IF EXISTS ix_workload_pods_live_phase",
    "DROP INDEX IF EXISTS ix_workload_pods_names_trgm",
)


def _run(statements: tuple[str, ...]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _run(POSTGRESQL_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _run(POSTGRESQL_DOWN)
