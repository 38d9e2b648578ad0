"""Engine set-up per dialect: the one place that knows SQLite from PostgreSQL.

``Database.read()`` and ``Database.write()`` hand out a connection inside a transaction; data
functions take that connection and never commit. Everything dialect-specific the rest of the code
needs (upserts, case folding in LIKE) is a function of this module.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from workplane.files import private_sqlite_file
from workplane.settings import Settings

_IMMEDIATE = "workplane_immediate"
_IN_LIST = 500  # keys per SQLite IN (...) list
_LOCK_POLL_S = 0.001  # how often a writer tries again for SQLite's write lock


class QueryCancel:
    """Lets another thread stop the read a request is running: the server's edge calls ``cancel`` when
    the client disconnects (``api.edge.CancelOnDisconnect``), so an abandoned query stops using a
    database core at once instead of running to its timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop: Callable[[], None] | None = None
        self.cancelled = False

    def attach(self, stop: Callable[[], None]) -> None:
        """Route a later ``cancel`` to ``stop``; a read whose request is already cancelled does not
        start (neither database can interrupt a statement before it runs)."""
        with self._lock:
            if self.cancelled:
                raise sa.exc.OperationalError("read not started", None, _CancelledBeforeStart())
            self._stop = stop

    def detach(self) -> None:
        with self._lock:
            self._stop = None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            stop = self._stop
        if stop is not None:
            stop()


class _CancelledBeforeStart(Exception):
    sqlstate = "57014"  # what PostgreSQL reports for a cancelled statement: ``is_cancelled_query``


# The current request's cancel handle; set by the HTTP edge, read by ``Database.read`` in whatever
# thread the request's reads run (contextvars follow ``run_in_threadpool``).
CURRENT_CANCEL: ContextVar[QueryCancel | None] = ContextVar("workplane_query_cancel", default=None)


