"""Substring look-ups through the trigram indexes: the one place where SQLite and PostgreSQL differ in
how ``name`` substrings and ``search`` words reach an index.

SQLite: an FTS5 trigram table (migration 0004). A selective substring (``name=@3e8a9``, a rare search
word) is answered from it in well under a millisecond, where the plain ``LIKE`` walks every live row
(seconds at a million rows). A broad one (``pytorch``, matching most rows) is the opposite: walking the
sort index and stopping after one page is cheapest. So the index is asked for at most ``CAP + 1``
matches; if it has more, the caller falls back to the plain predicate. Either way the plain predicate
stays in the query, so the index only narrows the candidates and never changes a result.

PostgreSQL: the text and its pg_trgm GIN indexes live in ``workload_search``, one row per workload,
kept in step by triggers (migration 0010; off ``workloads`` so that a phase change, which cannot be a
HOT update, does not add two GIN entries per row). ``substring`` renders the predicate as an EXISTS on
that table, the same LIKE on the same text, so the planner weighs the trigram index against walking
the sort index by itself (``candidates`` returns None there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType

from workplane.store.schema import workloads

CAP = 5_000
MIN_LENGTH = 3  # trigrams: a shorter needle has no trigram to look up

Column = Literal["name", "search_text"]

_MATCH = sa.text("SELECT rowid FROM workload_text WHERE workload_text MATCH :query LIMIT :limit")

# PostgreSQL only (migration 0010), so not part of ``schema.metadata``, which both databases hold.
# ``name_lower`` is ``lower(name)``; ``search_text`` is stored folded already.
workload_search = sa.table(
    "workload_search",
    sa.column("workload_id", sa.String),
    sa.column("name_lower", sa.Text),
    sa.column("search_text", sa.Text),
)
_INDEXED: dict[Column, sa.ColumnClause[Any]] = {
    "name": workload_search.c.name_lower,
    "search_text": workload_search.c.search_text,
}


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


class _Substring(sa.ColumnElement[bool]):
    """A positive LIKE on a workload's name or search text, rendered per database (below)."""

    inherit_cache = True
    # Both forms take part in the statement cache key, so each keeps its own bound pattern. (SQLAlchemy
    # declares this a plain attribute and reads it from the class.)
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012
        ("plain", InternalTraversal.dp_clauseelement),
        ("indexed", InternalTraversal.dp_clauseelement),
    ]
    type = sa.Boolean()

    def __init__(self, plain: sa.ColumnElement[bool], indexed: sa.ColumnElement[bool]) -> None:
        self.plain = plain
        self.indexed = indexed

    def self_group(self, against: OperatorType | None = None) -> sa.ColumnElement[bool]:
        # Already a predicate (a LIKE, an EXISTS): without this, SQLAlchemy would compare a Boolean
        # expression with true in a WHERE clause (``... = 1`` on SQLite).
        return self


@compiles(_Substring)
def _render_plain(element: _Substring, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.plain, **kw)


@compiles(_Substring, "postgresql")
def _render_indexed(element: _Substring, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.indexed, **kw)


def substring(column: Column, plain: sa.ColumnElement[bool], pattern: str) -> sa.ColumnElement[bool]:
    """``plain`` — ``lower(workloads.name) LIKE pattern`` or ``workloads.search_text LIKE pattern``,
    the query layer's predicate — as each database answers it best: unchanged on SQLite (whose FTS5
    narrowing is ``candidates``), as the same LIKE on ``workload_search`` on PostgreSQL.

    EXISTS rather than IN: both become a semi-join under AND, but under OR (a search word also
    matches categories and phases) an uncorrelated IN is a subplan that hashes every matching id —
    or, past ``work_mem``, rescans them per row — where EXISTS probes the side table's primary key.
    """
    return substrings([(column, plain, pattern)])


def substrings(parts: Sequence[tuple[Column, sa.ColumnElement[bool], str]]) -> sa.ColumnElement[bool]:
    """All of ``parts`` (each as ``substring`` takes it) at once: on PostgreSQL one EXISTS holding
    every LIKE. One EXISTS per part would be one semi-join each, and the planner weighs join orders
    among them: 2.3 s of planning for 32 filter terms and search words on 20,000 rows, growing faster
    than linearly with the terms, where one EXISTS plans in milliseconds whatever their number."""
    indexed = (
        sa.exists()
        .where(workload_search.c.workload_id == workloads.c.id)
        .where(*(_INDEXED[column].like(pattern, escape="\\") for column, _plain, pattern in parts))
    )
    return _Substring(sa.and_(*(plain for _column, plain, _pattern in parts)), indexed)
