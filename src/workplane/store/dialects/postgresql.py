"""PostgreSQL: the server database at scale. Its connection settings, its array-at-once statements,
and its trigram side table.

Text search: the text and its pg_trgm GIN indexes live in ``workload_search``, one row per workload,
kept in step by triggers (migration 0010; off ``workloads`` so that a phase change, which cannot be a
HOT update, does not add two GIN entries per row). A positive substring predicate becomes an EXISTS on
that table, the same LIKE on the same text, so the planner weighs the trigram index against walking
the sort index by itself: nothing is looked up before the query.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.dml import Insert

from workplane.domain.text import fold
from workplane.settings import Settings
from workplane.store.dialects.base import SqlDialect, SubstringPart, Tail, TextColumn, escape_like
from workplane.store.schema import workload_pods, workloads

_SETTING = "workplane.rollups"  # read by the trigger functions of migration 0009
# The advisory lock key of store preparation: "workplan" in ASCII, a bigint no other user of the
# database is likely to pick.
_PREPARE_LOCK = int.from_bytes(b"workplan", "big")

# PostgreSQL only (migration 0010), so not part of ``schema.metadata``, which both databases hold.
# ``name_lower`` is ``lower(name)``; ``search_text`` is stored folded already.
workload_search = sa.table(
    "workload_search",
    sa.column("workload_id", sa.String),
    sa.column("name_lower", sa.Text),
    sa.column("search_text", sa.Text),
)
_INDEXED: dict[TextColumn, sa.ColumnClause[Any]] = {
    "name": workload_search.c.name_lower,
    "search_text": workload_search.c.search_text,
}

_pods = workload_pods.c
# A pod's search text without its phase, the last of its parts (``domain.pods.pod_search_text``: the
# names, node and pool, then a space and the folded phase, which keeps its length): what the trigram
# index of migration 0024 holds, over live pods. Written as the index's expression is, its numbers
# literal: a bound parameter would not match it.
POD_NAMES = sa.func.left(
    _pods.search_text,
    sa.func.greatest(
        sa.func.length(_pods.search_text) - sa.func.length(_pods.k8s_phase) - sa.literal_column("1"),
        sa.literal_column("0"),
    ),
    type_=sa.Text,
)
# The distinct phases of live pods, in order: one seek each on their index (migration 0024).
_LIVE_PHASES = sa.text(
    "WITH RECURSIVE v(x) AS ("
    "SELECT min(k8s_phase) FROM workload_pods WHERE deleted_at IS NULL "
    "UNION ALL "
    "SELECT (SELECT min(k8s_phase) FROM workload_pods WHERE deleted_at IS NULL AND k8s_phase > v.x) "
    "FROM v WHERE v.x IS NOT NULL"
    ") SELECT x FROM v WHERE x IS NOT NULL LIMIT :most"
)
# Past this many distinct live phases (Kubernetes has five), search words are matched on the whole text.
MOST_PHASES = 64


class PostgresDialect(SqlDialect):
    name = "postgresql"
    marker = "%s"
    # Writers do not exclude one another: the rows a writer read stay locked until it commits.
    row_lock = " FOR UPDATE"
    # The ``IN`` list's 19,000 index entries (ten nodes at a million pods) read and sorted for a page:
    # 5.8 ms of SQL; one walk per node, merged: 3.0 ms.
    merges_value_walks = True

    # --- engine --------------------------------------------------------------------------------
    def create_engine(
        self, url: str, settings: Settings, *, background_checkpoints: bool, writer: bool = False
    ) -> sa.Engine:
        return sa.create_engine(
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

    @contextmanager
    def preparing(self, engine: sa.Engine) -> Iterator[None]:
        # A session-level advisory lock, held by a connection of its own for the whole preparation:
        # the replicas of a Deployment start at once, and two Alembic upgrades racing on an empty
        # database fail (both create alembic_version). The second one waits here, then finds the
        # schema at head and the administrator key made. The lock goes with the session if the
        # process dies midway.
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _PREPARE_LOCK})
            connection.commit()  # no transaction stays open while the others wait
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PREPARE_LOCK})
                connection.commit()

    @contextmanager
    def bounded_read(self, connection: sa.Connection, timeout_ms: int) -> Iterator[Any]:
        raw = connection.connection.driver_connection
        assert raw is not None
        # One snapshot for the whole transaction (READ COMMITTED, the default, takes one per
        # statement): a page read in parts or a count summed over sets then cannot count a row twice
        # or miss one a writer moved between two statements. It only reads, so it never fails on a writer.
        # Sent with the timeout in one round trip, before the first query as it must be.
        timeout = f"; SET LOCAL statement_timeout = {int(timeout_ms)}" if timeout_ms else ""
        connection.exec_driver_sql(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ{timeout}")
        yield raw.cancel_safe

    def estimated_rows(self, connection: sa.Connection, table: sa.Table) -> int | None:
        """The planner's own estimate (``pg_class.reltuples``, kept by autovacuum and ANALYZE); None
        for a table never analyzed (-1 since PostgreSQL 14)."""
        found = connection.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": table.name}
        ).scalar()
        return int(found) if found is not None and found >= 0 else None

    def workload_ids(self, pattern: str) -> sa.Select[Any]:
        """From ``workload_search`` (a row per workload), whose trigram index on ``lower(workload_id)``
        (migration 0022) answers the same ``LIKE``: reading the 200,000 ids of the workloads at a
        million pods took 100–130 ms."""
        ids = workload_search.c.workload_id
        return sa.select(ids).where(sa.func.lower(ids).like(pattern, escape="\\"))

    def live_pod_words(
        self, connection: sa.Connection, words: Sequence[str]
    ) -> list[sa.ColumnElement[bool]] | None:
        """Each word in the pod's text without its phase (``POD_NAMES``, which the trigram index of
        migration 0024 holds) or a phase among the live phases whose folded name holds it (``IN``
        the phase's index). Exact: a word has no white space (``query.filters.parse_search``), so it
        cannot span the space before the phase, and is in the text exactly where it is in one of the
        two. None past ``MOST_PHASES`` live phases."""
        phases = _live_phases(connection)
        if phases is None or any(" " in word for word in words):
            return None
        return [_in_names_or_phases(word, [ph for ph in phases if word in fold(ph)]) for word in words]

    def live_pod_text_count(
        self, connection: sa.Connection, words: Sequence[str]
    ) -> sa.ScalarSelect[int] | None:
        """The live pods with every word, counted in parts by phase (``live_pod_words``): those
        whose phase holds every word from the phase's index alone (no row read: ``succeeded``, a
        tenth of the pods, whose trigram candidates' rows were each read and checked, 340–630 ms at a
        million pods); those whose phase holds some of the words, by the others in the text without
        the phase; and those whose phase holds none, by every word there (the trigram index finds
        few, or none, for a word of a phase). One statement, one snapshot. None past
        ``MOST_PHASES`` live phases."""
        phases = _live_phases(connection)
        if not words or phases is None or any(" " in word for word in words):
            return None
        every = frozenset(words)
        by_missing: dict[frozenset[str], list[str]] = {}
        for phase in phases:
            held = frozenset(w for w in every if w in fold(phase))
            if held:
                by_missing.setdefault(every - held, []).append(phase)
        live = _pods.deleted_at.is_(None)

        def counted(*where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
            return sa.select(sa.func.count()).select_from(workload_pods).where(live, *where).scalar_subquery()

        parts = [
            counted(_pods.k8s_phase.in_(held_in), *(_in_names(w) for w in sorted(missing)))
            for missing, held_in in by_missing.items()
        ]
        holding = [ph for held_in in by_missing.values() for ph in held_in]
        others = [_pods.k8s_phase.not_in(holding)] if holding else []
        parts.append(counted(*others, *(_in_names(w) for w in sorted(every))))
        total: sa.ColumnElement[int] = parts[0]
        for part in parts[1:]:
            total = total + part
        return sa.select(total).scalar_subquery()

    def reads_in_order(self, connection: sa.Connection, statement: sa.Select[Any]) -> bool | None:
        """From the plan ``EXPLAIN`` gives (planned as the statement will be: statements are not
        prepared, so each is planned for its own parameters): in order unless a sort on the
        statement's own path orders its rows (one in an InitPlan or SubPlan orders something else)."""
        compiled = statement.compile(connection, compile_kwargs={"render_postcompile": True})
        explained = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
        return not _sorts(explained.scalar_one()[0]["Plan"])

    # --- inserts, updates ----------------------------------------------------------------------
    def insert(self, table: sa.Table) -> Insert:
        return postgresql.insert(table)

    def insert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], skip: bool
    ) -> None:
        """One ``INSERT ... SELECT FROM unnest(<one array per column>)`` for all the rows (see
        ``update_rows``)."""
        _insert_unnested(connection, table, rows, " ON CONFLICT DO NOTHING" if skip else "")

    def upsert_rows(
        self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], columns: list[str]
    ) -> None:
        """One ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`` for all the rows. The
        executemany it replaces ran one statement per row — parsed, planned and executed on its own,
        each firing the statement triggers (``pod_counts``' two upserts over the transition tables):
        about 0.7 ms a pod, 72 of the 91 s of a 100,000-pod first sync replayed in process. One
        statement cannot touch a row twice, so rows that repeat a key go one at a time, as before
        (the later one's values win)."""
        keys = [c.name for c in table.primary_key.columns]
        if len({tuple(r[k] for k in keys) for r in rows}) < len(rows):
            super().upsert_rows(connection, table, rows, columns)
            return
        quote = connection.dialect.identifier_preparer.quote
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns)
        conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}"
        _insert_unnested(connection, table, rows, conflict)

    def update_rows(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: str
    ) -> None:
        """One ``UPDATE ... FROM unnest(<one array per column>)`` statement for all the rows. An
        executemany would run one statement per row (psycopg pipelines them, but each is still parsed,
        planned and executed on its own, and fires statement-level triggers once per row); this sends
        one parameter per column whatever the number of rows, so the statement text is the same for
        every batch. The arrays travel in binary (``%b``): psycopg escapes text-format array elements
        with a regular expression in Python, eight times slower for a batch of documents."""
        columns = [c for c in rows[0] if c != key]
        quote = connection.dialect.identifier_preparer.quote
        names = [key, *columns]
        assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
        arrays = ", ".join(f"%b::{_array_type(table.c[c])}" for c in names)
        statement = (
            f"UPDATE {quote(table.name)} SET {assignments} "
            f"FROM unnest({arrays}) AS v({', '.join(quote(c) for c in names)}) "
            f"WHERE {quote(table.name)}.{quote(key)} = v.{quote(key)}"
        )
        connection.exec_driver_sql(statement, tuple([r[c] for r in rows] for c in names))

    def select_where_key_in(
        self, connection: sa.Connection, head: str, key: str, keys: Sequence[Any], tail: Tail = ("", ())
    ) -> Sequence[Any]:
        """One ``= ANY(array)`` query, the array sent in binary."""
        quoted = connection.dialect.identifier_preparer.quote(key)
        result = connection.exec_driver_sql(
            f"{head} WHERE {quoted} = ANY(%b){tail[0]}", (list(keys), *tail[1])
        )
        rows = result.cursor.fetchall()
        result.close()
        return rows

    # --- the live-count rollups ----------------------------------------------------------------
    @contextmanager
    def deferred_triggers(self, connection: sa.Connection) -> Iterator[None]:
        # A transaction-local setting the trigger functions of migration 0009 read.
        connection.exec_driver_sql(f"SELECT set_config('{_SETTING}', 'deferred', true)")
        yield
        connection.exec_driver_sql(f"SELECT set_config('{_SETTING}', '', true)")

    def gpu_micro(self, allocated_gpu: float | None) -> int:
        """float8 ``round`` is ``rint``: halves to even, as Python's ``round``."""
        return round((allocated_gpu or 0.0) * 1_000_000)

    # --- text search ---------------------------------------------------------------------------
    def substrings(self, parts: Sequence[SubstringPart]) -> sa.ColumnElement[bool]:
        """One EXISTS on ``workload_search`` holding every LIKE. One EXISTS per part would be one
        semi-join each, and the planner weighs join orders among them: 2.3 s of planning for 32 filter
        terms and search words on 20,000 rows, growing faster than linearly with the terms, where one
        EXISTS plans in milliseconds whatever their number.

        EXISTS rather than IN: both become a semi-join under AND, but under OR (a search word also
        matches categories and phases) an uncorrelated IN is a subplan that hashes every matching id —
        or, past ``work_mem``, rescans them per row — where EXISTS probes the side table's primary key.
        """
        return (
            sa.exists()
            .where(workload_search.c.workload_id == workloads.c.id)
            .where(*(_INDEXED[column].like(pattern, escape="\\") for column, _plain, pattern in parts))
        )


