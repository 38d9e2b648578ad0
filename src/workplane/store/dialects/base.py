"""What every database does the same way, and the operations whose SQL differs between them.

``SqlDialect`` is the one seam between the store and its database: a subclass per database
(``sqlite.SQLiteDialect``, ``postgresql.PostgresDialect``) holds that database's form of each
operation, and the one to use is chosen once, from the engine (``dialects.dialect_of``). Nothing
outside ``store.dialects`` asks which database it is on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.dml import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite.dml import Insert as SQLiteInsert

from workplane.settings import Settings
from workplane.store.schema import workloads

IN_LIST = 500  # keys per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
# The execution option that marks a write transaction (``Database.write``): SQLite takes its write
# lock when it begins.
WRITE_TRANSACTION = "workplane_write"

# The workload text a substring look-up searches: the name, or the folded search text.
TextColumn = Literal["name", "search_text"]
# A positive substring predicate: its column, the plain predicate on ``workloads`` (``lower(name) LIKE
# pattern`` or ``search_text LIKE pattern``), and the pattern.
SubstringPart = tuple[TextColumn, sa.ColumnElement[bool], str]
# SQL that follows a key look-up's WHERE clause, and the parameters it holds.
Tail = tuple[str, Sequence[Any]]

K = TypeVar("K")


def chunked(keys: Sequence[K], size: int = IN_LIST) -> Iterator[Sequence[K]]:
    """``keys`` in slices of at most ``size``: one ``IN (...)`` list each."""
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def escape_like(value: str) -> str:
    """``value`` as a ``LIKE`` pattern's literal text, escaped with a backslash."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlDialect:
    """One database's SQL. Stateless: one instance per database serves every engine."""

    name: ClassVar[str]
    # The DB-API parameter marker of statements given to the driver as they are.
    marker: ClassVar[str]
    # What a SELECT appends to lock the rows it reads until the transaction ends ("" where a write
    # transaction already excludes every other writer).
    row_lock: ClassVar[str]
    # Whether a page in creation order of the pods on a few values of a node, pool or cluster is read
    # as one walk per value, merged (``store.pods._merged_parts``), rather than from the ``IN`` list's
    # index and sorted (see the dialects).
    merges_value_walks: ClassVar[bool] = False
    # Whether an UPDATE rewrites the entries of every index that names a column in its SET list (or
    # in its condition), and runs the UPDATE OF triggers on them, whether the value changed or not
    # (SQLite); then a writer sets only the columns that changed. PostgreSQL compares the values.
    updates_follow_set_list: ClassVar[bool] = False

    # --- engine --------------------------------------------------------------------------------
    def create_engine(
        self, url: str, settings: Settings, *, background_checkpoints: bool, writer: bool = False
    ) -> sa.Engine:
        raise NotImplementedError

    def bounded_read(self, connection: sa.Connection, timeout_ms: int) -> AbstractContextManager[Any]:
        """The read transaction just begun on ``connection`` reads one snapshot, and within the
        block a statement of it stops after ``timeout_ms`` (0: no limit); the block's value stops
        the running statement from another thread."""
        raise NotImplementedError

    def checkpoint(self, engine: sa.Engine) -> None:
        """Copy what a write-ahead log holds into the database file, where the server does that itself."""

    def preparing(self, engine: sa.Engine) -> AbstractContextManager[None]:
        """Within the block, no other process prepares the store (migrations, seeding, the first
        administrator key): servers that start together on one database take turns. Nothing where one
        machine holds the database: the processes of one ``--workers N`` server prepare it once, in
        their parent, before they start."""
        return nullcontext()

    # --- inserts, updates, upserts -------------------------------------------------------------
    def insert(self, table: sa.Table) -> SQLiteInsert | PostgresInsert:
        """The database's INSERT construct, which has ON CONFLICT."""
        raise NotImplementedError

    def insert_ignore(self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            connection.execute(self.insert(table).on_conflict_do_nothing(), rows)

    def upsert(
        self,
        connection: sa.Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        update_columns: list[str],
    ) -> None:
        if not rows:
            return  # each database's statement is built from the first row
        if update_columns:
            self.upsert_rows(connection, table, rows, update_columns)
        else:
            self.insert_ignore(connection, table, rows)

    def upsert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], columns: list[str]
    ) -> None:
        """INSERT rows, or update ``columns`` of those whose primary key exists."""
        keys = [c.name for c in table.primary_key.columns]
        statement = self.insert(table)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=keys, set_={c: statement.excluded[c] for c in columns}
            ),
            rows,
        )

    def insert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], skip: bool
    ) -> None:
        raise NotImplementedError

    def update_rows(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: str
    ) -> None:
        raise NotImplementedError

    def add_on_conflict(
        self,
        connection: sa.Connection,
        table: sa.Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        key: str,
        sums: Sequence[str],
    ) -> None:
        """INSERT rows; where ``key`` exists, add their ``sums`` columns to the stored ones (counters)."""
        if not rows:
            return
        columns = list(rows[0])
        quote = connection.dialect.identifier_preparer.quote
        name = quote(table.name)
        added = ", ".join(f"{quote(c)} = {name}.{quote(c)} + excluded.{quote(c)}" for c in sums)
        connection.exec_driver_sql(
            f"INSERT INTO {name} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(self.marker for _ in columns)}) "
            f"ON CONFLICT ({quote(key)}) DO UPDATE SET {added}",
            [tuple(r[c] for c in columns) for r in rows],
        )

    # --- key look-ups --------------------------------------------------------------------------
    def select_where_key_in(
        self, connection: sa.Connection, head: str, key: str, keys: Sequence[Any], tail: Tail = ("", ())
    ) -> Sequence[Any]:
        """The rows of ``head WHERE key IN keys tail`` (``tail``: more SQL, and its parameters)."""
        raise NotImplementedError

    # --- the live-count rollups ----------------------------------------------------------------
    def deferred_triggers(self, connection: sa.Connection) -> AbstractContextManager[None]:
        """Within the block, this transaction's writes to workloads and their pools are not counted by
        the rollup triggers (nor put in a text index kept by a trigger): see ``store.rollups``."""
        raise NotImplementedError

    def gpu_micro(self, allocated_gpu: float | None) -> int:
        """Allocated GPUs in millionths, rounded as the database's ``round`` does in the triggers."""
        raise NotImplementedError

    # --- query planning ------------------------------------------------------------------------
    # What visiting a row on a walk along the id index costs, in rows of a sort's part looked up by
    # its own index and sorted (``store.ordering.parts_for``; not ``few_matches``, whose terms may
    # have no index to look their rows up by, as a ``!=`` has none).
    walk_cost = 1.0
    # Whether ``unindexed`` rules an index out (a planner without statistics, told which index not to
    # take); where it does not, a caller need not weigh which predicates to keep off their indexes.
    rules_out_indexes = False

    def unindexed(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``column`` in a form no index answers, for a predicate that holds on most rows of an
        ordered walk (``store.ordering``): the walk along the order's own index then beats looking
        the rows up by the predicate and sorting them all. Here the column itself: a planner with
        statistics sees that alone."""
        return column

    def reads_in_order(self, connection: sa.Connection, statement: sa.Select[Any]) -> bool | None:
        """Whether the database's plan for ``statement`` (ordered, with a LIMIT) reads its rows in
        that order along an index, stopping at the limit, rather than selecting them all and sorting
        them; None where the database does not tell. Asked where the plan rests on an estimate the
        store knows to be unreliable (``store.pods._searched_page``)."""
        return None

    def unordered(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """A number ``column`` in a form no index answers, on every database, whatever statistics
        say. As a sort key: for a selection that a walk along the key's index is known to find only
        far along it (``store.ordering.Walk``), where statistics that take the selected rows as
        spread evenly would still walk it. In a predicate: where the plan is known and statistics
        misjudge it, as they do a predicate correlated with another (a range in a bounded walk of
        the creation order, ``ranged_walk``; a clock's ``since < now`` beside its key's order,
        ``Compiler.clock_streams``): PostgreSQL takes them as independent and would intersect their
        indexes, or read every row of a set by the predicate's index and sort them. Here
        ``column + 0``."""
        return column + 0

    # --- text search ---------------------------------------------------------------------------
    def substrings(self, parts: Sequence[SubstringPart]) -> sa.ColumnElement[bool]:
        """All of ``parts`` at once, as the database answers them best: here the plain predicates."""
        return sa.and_(*(plain for _column, plain, _pattern in parts))

    def narrowing(
        self, connection: sa.Connection, lookups: Sequence[tuple[TextColumn, str]]
    ) -> sa.ColumnElement[bool] | None:
        """A clause keeping only the workloads that a text index says can contain every needle of
        ``lookups`` (column, folded needle), or None where no index narrows them before the query."""
        return None

    def text_candidates(self, connection: sa.Connection, column: TextColumn, needle: str) -> set[int] | None:
        """Row ids whose ``column`` contains ``needle`` (case-insensitively) from a text index asked
        before the query, or None when it cannot narrow the search."""
        return None

    def pod_narrowing(self, connection: sa.Connection, words: Sequence[str]) -> sa.ColumnElement[bool] | None:
        """A clause keeping only the pods that a text index says can contain every one of ``words``
        (folded) in their search text, or None where no index narrows them before the query."""
        return None

    def pod_words_look_up(
        self, connection: sa.Connection, statement: sa.Select[Any], words: Sequence[str]
    ) -> sa.Select[Any] | None:
        """``statement`` (over ``workload_pods``, with the predicates of ``words``) made to read the pods
        whose search text may hold every one of ``words`` (folded) from a text index, however many
        they are, for a page that reads them all and sorts them (``store.pods._searched_page``); the
        words' own predicates still decide each pod. Here as it is: the planner looks them up by
        those predicates itself. None where no index holds them."""
        return statement

    def live_pod_words(
        self, connection: sa.Connection, words: Sequence[str]
    ) -> list[sa.ColumnElement[bool]] | None:
        """Search words over live pods, a clause each, phrased as this database's text index answers
        them and holding on exactly the pods ``pod_compile.search_words`` selects; None where those
        serve."""
        return None

    def workload_ids(self, pattern: str) -> sa.Select[Any]:
        """The ids of the stored workloads whose id, folded, is ``LIKE pattern`` (escaped with a
        backslash; ``store.pods._workload_ids``): the filter's own predicate. Here on the workloads'
        ids, read from their primary key's index."""
        return sa.select(workloads.c.id).where(sa.func.lower(workloads.c.id).like(pattern, escape="\\"))

    def live_pod_text_count(
        self, connection: sa.Connection, words: Sequence[str]
    ) -> sa.ScalarSelect[int] | None:
        """The number of live pods whose search text holds every one of ``words`` (folded), counted
        from a text index without reading the pods' texts, exactly as the pods' own predicate would
        count them; None where no index counts them so."""
        return None

    def estimated_rows(self, connection: sa.Connection, table: sa.Table) -> int | None:
        """About how many rows ``table`` holds, deleted ones included, read in constant time (a scale
        for a plan's choice, not a count); None where the database cannot tell."""
        return None

    def last_rowid(self, connection: sa.Connection, table: sa.Table) -> int | None:
        """The highest row id of ``table`` (``workloads`` or ``workload_pods``) where new rows are
        indexed by their writer (``index_rows_after``); None where triggers index them."""
        return None

    def index_rows_after(self, connection: sa.Connection, table: sa.Table, after: int | None) -> None:
        """Put the rows of ``table`` inserted after row id ``after`` in its text index (see
        ``last_rowid``)."""
