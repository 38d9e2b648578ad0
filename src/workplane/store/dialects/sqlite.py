"""SQLite: the embedded default. Its set-up (every PRAGMA with its reason), its write lock, and its
FTS5 trigram index.

Text search: an FTS5 trigram table, ``workload_text`` (migration 0004). A selective substring
(``name=@3e8a9``, a rare search word) is answered from it in well under a millisecond, where the plain
``LIKE`` walks every live row (seconds at a million rows). A broad one (``pytorch``, matching most
rows) is the opposite: walking the sort index and stopping after one page is cheapest. So the index is
asked for at most ``CAP + 1`` matches before the query; if it has more, the query keeps the plain
predicate alone. Either way the plain predicate stays in the query, so the index only narrows the
candidates and never changes a result.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite.dml import Insert
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from workplane.files import private_sqlite_file
from workplane.settings import Settings
from workplane.store.dialects.base import WRITE_TRANSACTION, SqlDialect, Tail, TextColumn, chunked
from workplane.store.schema import triggers_deferred, workload_pods, workloads

_LOCK_POLL_S = 0.001  # how often a writer tries again for SQLite's write lock
_READER_CACHE_MIB = 16  # page cache of each of the server process's own connections

CAP = 5_000  # the most index matches a look-up takes before it falls back to the plain predicate
MIN_LENGTH = 3  # trigrams: a shorter needle has no trigram to look up

_MATCH = sa.text("SELECT rowid FROM workload_text WHERE workload_text MATCH :query LIMIT :limit")
_POD_MATCH = sa.text("SELECT rowid FROM pod_text WHERE pod_text MATCH :query LIMIT :limit")
# Per table whose FTS5 text index its writer may keep (migrations 0009, 0018): the statement that
# indexes the rows inserted after a row id.
_INDEX_AFTER = {
    "workloads": sa.text(
        "INSERT INTO workload_text (rowid, name, search_text) "
        "SELECT rowid, name, search_text FROM workloads WHERE rowid > :after"
    ),
    "workload_pods": sa.text(
        "INSERT INTO pod_text (rowid, search_text) "
        "SELECT rowid, search_text FROM workload_pods WHERE rowid > :after"
    ),
}
# SQLite's row id of a workload (of a pod), which the FTS5 table ``workload_text`` (``pod_text``)
# refers to.
_ROWID: sa.ColumnElement[int] = sa.literal_column("workloads.rowid")
_POD_ROWID: sa.ColumnElement[int] = sa.literal_column("workload_pods.rowid")
_POD_TEXT = sa.table("pod_text", sa.column("rowid"))


class SQLiteDialect(SqlDialect):
    name = "sqlite"
    marker = "?"
    row_lock = ""  # the write transaction (BEGIN IMMEDIATE) already excludes every other writer
    # SQLite reads the ``IN`` list's index entries alone, in C: 0.4 ms for ten nodes' 19,000 at a
    # million pods, where building and running the merged walks' statement took 2.3 ms.
    merges_value_walks = False
    # A walk along the id index (a TEXT primary key: its own index) finds each row in the table by
    # its rowid, about 5 µs a row at 1M; a look-up by a covering index and the sort of its ids, about
    # 0.2 µs a row (measured on the benchmark's departments, 21,000–80,000 rows each).
    walk_cost = 25.0
    rules_out_indexes = True
    updates_follow_set_list = True

    # --- engine --------------------------------------------------------------------------------
    def create_engine(
        self, url: str, settings: Settings, *, background_checkpoints: bool, writer: bool = False
    ) -> sa.Engine:
        """``background_checkpoints``: no connection checkpoints when it commits; the owner calls
        ``checkpoint`` periodically instead (the server does). ``writer``: the engine of a sync worker
        process, whose connections get ``settings.sqlite_writer_cache_mib`` of page cache."""
        db_path = sa.make_url(url).database
        if db_path and db_path != ":memory:":
            private_sqlite_file(Path(db_path))
        engine = sa.create_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            connect_args={"check_same_thread": False, "timeout": settings.db_busy_timeout_ms / 1000},
        )
        cache_mib = settings.sqlite_writer_cache_mib if writer else _READER_CACHE_MIB
        on_connect = _on_connect(
            settings.db_busy_timeout_ms, background_checkpoints=background_checkpoints, cache_mib=cache_mib
        )
        sa.event.listen(engine, "connect", on_connect)
        sa.event.listen(engine, "begin", _on_begin(settings.db_busy_timeout_ms))
        return engine

    @contextmanager
    def bounded_read(self, connection: sa.Connection, timeout_ms: int) -> Iterator[Any]:
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        if not timeout_ms:
            yield raw.interrupt
            return
        deadline = time.monotonic() + timeout_ms / 1000
        # Called every 10,000 virtual-machine steps (well under a millisecond); a non-zero answer
        # aborts the statement with "interrupted".
        raw.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            yield raw.interrupt
        finally:
            raw.set_progress_handler(None, 0)

    def checkpoint(self, engine: sa.Engine) -> None:
        """Copy what the write-ahead log holds into the database file, without waiting for readers or
        writers (PASSIVE: what a reader still needs stays for the next round)."""
        # The driver's own connection: SQLAlchemy would open a transaction first, in which SQLite
        # cannot checkpoint.
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
        finally:
            raw.close()

    # --- inserts, updates ----------------------------------------------------------------------
    def insert(self, table: sa.Table) -> Insert:
        return sqlite.insert(table)

    def insert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], skip: bool
    ) -> None:
        names = list(rows[0])
        quote = connection.dialect.identifier_preparer.quote
        conflict = " ON CONFLICT DO NOTHING" if skip else ""
        connection.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}){conflict}",
            [tuple(r[c] for c in names) for r in rows],
        )

    def upsert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], columns: list[str]
    ) -> None:
        """As ``insert_rows``, the statement goes to the driver as it is: SQLAlchemy's per-row
        parameter processing was a tenth of a sync batch's pod upsert."""
        names = list(rows[0])
        quote = connection.dialect.identifier_preparer.quote
        keys = ", ".join(quote(c.name) for c in table.primary_key.columns)
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns)
        connection.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT ({keys}) DO UPDATE SET {updates}",
            [tuple(r[c] for c in names) for r in rows],
        )

    def update_rows(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: str
    ) -> None:
        """One prepared statement run once per row, which is what SQLite does best (it has no
        statement-level triggers, and a row costs it microseconds), given to the driver as it is."""
        columns = [c for c in rows[0] if c != key]
        quote = connection.dialect.identifier_preparer.quote
        assignments = ", ".join(f"{quote(c)} = ?" for c in columns)
        connection.exec_driver_sql(
            f"UPDATE {quote(table.name)} SET {assignments} WHERE {quote(key)} = ?",
            [(*(r[c] for c in columns), r[key]) for r in rows],
        )

    def select_where_key_in(
        self, connection: sa.Connection, head: str, key: str, keys: Sequence[Any], tail: Tail = ("", ())
    ) -> Sequence[Any]:
        """An ``IN (...)`` list per few hundred keys, well under SQLite's parameter limit."""
        quoted = connection.dialect.identifier_preparer.quote(key)
        found: list[Any] = []
        for part in chunked(keys):
            listed = ", ".join("?" for _ in part)
            result = connection.exec_driver_sql(
                f"{head} WHERE {quoted} IN ({listed}){tail[0]}", (*part, *tail[1])
            )
            found.extend(result.cursor.fetchall())
            result.close()
        return found

    # --- the live-count rollups ----------------------------------------------------------------
    @contextmanager
    def deferred_triggers(self, connection: sa.Connection) -> Iterator[None]:
        # The triggers of migration 0009 (and the text index's insert trigger) look for this row.
        connection.execute(triggers_deferred.insert().values(id=1))
        yield
        connection.execute(triggers_deferred.delete())

    def gpu_micro(self, allocated_gpu: float | None) -> int:
        """SQLite's ``round`` takes halves away from zero."""
        scaled = (allocated_gpu or 0.0) * 1_000_000
        return math.trunc(scaled + (0.5 if scaled >= 0 else -0.5))

    # --- text search ---------------------------------------------------------------------------
    def unindexed(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # SQLite keeps no statistics here (the server never runs ANALYZE) and takes any equality on
        # an indexed column as selective; a unary ``+`` is its documented way to rule the index out.
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)

    def unordered(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.unindexed(column)

    def reads_in_order(self, connection: sa.Connection, statement: sa.Select[Any]) -> bool | None:
        """From ``EXPLAIN QUERY PLAN``: an index of the pods walked from its start (``SCAN``) and no
        temporary B-tree sorting the rows. Not a range of an index (``SEARCH``: a term's own pods in
        creation order, ``nodeName==`` on its live index), which bounds the walk by itself, however
        broad the word. Asked for the words too broad for ``pod_narrowing`` (with candidates, the plan
        looks them up and sorts them), which SQLite, keeping no statistics, walks whatever the
        word."""
        compiled = statement.compile(connection, compile_kwargs={"render_postcompile": True})
        positional = tuple(compiled.params[name] for name in compiled.positiontup or ())
        plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional)]
        sorted_ = any("TEMP B-TREE FOR" in detail and "ORDER BY" in detail for detail in plan)
        # "SCAN TABLE workload_pods" before SQLite 3.36.
        walked = ("SCAN workload_pods USING", "SCAN TABLE workload_pods USING")
        return not sorted_ and any(detail.startswith(walked) for detail in plan)

    def narrowing(
        self, connection: sa.Connection, lookups: Sequence[tuple[TextColumn, str]]
    ) -> sa.ColumnElement[bool] | None:
        found = [self.text_candidates(connection, column, needle) for column, needle in lookups]
        return _narrowed(_ROWID, found)

    def text_candidates(self, connection: sa.Connection, column: TextColumn, needle: str) -> set[int] | None:
        """None for a needle under three characters or one with more than ``CAP`` matches."""
        return _candidates(connection, _MATCH, column, needle)

    def pod_narrowing(self, connection: sa.Connection, words: Sequence[str]) -> sa.ColumnElement[bool] | None:
        """From ``pod_text`` (migration 0015), as ``narrowing`` for the workloads."""
        found = [_candidates(connection, _POD_MATCH, "search_text", word) for word in words]
        return _narrowed(_POD_ROWID, found)

    def pod_words_look_up(
        self, connection: sa.Connection, statement: sa.Select[Any], words: Sequence[str]
    ) -> sa.Select[Any] | None:
        """Joined to the row ids ``pod_text`` holds the rarest trigram of the words in, and the next
        where it pays (``_rarest_trigrams``), without ``pod_narrowing``'s cap: FTS5 gives them in row
        id order and each pod is looked up by its row id, where an ``IN`` of the same subquery first
        copied the row ids into a temporary index; the words' ``LIKE`` decides each pod. Trigrams,
        not the words' phrases: a phrase reads the posting list of every trigram in it, and those of
        a broad word are in nearly every pod (``tra``, ``rai``, ``ain`` of ``train-00``: its phrase's
        50,000 pods took 19 ms to find at 200,000 pods, its trigram ``-00``'s 53,260 took 1.8 ms),
        while a pod costs as much to read either way (decision 0021). None where every word is
        shorter than a trigram."""
        rarest = _rarest_trigrams(connection, [word for word in words if len(word) >= MIN_LENGTH])
        if not rarest:
            return None
        matched = sa.text("pod_text MATCH :rarest_trigrams").bindparams(
            rarest_trigrams=" AND ".join(_phrase("search_text", trigram) for trigram in rarest)
        )
        return statement.join_from(_POD_TEXT, workload_pods, _POD_TEXT.c.rowid == _POD_ROWID).where(matched)

    def workload_ids(self, pattern: str) -> sa.Select[Any]:
        """The same ids without ``lower()``: SQLite's ``LIKE`` ignores the case of ASCII letters only,
        and its ``lower()`` folds only those, so ``id LIKE p`` holds exactly where ``lower(id) LIKE p``
        does; and a call of ``lower()`` a row was most of reading every id (16 → 4.7 ms at 40,000
        workloads)."""
        return sa.select(workloads.c.id).where(workloads.c.id.like(pattern, escape="\\"))

    def live_pod_text_count(
        self, connection: sa.Connection, words: Sequence[str]
    ) -> sa.ScalarSelect[int] | None:
        """From ``pod_text``'s posting lists, less the deleted pods' row ids (a few percent of the
        pods, read from their own index alone): ``succeeded``, in a tenth of the pods, took 10 ms so at
        200,000 pods, where reading the live pods' texts took 33. Exact: the tokenizer is
        case-sensitive (migration 0023), so a phrase matches where the folded word occurs in the
        folded text, as ``LIKE`` does on them (both fold ASCII letters only). None for a word under
        three characters, which has no trigram."""
        if not words or any(len(word) < MIN_LENGTH for word in words):
            return None
        phrases = " AND ".join(_phrase("search_text", word) for word in words)
        deleted = sa.select(_POD_ROWID).where(workload_pods.c.deleted_at.is_not(None))
        return (
            sa.select(sa.func.count())
            .select_from(sa.table("pod_text"))
            .where(sa.text("pod_text MATCH :phrases").bindparams(phrases=phrases))
            # NOT IN, not IN: FTS5 would take IN as one row id look-up of its own per deleted pod.
            .where(sa.literal_column("pod_text.rowid").not_in(deleted))
            .scalar_subquery()
        )

    def estimated_rows(self, connection: sa.Connection, table: sa.Table) -> int | None:
        # Row ids are handed out in order (``index_rows_after``): the highest is about the rows ever
        # inserted, one seek at the end of the table's B-tree.
        return self.last_rowid(connection, table)

    def last_rowid(self, connection: sa.Connection, table: sa.Table) -> int | None:
        quoted = connection.dialect.identifier_preparer.quote(table.name)
        return int(connection.exec_driver_sql(f"SELECT coalesce(max(rowid), 0) FROM {quoted}").scalar_one())

    def index_rows_after(self, connection: sa.Connection, table: sa.Table, after: int | None) -> None:
        """In one statement, for a writer that deferred the insert trigger (``deferred_triggers``):
        10–20 µs a row instead of the trigger's ~100. Exact within the writer's transaction: SQLite
        gives a new row the highest row id plus one (it picks an unused lower one only once the highest
        possible id is taken)."""
        if after is not None:
            connection.execute(_INDEX_AFTER[table.name], {"after": after})