def _live_phases(connection: sa.Connection) -> list[str] | None:
    """The distinct phases of live pods; None past ``MOST_PHASES``."""
    found = list(connection.execute(_LIVE_PHASES, {"most": MOST_PHASES + 1}).scalars())
    return None if len(found) > MOST_PHASES else found


def _in_names(word: str) -> sa.ColumnElement[bool]:
    return POD_NAMES.like(f"%{escape_like(word)}%", escape="\\")


def _in_names_or_phases(word: str, phases: list[str]) -> sa.ColumnElement[bool]:
    return sa.or_(_in_names(word), _pods.k8s_phase.in_(phases)) if phases else _in_names(word)


# Plans below a node that compute a value for it (an uncorrelated or a correlated subquery), not rows.
_OTHER_PLANS = ("InitPlan", "SubPlan")


def _sorts(node: dict[str, Any]) -> bool:
    """Whether a plan node (``EXPLAIN (FORMAT JSON)``), or one below it that feeds it rows, sorts."""
    if node["Node Type"] == "Sort":
        return True
    feeding = [n for n in node.get("Plans", ()) if n.get("Parent Relationship") not in _OTHER_PLANS]
    return any(_sorts(n) for n in feeding)


def _insert_unnested(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], conflict: str
) -> None:
    """``INSERT ... SELECT * FROM unnest(<one binary array per column>)`` then ``conflict``: one
    statement, one parameter per column, whatever the number of rows."""
    names = list(rows[0])
    quote = connection.dialect.identifier_preparer.quote
    arrays = ", ".join(f"%b::{_array_type(table.c[c])}" for c in names)
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
        f"SELECT * FROM unnest({arrays}){conflict}",
        tuple([r[c] for r in rows] for c in names),
    )


# Column type → the array type its values travel in; BigInteger before Integer, its base class.
_ARRAY_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (sa.Boolean, "boolean[]"),
    (sa.BigInteger, "bigint[]"),
    (sa.Integer, "integer[]"),
    (sa.Float, "double precision[]"),
    (sa.LargeBinary, "bytea[]"),
    (sa.String, "text[]"),
)


def _array_type(column: sa.Column[Any]) -> str:
    """The PostgreSQL array type a column's values travel in (``unnest`` gives back its elements).
    Text of any length or collation travels as ``text``: assignment casts it to the column's type."""
    for kind, array in _ARRAY_TYPES:
        if isinstance(column.type, kind):
            return array
    raise TypeError(f"no array type for column {column.name} ({column.type!r})")
