"""Substring look-ups through the trigram index, where it pays (SQLite).

A selective substring (``name=@3e8a9``, a rare search word) is answered from the FTS5 trigram table in
well under a millisecond, where the plain ``LIKE`` walks every live row (seconds at a million rows).
A broad one (``pytorch``, matching most rows) is the opposite: walking the sort index and stopping
after one page is cheapest. So the index is asked for at most ``CAP + 1`` matches; if it has more, the
caller falls back to the plain predicate. Either way the plain predicate stays in the query, so the
index only narrows the candidates and never changes a result.

PostgreSQL needs none of this: its pg_trgm GIN indexes sit under the very expressions the filters use,
and its planner weighs the two plans by itself (``candidates`` returns None there).
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

CAP = 5_000
MIN_LENGTH = 3  # trigrams: a shorter needle has no trigram to look up

Column = Literal["name", "search_text"]

_MATCH = sa.text("SELECT rowid FROM workload_text WHERE workload_text MATCH :query LIMIT :limit")


def candidates(connection: sa.Connection, column: Column, needle: str) -> set[int] | None:
    """Row ids whose ``column`` contains ``needle`` (case-insensitively), or None when the index
    cannot narrow the search: not SQLite, a needle under three characters, or more than CAP matches."""
    if connection.dialect.name != "sqlite" or len(needle) < MIN_LENGTH:
        return None
    # An FTS5 phrase: the trigram tokenizer matches it as a substring; quotes are doubled inside.
    query = f'{column} : "{needle.replace(chr(34), chr(34) * 2)}"'
    found = connection.execute(_MATCH, {"query": query, "limit": CAP + 1}).scalars().all()
    if len(found) > CAP:
        return None
    return set(found)


_INDEX_AFTER = sa.text(
    "INSERT INTO workload_text (rowid, name, search_text) "
    "SELECT rowid, name, search_text FROM workloads WHERE rowid > :after"
)


def last_rowid(connection: sa.Connection) -> int | None:
    """The highest row id of ``workloads`` (SQLite), to index the rows inserted after it; None elsewhere."""
    if connection.dialect.name != "sqlite":
        return None
    return int(connection.execute(sa.text("SELECT coalesce(max(rowid), 0) FROM workloads")).scalar_one())


def index_rows_after(connection: sa.Connection, after: int | None) -> None:
    """Put the workloads inserted after row id ``after`` in the text index, in one statement, for a
    writer that deferred the insert trigger (``rollups.deferred_triggers``): 10–20 µs a row instead of
    the trigger's ~100. Exact within the writer's transaction: SQLite gives a new row the highest row
    id plus one (it picks an unused lower one only once the highest possible id is taken)."""
    if after is not None:
        connection.execute(_INDEX_AFTER, {"after": after})