def _candidates(connection: sa.Connection, match: sa.TextClause, column: str, needle: str) -> set[int] | None:
    """The row ids an FTS5 trigram table (``match``) finds ``needle`` in ``column`` of; None for a
    needle under three characters or one with more than ``CAP`` matches."""
    if len(needle) < MIN_LENGTH:
        return None
    found = connection.execute(match, {"query": _phrase(column, needle), "limit": CAP + 1}).scalars().all()
    if len(found) > CAP:
        return None
    return set(found)


# A trigram's share of the pods is sampled in this many windows of row ids spread over the table, of
# this many row ids each (``_rarest_trigrams``): one FTS5 seek and at most that many entries of its
# posting list a window, some tens of µs.
_WINDOWS = 4
_WINDOW_ROWS = 256
_MOST_TRIGRAMS = 16  # of one word, sampled: a longer word's are taken evenly along it
_READ_COST = 100  # a pod read by its row id, in entries of a posting list read


def _rarest_trigrams(connection: sa.Connection, words: Sequence[str]) -> list[str]:
    """Of the trigrams of ``words`` (each three characters or more), the one in the fewest pods of a
    sample of ``pod_text`` (``_WINDOWS`` windows of row ids), and the next where it pays: their pods
    hold them, so those of the words are among them. Empty without words."""
    trigrams: list[str] = []
    for word in words:
        own = list(dict.fromkeys(word[i : i + 3] for i in range(len(word) - 2)))
        step = max(1, math.ceil(len(own) / _MOST_TRIGRAMS))
        trigrams.extend(t for t in own[::step] if t not in trigrams)
    if len(trigrams) <= 1:
        return trigrams
    # The pods' row ids are pod_text's (one seek at the end of the table's B-tree; pod_text, an
    # external content table, would read every row for it).
    top = int(connection.exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM workload_pods").scalar_one())
    # Windows apart, or one over the whole table where they would overlap (each pod counted once).
    starts = [top * n // _WINDOWS for n in range(_WINDOWS)] if top > _WINDOWS * _WINDOW_ROWS else [0]
    reach = _WINDOW_ROWS if len(starts) > 1 else max(top, 1)
    counted = "(SELECT count(*) FROM pod_text WHERE pod_text MATCH ? AND rowid BETWEEN ? AND ?)"
    sums = ", ".join(" + ".join(counted for _ in starts) for _ in trigrams)
    params = [
        value
        for trigram in trigrams
        for start in starts
        for value in (_phrase("search_text", trigram), start + 1, start + reach)
    ]
    found = connection.exec_driver_sql(f"SELECT {sums}", tuple(params)).one()
    first, second = sorted(range(len(trigrams)), key=found.__getitem__)[:2]
    fewest, next_fewest = found[first], found[second]
    sampled = len(starts) * reach
    # The next rarest too where the pods it leaves out (its pods taken as independent of the first's)
    # cost more to read than its posting list: ``-00 AND n-0`` for ``train-00`` at a million pods,
    # 59,826 pods instead of 70,763 for 4 ms more of FTS5 (a pod read is about a hundred entries).
    if fewest * (sampled - next_fewest) * _READ_COST > next_fewest * sampled:
        return [trigrams[first], trigrams[second]]
    return [trigrams[first]]


def _phrase(column: str, needle: str) -> str:
    """An FTS5 phrase on ``column``: the trigram tokenizer matches it as a substring; quotes are
    doubled inside."""
    return f'{column} : "{needle.replace(chr(34), chr(34) * 2)}"'


def _narrowed(
    rowid: sa.ColumnElement[int], found: Sequence[set[int] | None]
) -> sa.ColumnElement[bool] | None:
    """The rows every look-up that narrowed (not None) found; None when none narrowed."""
    narrowed: set[int] | None = None
    for rows in found:
        if rows is not None:
            narrowed = rows if narrowed is None else narrowed & rows
    if narrowed is None:
        return None
    return rowid.in_(sorted(narrowed)) if narrowed else sa.false()


def _on_connect(busy_timeout_ms: int, *, background_checkpoints: bool, cache_mib: int) -> Any:
    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module, which would otherwise open
        # transactions lazily on the first DML and leave reads outside any snapshot; the "begin"
        # listener below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer nor each other, which is what a read-mostly API needs.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode and saves an fsync per commit;
        # only an OS crash or power loss can lose the last transactions.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Wait for a competing writer instead of failing at once; past this the API answers 503.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A bounded page cache per connection (16 MiB for the server's own connections), and no
        # memory-mapped I/O: the operating system's page cache already keeps the hot indexes in
        # memory, and mapped pages would count towards the server's resident memory (a million
        # workloads is ~3 GB of database).
        cursor.execute(f"PRAGMA cache_size={-1024 * int(cache_mib)}")
        cursor.execute("PRAGMA mmap_size=0")
        cursor.execute("PRAGMA temp_store=MEMORY")
        # Copying the log into the database file is done by ``checkpoint`` from a thread of its own
        # when the server runs one: a writer that does it at commit stalls every writer behind it
        # (a third of a sync batch's SQL time, measured). Otherwise every 64 MiB of log, not every 4 MiB:
        # large sync batches would pay for a checkpoint on nearly every commit.
        cursor.execute(f"PRAGMA wal_autocheckpoint={0 if background_checkpoints else 16384}")
        # The log file shrinks back to 64 MiB when it starts over, after a burst of writes.
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()

    return on_connect


def _on_begin(busy_timeout_ms: int) -> Any:
    def on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(WRITE_TRANSACTION, False):
            _begin_immediate(connection, busy_timeout_ms)
        else:
            connection.exec_driver_sql("BEGIN")

    return on_begin


def _begin_immediate(connection: sa.Connection, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting for another writer by trying again every millisecond. SQLite's own
    busy handler sleeps in growing steps of up to 100 ms, so the lock could sit unused while the
    waiter slept on: with sync batches written by two processes, 9,600 → 10,300–11,000 observations/s
    (docs/decisions/0011-sync-worker-processes.md)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise sa.exc.OperationalError("BEGIN IMMEDIATE", (), exc) from exc
                time.sleep(_LOCK_POLL_S)
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