def is_cancelled_query(exc: BaseException) -> bool:
    """Whether a driver error is a read stopped by ``query_timeout_ms`` or by a cancel: PostgreSQL's
    query_canceled (57014), SQLite's "interrupted"."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == "57014":
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig) == "interrupted"


class Database:
    def __init__(self, engine: sa.Engine, query_timeout_ms: int = 0) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.query_timeout_ms = query_timeout_ms

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction: list and count in one request see the same snapshot. It runs for at
        most ``query_timeout_ms`` (then the driver raises what ``is_cancelled_query`` recognises), and
        stops early when the request's ``QueryCancel`` fires."""
        with self.engine.connect() as connection, connection.begin():
            raw = connection.connection.driver_connection
            assert raw is not None
            cancel = CURRENT_CANCEL.get()
            if self.is_sqlite:
                assert isinstance(raw, sqlite3.Connection)
                stop = raw.interrupt
                if self.query_timeout_ms:
                    deadline = time.monotonic() + self.query_timeout_ms / 1000
                    # Called every 10,000 virtual-machine steps (well under a millisecond); a non-zero
                    # answer aborts the statement with "interrupted".
                    raw.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            else:
                stop = raw.cancel_safe
                if self.query_timeout_ms:
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.query_timeout_ms)}")
            if cancel is not None:
                cancel.attach(stop)
            try:
                yield connection
            finally:
                if cancel is not None:
                    cancel.detach()
                if self.is_sqlite and self.query_timeout_ms:
                    raw.set_progress_handler(None, 0)

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction, committed on success. On SQLite it takes the write lock up front
        (BEGIN IMMEDIATE): a deferred transaction that upgrades to writing can fail with SQLITE_BUSY
        without waiting for busy_timeout, which would turn contention into an error."""
        with (
            self.engine.connect().execution_options(**{_IMMEDIATE: True}) as connection,
            connection.begin(),
        ):
            yield connection

    def checkpoint(self) -> None:
        """SQLite: copy what the write-ahead log holds into the database file, without waiting for
        readers or writers (PASSIVE: what a reader still needs stays for the next round)."""
        if self.is_sqlite:
            # The driver's own connection: SQLAlchemy would open a transaction first, in which SQLite
            # cannot checkpoint.
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            finally:
                raw.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_on_connect(busy_timeout_ms: int, *, background_checkpoints: bool) -> Any:
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
        # 16 MiB of page cache per connection, and no memory-mapped I/O: the operating system's page
        # cache already keeps the hot indexes in memory, and mapped pages would count towards the
        # server's resident memory (a million workloads is ~3 GB of database).
        cursor.execute("PRAGMA cache_size=-16384")
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


def _sqlite_on_begin(busy_timeout_ms: int) -> Any:
    def on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(_IMMEDIATE, False):
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


def create_database(
    settings: Settings, url: str | None = None, *, background_checkpoints: bool = False
) -> Database:
    """The store's engine. ``background_checkpoints`` (SQLite): no connection checkpoints when it
    commits; the owner calls ``Database.checkpoint`` periodically instead (the server does)."""
    url = url or settings.sqlalchemy_url
    if url.startswith("sqlite"):
        db_path = sa.make_url(url).database
        if db_path and db_path != ":memory:":
            private_sqlite_file(Path(db_path))
        engine = sa.create_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            connect_args={"check_same_thread": False, "timeout": settings.db_busy_timeout_ms / 1000},
        )
        on_connect = _sqlite_on_connect(
            settings.db_busy_timeout_ms, background_checkpoints=background_checkpoints
        )
        sa.event.listen(engine, "connect", on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin(settings.db_busy_timeout_ms))
    else:
        engine = sa.create_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_pre_ping=False,
            connect_args={
                # Fail fast when PostgreSQL is down: the API answers 503 instead of hanging.
                "connect_timeout": 5,
                # No automatic server-side prepares: after five executions psycopg would prepare a
                # statement, and PostgreSQL may then switch to a generic plan that ignores the actual
                # parameter values — 80x slower for a trigram search, where selectivity is everything.
                "prepare_threshold": None,
            },
        )
    return Database(engine, settings.query_timeout_ms)


def insert_ignore(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows, skipping any whose primary key already exists."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
    else:
        connection.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)


def insert_rows(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_existing: bool = False,
) -> None:
    """INSERT many rows that all carry the same columns; ``skip_existing`` drops rows whose primary key
    is already there.

    The statement goes to the driver as it is, with one tuple per row: SQLAlchemy's per-row
    parameter processing cost about as much as SQLite's own insert of the row. PostgreSQL gets one
    ``INSERT ... SELECT FROM unnest(<one array per column>)`` for all the rows (see ``update_rows``).
    """
    if not rows:
        return
    names = list(rows[0])
    quote = connection.dialect.identifier_preparer.quote
    target = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
    conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
    if connection.dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{_pg_array_type(table.c[c])}" for c in names)
        connection.exec_driver_sql(
            f"{target}SELECT * FROM unnest({arrays}){conflict}",
            tuple([r[c] for r in rows] for c in names),
        )
        return
    connection.exec_driver_sql(
        f"{target}VALUES ({', '.join('?' for _ in names)}){conflict}",
        [tuple(r[c] for c in names) for r in rows],
    )


def add_on_conflict(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str,
    sums: Sequence[str],
) -> None:
    """INSERT rows that all carry the same columns; where ``key`` already exists, add their ``sums``
    columns to the stored ones instead (counters)."""
    if not rows:
        return
    columns = list(rows[0])
    quote = connection.dialect.identifier_preparer.quote
    marker = "%s" if connection.dialect.name == "postgresql" else "?"
    name = quote(table.name)
    added = ", ".join(f"{quote(c)} = {name}.{quote(c)} + excluded.{quote(c)}" for c in sums)
    connection.exec_driver_sql(
        f"INSERT INTO {name} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)}) ON CONFLICT ({quote(key)}) DO UPDATE SET {added}",
        [tuple(r[c] for c in columns) for r in rows],
    )


def _select_where_key_in(
    connection: sa.Connection,
    head: str,
    key: str,
    keys: Sequence[Any],
    *,
    tail: str = "",
    params: Sequence[Any] = (),
) -> Sequence[Any]:
    """The rows of ``head WHERE key IN keys tail`` (``tail``: more SQL, with ``params``).
    PostgreSQL: one ``= ANY(array)`` query, the array sent in binary; SQLite: an ``IN (...)`` list per
    few hundred keys, well under its parameter limit."""
    quoted = connection.dialect.identifier_preparer.quote(key)
    if connection.dialect.name == "postgresql":
        result = connection.exec_driver_sql(f"{head} WHERE {quoted} = ANY(%b){tail}", (list(keys), *params))
        rows = result.cursor.fetchall()
        result.close()
        return rows
    found: list[Any] = []
    for start in range(0, len(keys), _IN_LIST):
        part = tuple(keys[start : start + _IN_LIST])
        listed = ", ".join("?" for _ in part)
        result = connection.exec_driver_sql(f"{head} WHERE {quoted} IN ({listed}){tail}", (*part, *params))
        found.extend(result.cursor.fetchall())
        result.close()
    return found


def rows_by_key(
    connection: sa.Connection,
    table: sa.Table,
    keys: Sequence[Any],
    *,
    key: str = "id",
    without: Sequence[str] = (),
    for_update: bool = False,
) -> list[dict[str, Any]]:
    """Every column (but ``without``) of the rows whose ``key`` is one of ``keys``, as plain dicts (no
    ORM-style row objects: ingestion reads thousands per batch). ``for_update``: PostgreSQL locks the
    rows until the transaction ends (SQLite's write transaction already excludes every other writer:
    nothing to lock)."""
    quote = connection.dialect.identifier_preparer.quote
    names = [c.name for c in table.columns if c.name not in without]
    head = f"SELECT {', '.join(quote(c) for c in names)} FROM {quote(table.name)}"
    lock = " FOR UPDATE" if for_update and connection.dialect.name == "postgresql" else ""
    rows = _select_where_key_in(connection, head, key, keys, tail=lock)
    return [dict(zip(names, r, strict=True)) for r in rows]


def keys_present(
    connection: sa.Connection, table: sa.Table, key: str, keys: Sequence[Any], **equal: Any
) -> set[Any]:
    """Which of ``keys`` are values of the column ``key`` in rows of ``table`` whose ``equal`` columns
    hold the given values. (A sync batch looks up its 2,000 workload ids: as four SQLAlchemy ``IN``
    lists of 500 parameters, each planned anew by PostgreSQL, that took 12 ms; as one binary array, 4.
    Sent as text, the same array takes 4.4 ms to 1.8 in binary, alone.)"""
    if not keys:
        return set()
    quote = connection.dialect.identifier_preparer.quote
    marker = "%s" if connection.dialect.name == "postgresql" else "?"
    head = f"SELECT DISTINCT {quote(key)} FROM {quote(table.name)}"
    conditions = "".join(f" AND {quote(column)} = {marker}" for column in equal)
    rows = _select_where_key_in(connection, head, key, keys, tail=conditions, params=tuple(equal.values()))
    return {row[0] for row in rows}


def update_rows(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id"
) -> None:
    """UPDATE rows of ``table``, each row found by its ``key`` value. Every row carries the same
    columns: ``key`` and the columns to set (callers group rows by the columns that changed).

    PostgreSQL: one ``UPDATE ... FROM unnest(<one array per column>)`` statement for all the rows.
    An executemany would run one statement per row (psycopg pipelines them, but each is still parsed,
    planned and executed on its own, and fires statement-level triggers once per row); this sends
    one parameter per column whatever the number of rows, so the statement text is the same for
    every batch. The arrays travel in binary (``%b``): psycopg escapes text-format array elements
    with a regular expression in Python, eight times slower for a batch of documents.

    SQLite: one prepared statement run once per row, which is what it does best (it has no
    statement-level triggers, and a row costs it microseconds), given to the driver as it is.
    """
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name == "postgresql":
        names = [key, *columns]
        assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
        arrays = ", ".join(f"%b::{_pg_array_type(table.c[c])}" for c in names)
        statement = (
            f"UPDATE {quote(table.name)} SET {assignments} "
            f"FROM unnest({arrays}) AS v({', '.join(quote(c) for c in names)}) "
            f"WHERE {quote(table.name)}.{quote(key)} = v.{quote(key)}"
        )
        connection.exec_driver_sql(statement, tuple([r[c] for r in rows] for c in names))
        return
    assignments = ", ".join(f"{quote(c)} = ?" for c in columns)
    connection.exec_driver_sql(
        f"UPDATE {quote(table.name)} SET {assignments} WHERE {quote(key)} = ?",
        [(*(r[c] for c in columns), r[key]) for r in rows],
    )


def _pg_array_type(column: sa.Column[Any]) -> str:
    """The PostgreSQL array type a column's values travel in (``unnest`` gives back its elements).
    Text of any length or collation travels as ``text``: assignment casts it to the column's type."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "boolean[]"
    if isinstance(kind, sa.BigInteger):
        return "bigint[]"
    if isinstance(kind, sa.Integer):
        return "integer[]"
    if isinstance(kind, sa.Float):
        return "double precision[]"
    if isinstance(kind, sa.LargeBinary):
        return "bytea[]"
    if isinstance(kind, sa.String):
        return "text[]"
    raise TypeError(f"no array type for column {column.name} ({kind!r})")


def upsert(
    connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], update_columns: list[str]
) -> None:
    """INSERT rows, or update ``update_columns`` of those whose primary key exists."""
    if not update_columns:
        insert_ignore(connection, table, rows)
        return
    keys = [c.name for c in table.primary_key.columns]
    if connection.dialect.name == "postgresql":
        pg = postgresql.insert(table)
        connection.execute(
            pg.on_conflict_do_update(index_elements=keys, set_={c: pg.excluded[c] for c in update_columns}),
            rows,
        )
    else:
        lite = sqlite.insert(table)
        connection.execute(
            lite.on_conflict_do_update(
                index_elements=keys, set_={c: lite.excluded[c] for c in update_columns}
            ),
            rows,
        )
