"""SQLite: the pods' FTS5 table ``pod_text`` (0015) with a case-sensitive trigram tokenizer

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07

A count of the live pods with a search word is read from ``pod_text`` alone
(``SQLiteDialect.live_pod_text_count``) instead of from every live pod's text (``succeeded``, in a tenth
of the pods: 157 ms at a million pods). That count has no predicate on the texts after it, so the
index must match exactly what ``LIKE`` does. The texts and the words are stored and asked folded
(``domain.text.fold``: ASCII letters only), and SQLite's ``LIKE`` ignores the case of ASCII letters
only; the default trigram tokenizer folds every letter with a case (``É`` matched ``é``), so it
found a superset, fine for candidates checked again but not for a count. Case-sensitive, a phrase
matches where the folded word occurs in the folded text: the pods ``LIKE`` selects. The table is
rebuilt from the pods' texts (external content); its triggers name it and stay.

PostgreSQL: nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _pod_text(tokenizer: str) -> tuple[str, ...]:
    return (
        "DROP TABLE pod_text",
        "CREATE VIRTUAL TABLE pod_text USING fts5("
        f"search_text, content='workload_pods', content_rowid='rowid', tokenize='{tokenizer}')",
        "INSERT INTO pod_text(pod_text) VALUES ('rebuild')",
    )


def _run(statements: tuple[str, ...]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(_pod_text("trigram case_sensitive 1"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(_pod_text("trigram"))
