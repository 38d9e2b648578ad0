"""Text comparison rules shared by the store (the stored search haystack) and the query layer."""

from __future__ import annotations

# Case-insensitive matching folds ASCII letters only. That is exactly what SQL lower() does on both
# databases (SQLite's built-in lower(); PostgreSQL's lower() under the "C" collation of the text
# columns), so Python and SQL agree and SQLite and PostgreSQL give the same answers.
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    """The case folding of ``=@ !@ =^ =$`` and ``search``: A-Z to a-z, nothing else."""
    return text.translate(_ASCII_FOLD)
