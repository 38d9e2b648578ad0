"""The store's database: its engine, its transactions, and the row helpers every store module uses.

``Database.read()`` and ``Database.write()`` hand out a connection inside a transaction; data
functions take that connection and never commit. What differs between SQLite and PostgreSQL is the
business of ``store.dialects``: the database's ``SqlDialect`` is chosen once, when it is opened, and
the helpers below hand each operation to the dialect of the connection they are given.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa

from workplane.settings import Settings
from workplane.store.dialects import dialect_of, for_url
from workplane.store.dialects.base import WRITE_TRANSACTION, SqlDialect, chunked

__all__ = [
    "CURRENT_CANCEL",
    "Database",
    "QueryCancel",
    "SqlDialect",
    "chunked",
    "create_database",
    "dialect_of",
    "insert_ignore",
    "insert_rows",
    "is_cancelled_query",
    "keys_present",
    "rows_by_key",
    "update_rows",
    "upsert",
]


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
        # Chosen once: every difference between the databases goes through it.
        self.sql = dialect_of(engine)
        self.dialect = self.sql.name
        self.query_timeout_ms = query_timeout_ms

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction: list and count in one request see the same snapshot. It runs for at
        most ``query_timeout_ms`` (then the driver raises what ``is_cancelled_query`` recognises), and
        stops early when the request's ``QueryCancel`` fires."""
        with (
            self.engine.connect() as connection,
            connection.begin(),
            self.sql.bounded_read(connection, self.query_timeout_ms) as stop,
        ):
            cancel = CURRENT_CANCEL.get()
            if cancel is not None:
                cancel.attach(stop)
            try:
                yield connection
            finally:
                if cancel is not None:
                    cancel.detach()

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction, committed on success. On SQLite it takes the write lock up front
        (BEGIN IMMEDIATE): a deferred transaction that upgrades to writing can fail with SQLITE_BUSY
        without waiting for busy_timeout, which would turn contention into an error."""
        with (
            self.engine.connect().execution_options(**{WRITE_TRANSACTION: True}) as connection,
            connection.begin(),
        ):
            yield connection

    def preparing(self) -> AbstractContextManager[None]:
        """The block in which this process alone prepares the store (``SqlDialect.preparing``)."""
        return self.sql.preparing(self.engine)

    def checkpoint(self) -> None:
        """SQLite: copy what the write-ahead log holds into the database file (nothing elsewhere)."""
        self.sql.checkpoint(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def create_database(
    settings: Settings, url: str | None = None, *, background_checkpoints: bool = False, writer: bool = False
) -> Database:
    """The store's engine. ``background_checkpoints`` (SQLite): no connection checkpoints when it
    commits; the owner calls ``Database.checkpoint`` periodically instead (the server does).
    ``writer``: the engine of a sync worker process (SQLite: a larger page cache)."""
    url = url or settings.sqlalchemy_url
    engine = for_url(url).create_engine(
        url, settings, background_checkpoints=background_checkpoints, writer=writer
    )
    return Database(engine, settings.query_timeout_ms)


def insert_ignore(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows, skipping any whose primary key already exists."""
    dialect_of(connection).insert_ignore(connection, table, rows)


def insert_rows(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_existing: bool = False,
) -> None:
    """INSERT many rows that all carry the same columns; ``skip_existing`` drops rows whose primary key
    is already there.

    The statement goes to the driver as it is: SQLAlchemy's per-row parameter processing cost about
    as much as SQLite's own insert of the row. PostgreSQL gets one statement for all the rows."""
    if rows:
        dialect_of(connection).insert_rows(connection, table, rows, skip_existing)


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
    ORM-style row objects: ingestion reads thousands per batch). ``for_update``: the rows stay locked
    until the transaction ends where writers do not already exclude one another (PostgreSQL)."""
    sql = dialect_of(connection)
    quote = connection.dialect.identifier_preparer.quote
    names = [c.name for c in table.columns if c.name not in without]
    head = f"SELECT {', '.join(quote(c) for c in names)} FROM {quote(table.name)}"
    rows = sql.select_where_key_in(connection, head, key, keys, (sql.row_lock if for_update else "", ()))
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
    sql = dialect_of(connection)
    quote = connection.dialect.identifier_preparer.quote
    head = f"SELECT DISTINCT {quote(key)} FROM {quote(table.name)}"
    conditions = "".join(f" AND {quote(column)} = {sql.marker}" for column in equal)
    rows = sql.select_where_key_in(connection, head, key, keys, (conditions, tuple(equal.values())))
    return {row[0] for row in rows}


def update_rows(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id"
) -> None:
    """UPDATE rows of ``table``, each row found by its ``key`` value. Every row carries the same
    columns: ``key`` and the columns to set (callers group rows by the columns that changed)."""
    if rows:
        dialect_of(connection).update_rows(connection, table, rows, key=key)


def upsert(
    connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], update_columns: list[str]
) -> None:
    """INSERT rows, or update ``update_columns`` of those whose primary key exists."""
    dialect_of(connection).upsert(connection, table, rows, update_columns)
