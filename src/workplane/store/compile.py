"""Typed terms → SQL: the single place where filter, search and sort semantics meet the database.

Semantics (docs/contract.md §5 and docs/decisions/0001-filter-semantics.md); ``filters.text_matches``
and ``filters.number_matches`` are the same rules in Python, and a differential test holds them equal:
- text ``==``/``!=`` exact; ``=@ !@ =^ =$`` case-insensitive; ``<=``/``>=`` by code point;
  ``%``, ``_`` and ``\\`` in values are literal (LIKE with an escape character);
- case-insensitive means ASCII folding (A-Z = a-z, nothing else, ``domain.text.fold``): exactly what
  SQL ``lower()`` does on SQLite and on PostgreSQL's "C"-collated columns, so both databases and Python
  agree; ``search`` folds the same way (its stored haystack is folded with ``fold``);
- a NULL never satisfies ``== <= >= =@ =^ =$`` and always satisfies ``!=`` and ``!@``;
- ``nodepool`` holds for ``== <= >= =@ =^ =$`` when any current pool matches; ``!=``/``!@`` are the
  negations (no pool equals / contains the value), so a workload without pools satisfies them;
- numbers are finite decimal literals; times are instants (offsets honoured, a bare date is midnight
  UTC) compared with sub-millisecond precision against the stored milliseconds;
- ``category``, ``priority`` and ``priorityClassName`` are resolved through the catalog: the predicate
  is evaluated on each of the few possible values in Python and becomes "own value in S, or no own value
  and a type whose default is in S" — index-friendly, and right the moment a type's default changes;
- ``totalPendingTimeSeconds``/``totalRunningTimeSeconds`` are computed at ``now_ms`` from the stored
  closed time plus the open interval (an interval starting after ``now_ms`` counts 0), exactly as they
  are served (``PhaseClock``): whole seconds rounded down. Filters compare in milliseconds against that
  integer; sorting uses the whole seconds too, so equal served values tie and fall back to the id;
- sorting: rows without a value last in both directions, ties broken by ``id`` in the same direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from workplane.domain.catalog import CATEGORIES, PRIORITIES, CatalogSnapshot
from workplane.domain.fields import FIELDS, Kind
from workplane.domain.phases import Phase
from workplane.domain.text import fold
from workplane.query.filters import (
    NEGATIVE_OPERATORS,
    QueryError,
    Sort,
    SortOrder,
    Term,
    WorkloadQuery,
    number_matches,
    text_matches,
)
from workplane.store.dialects.base import SqlDialect, TextColumn, escape_like
from workplane.store.schema import COMPLETED_DAY_MS, workload_nodepools, workloads
from workplane.store.scopes import restrict

# The largest bound a time filter compares against: a whole second (so that every bound is one, which
# the clocks' index in whole seconds needs, ``ClockStream``), far beyond any real duration, and a valid
# 64-bit integer (a huge filter value must not overflow SQLite's INTEGER).
_MAX_MS = (2**62 // 1000) * 1000

# A negative node-pool term holds when no pool satisfies its positive form.
POSITIVE_FORM = {"!=": "==", "!@": "=@"}

# The text operators a trigram index can answer (a NULL never satisfies them; ``name`` is never NULL).
SUBSTRING_OPERATORS = frozenset({"=@", "=^", "=$"})
RANGE_OPERATORS = frozenset({"<=", ">="})


def like_pattern(op: str, value: str) -> str:
    """The ``LIKE`` pattern (escaped with a backslash) of a substring operator and its needle, folded."""
    needle = escape_like(fold(value))
    return {"=@": f"%{needle}%", "!@": f"%{needle}%", "=^": f"{needle}%", "=$": f"%{needle}"}[op]


def _like(column: sa.ColumnElement[Any], op: str, value: str, folded: bool = False) -> sa.ColumnElement[bool]:
    subject = column if folded else sa.func.lower(column)
    return subject.like(like_pattern(op, value), escape="\\")


def text_predicate(column: sa.ColumnElement[Any], op: str, value: str) -> sa.ColumnElement[bool]:
    match op:
        case "!@":
            return sa.or_(column.is_(None), sa.not_(_like(column, op, value)))
        case "=@" | "=^" | "=$":
            return _like(column, op, value)
        case _:
            return number_predicate(column, op, value)


def number_predicate(column: sa.ColumnElement[Any], op: str, value: float | str) -> sa.ColumnElement[bool]:
    """``== != <= >=`` on a column of any ordered type; ``!=`` also holds where there is no value."""
    match op:
        case "==":
            return column == value
        case "!=":
            return sa.or_(column.is_(None), column != value)
        case "<=":
            return column <= value
        case _:
            return column >= value


def range_bound(op: str, at_ms: float) -> int:
    """The whole-millisecond bound of a range (``>=``, ``<=``) on a column of whole milliseconds:
    ``>= 1.5`` is ``>= 2``, ``<= 1.5`` is ``<= 1``."""
    return math.ceil(at_ms) if op == ">=" else math.floor(at_ms)


def time_predicate(column: sa.ColumnElement[Any], op: str, at_ms: float) -> sa.ColumnElement[bool]:
    """``number_predicate`` on a column of whole milliseconds, with whole-millisecond bounds: a time
    with a fraction of a millisecond (``to_ms_exact``) bound as a float makes PostgreSQL compare the
    column as ``numeric``, which no index answers. Equivalent: ranges by ``range_bound``, and no
    whole number equals 1.5."""
    whole = at_ms.is_integer()
    match op:
        case ">=":
            return column >= range_bound(op, at_ms)
        case "<=":
            return column <= range_bound(op, at_ms)
        case "==":
            return column == int(at_ms) if whole else sa.false()
        case _:
            return number_predicate(column, op, int(at_ms)) if whole else sa.true()


def day_of(column: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """The day of a time column, as the day indexes hold it (``ix_workloads_completed_day``,
    ``ix_workload_pods_completed_day``, ``ix_workload_pods_deleted_day``): the same expression, its
    divisor a constant, for both databases to match it (SQL's integer division truncates)."""
    divisor: sa.ColumnElement[int] = sa.literal_column(str(COMPLETED_DAY_MS))
    return column.op("/", return_type=sa.BigInteger)(divisor)


def range_day(op: str, at_ms: float) -> int:
    """The day (``day_of``) of a range's whole-millisecond bound (``range_bound``), truncated toward
    zero as SQL's integer division is: the day is non-decreasing in the time, so every row of a
    ``>=`` range is on that day or after it, every row of a ``<=`` range on it or before it."""
    ms = range_bound(op, at_ms)
    days = abs(ms) // COMPLETED_DAY_MS
    return days if ms >= 0 else -days


def day_bound(column: sa.ColumnElement[Any], op: str, at_ms: float) -> sa.ColumnElement[bool]:
    """The days a range (``>=``, ``<=``) on a time column implies (``range_day``): its rows found by a
    day index's leading key, where one holds them. Without it PostgreSQL read a whole day index for
    the range, whose time it holds too, as an index-only scan with the range as its filter."""
    day = range_day(op, at_ms)
    return day_of(column) >= day if op == ">=" else day_of(column) <= day


@dataclass(frozen=True, slots=True)
class ClockStream:
    """One of three disjoint sets of rows on which a phase-clock total is ``key * scale + shift``
    milliseconds, ``key`` being what an index of migration 0020 orders (``Compiler.clock_streams``)."""

    where: sa.ColumnElement[bool]
    key: sa.ColumnElement[Any]
    scale: int  # 1000: ``key`` is whole seconds already (every bound compared is a whole second)
    shift: int

    def key_bound(self, ms: int) -> int:
        """The key of the rows whose total is ``ms`` (a whole second where ``scale`` is 1000)."""
        return (ms - self.shift) // self.scale

    def seconds(self, key: int) -> int:
        """The served value (whole seconds, rounded down) of a row of this set with ``key``."""
        return (key * self.scale + self.shift) // 1000


class Compiler:
    """Compiles a ``WorkloadQuery`` against one catalog snapshot and one instant."""

    def __init__(
        self,
        catalog: CatalogSnapshot,
        now_ms: int,
        dialect: SqlDialect,
        table: sa.Table = workloads,
        values: Mapping[str, Sequence[str]] | None = None,
        ranges_unindexed: bool = False,
        streams: Mapping[str, int] | None = None,
        scope_unindexed: bool = False,
    ) -> None:
        """``dialect``: the database's, which renders substring predicates its own way.
        ``table`` is ``workloads``, or a table sharing its column names for the fields asked about
        (the live-count aggregate, ``store.counts``). ``values``: every value some selected row can
        have, per column of few values (``store.workloads.few_values``): a positive substring term on
        such a column becomes an equality with the values that satisfy it, which its index answers.
        ``ranges_unindexed``: ``<=``/``>=`` on a stored column is kept off the column's own index
        on every database (``SqlDialect.unordered``), for a bounded walk of the order's index
        (``store.ordering.ranged_walk``). ``streams``: per clock field, which of its
        ``clock_streams`` the rows are taken from; a term on that field then selects from that set
        only, by its index (the caller adds up the sets: ``store.workloads``). ``scope_unindexed``:
        the caller's scope is kept off its columns' indexes (``SqlDialect.unindexed``): a scope
        holding a large share of the rows (``store.workloads.list_workloads``), whose index SQLite
        would otherwise take over the order's or a term's."""
        self.catalog = catalog
        self.dialect = dialect
        self.now_ms = now_ms
        self.table = table
        self.c = table.c
        self.values = values or {}
        # Whether the selection is of live rows (``where``): the type's side of a catalog-resolved
        # term then repeats it, so that SQLite can answer that side by the live rows' type index
        # (a partial index serves a disjunct only when the disjunct implies its condition).
        self.live = False
        self.ranges_unindexed = ranges_unindexed
        self.scope_unindexed = scope_unindexed
        self.streams = dict(streams or {})
        # A clock term's predicate, per (field, operator, value): a page of a clock term compiles it
        # a few times per request with one compiler (the plan's counts, the page, its walk).
        self._clock_terms: dict[tuple[str, str, float], sa.ColumnElement[bool]] = {}

    def varied(
        self,
        *,
        ranges_unindexed: bool | None = None,
        streams: Mapping[str, int] | None = None,
        scope_unindexed: bool | None = None,
    ) -> Compiler:
        """This compiler (same catalog, instant, dialect, table and values) with the plan settings
        given changed, the others kept."""
        return Compiler(
            self.catalog,
            self.now_ms,
            self.dialect,
            self.table,
            self.values,
            self.ranges_unindexed if ranges_unindexed is None else ranges_unindexed,
            self.streams if streams is None else streams,
            self.scope_unindexed if scope_unindexed is None else scope_unindexed,
        )

    # --- catalog-resolved fields -------------------------------------------------------------
    def catalog_defaults(self, field: str) -> dict[str, str]:
        """Each catalog type's default for the catalog-resolved ``field`` (``category`` or
        ``priorityClassName``): what a workload of that type without a value of its own reports. The one
        place that resolution reads the catalog (``store.ordering`` resolves rollup rows with it too)."""
        if field == "category":
            return {t: d.category for t, d in self.catalog.types.items()}
        return {t: d.priority for t, d in self.catalog.types.items()}

    def _resolved(
        self,
        own: sa.ColumnElement[Any],
        defaults: dict[str, str],
        candidates: list[str],
        holds: Callable[[str | None], bool],
        unindexed: bool = False,
    ) -> sa.ColumnElement[bool]:
        accepted = [c for c in candidates if holds(c)]
        types_accepted = [t for t, d in defaults.items() if d in accepted]
        # ``unindexed``: the predicate holds on most rows that an ordered walk visits (``store.ordering``).
        plain = self.dialect.unindexed if unindexed else _same
        clauses: list[sa.ColumnElement[bool]] = []
        if accepted:
            clauses.append(plain(own).in_(accepted))
        live = [self.c.deleted_at.is_(None)] if self.live else []
        if types_accepted:
            clauses.append(sa.and_(own.is_(None), plain(self.c.type).in_(types_accepted), *live))
        if holds(None):
            # No own value and a type the catalog does not know: the field has no value.
            clauses.append(sa.and_(own.is_(None), plain(self.c.type).not_in(list(self.catalog.types))))
        return sa.or_(*clauses) if clauses else sa.false()

    def _category(
        self, holds: Callable[[str | None], bool], unindexed: bool = False
    ) -> sa.ColumnElement[bool]:
        return self._resolved(
            self.c.own_category,
            self.catalog_defaults("category"),
            [c.name for c in CATEGORIES],
            holds,
            unindexed,
        )

    def _priority(
        self, holds: Callable[[str | None], bool], unindexed: bool = False
    ) -> sa.ColumnElement[bool]:
        return self._resolved(
            self.c.own_priority,
            self.catalog_defaults("priorityClassName"),
            [p.name for p in PRIORITIES],
            holds,
            unindexed,
        )

    def resolved_is(self, field: str, value: str | None, unindexed: bool = False) -> sa.ColumnElement[bool]:
        """The catalog-resolved ``field`` (``category`` or ``priorityClassName``) is ``value`` (None: has
        no value)."""
        if field == "category":
            return self._category(lambda v: v == value, unindexed)
        return self._priority(lambda v: v == value, unindexed)

    def category_expr(self) -> sa.ColumnElement[Any]:
        mapping = self.catalog_defaults("category")
        return sa.func.coalesce(self.c.own_category, sa.case(mapping, value=self.c.type, else_=None))

    def priority_name_expr(self) -> sa.ColumnElement[Any]:
        mapping = self.catalog_defaults("priorityClassName")
        return sa.func.coalesce(self.c.own_priority, sa.case(mapping, value=self.c.type, else_=None))

    def priority_value_expr(self) -> sa.ColumnElement[Any]:
        return sa.case({p.name: p.value for p in PRIORITIES}, value=self.priority_name_expr(), else_=None)

    # --- clock-dependent fields --------------------------------------------------------------
    def elapsed_ms_expr(
        self, closed: sa.ColumnElement[Any], since: sa.ColumnElement[Any]
    ) -> sa.ColumnElement[Any]:
        """Closed time plus the open interval up to ``now_ms`` (an interval that starts after
        ``now_ms``, i.e. a clock ahead of ours, counts 0): ``PhaseClock`` in SQL."""
        now = sa.literal(self.now_ms, sa.BigInteger)
        return closed + sa.case((since.is_(None), 0), (since >= now, 0), else_=now - since)

    def elapsed_seconds_expr(self, field: str) -> sa.ColumnElement[Any]:
        """The served value: whole seconds, rounded down (the ms expression is never negative, so
        SQL's truncating integer division is a floor)."""
        return self._elapsed_ms(field) // sa.literal(1000, sa.BigInteger)

    def _clock_columns(self, field: str) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
        """The stored (closed, since) of a clock field."""
        if field == "totalPendingTimeSeconds":
            return self.c.pending_closed_ms, self.c.pending_since_ms
        return self.c.running_closed_ms, self.c.running_since_ms

    def _elapsed_ms(self, field: str) -> sa.ColumnElement[Any]:
        return self.elapsed_ms_expr(*self._clock_columns(field))

    def clock_streams(self, field: str) -> list[ClockStream]:
        """The rows split three ways on which the clock ``field`` is a stored key plus a constant
        (the indexes of migration 0020 order each by its key): the stopped clocks, whose total is
        ``closed`` (keyed in whole seconds, the served value); the clocks open since before
        ``now_ms``, whose total is ``closed - since + now``; and those open since after it (a clock
        ahead of ours), whose total is ``closed``."""
        return [self.clock_stream(field, number) for number in range(3)]

    def clock_stream(self, field: str, number: int) -> ClockStream:
        """The ``number``-th of ``clock_streams`` alone (a term of a clock field's page is compiled
        for one set a few times per request: building the other two each time was a tenth of the
        request's CPU)."""
        closed, since = self._clock_columns(field)
        if number == 0:
            return ClockStream(
                since.is_(None), sa.literal_column(f"({closed.name} / 1000)", sa.BigInteger), 1000, 0
            )
        now = sa.literal(self.now_ms, sa.BigInteger)
        if number == 1:
            # ``since < now`` holds on nearly every open clock: kept off the ``since`` index on every
            # database, so that the set is read along its key's (PostgreSQL, without statistics of
            # the partial index's key, took 30,000 open Pending clocks from the ``since`` index and
            # sorted them: 18 ms at 1M, where the key's index gives the first 51 at once).
            where = sa.and_(since.is_not(None), self.dialect.unordered(since) < now)
            return ClockStream(where, closed - since, 1, self.now_ms)
        return ClockStream(sa.and_(since.is_not(None), since >= now), closed, 1, 0)

    def _elapsed_predicate(self, field: str, op: str, seconds: float) -> sa.ColumnElement[bool]:
        # Served value is floor(ms / 1000); compare in milliseconds so no rounding happens in SQL,
        # against whole seconds clamped to [-1 s, _MAX_MS].
        stream = self.clock_stream(field, self.streams[field]) if field in self.streams else None
        if stream is None:
            expr = self._elapsed_ms(field)
        else:
            expr = self.dialect.unordered(stream.key) if self.ranges_unindexed else stream.key

        def bound(value: int) -> sa.ColumnElement[Any]:
            ms = max(-1000, min(value * 1000, _MAX_MS))
            return sa.literal(stream.key_bound(ms) if stream is not None else ms, sa.BigInteger)

        predicate: sa.ColumnElement[bool]
        match op:
            case ">=":
                predicate = expr >= bound(math.ceil(seconds))
            case "<=":
                predicate = expr < bound(math.floor(seconds) + 1)
            case "==" if not seconds.is_integer():
                predicate = sa.false()
            case "==":
                predicate = sa.and_(expr >= bound(int(seconds)), expr < bound(int(seconds) + 1))
            case _ if not seconds.is_integer():
                predicate = sa.true()
            case _:
                predicate = sa.or_(expr < bound(int(seconds)), expr >= bound(int(seconds) + 1))
        # Within one set of rows, even where the bound decides nothing (``!= 1.5`` holds on all).
        return predicate if stream is None else sa.and_(stream.where, predicate)

    # --- terms -------------------------------------------------------------------------------
    def term(self, term: Term) -> sa.ColumnElement[bool]:
        name, op = term.field.name, term.op
        if name == "category":
            return self._category(lambda v: text_matches(op, term.text, v))
        if name == "priorityClassName":
            return self._priority(lambda v: text_matches(op, term.text, v))
        if name == "priority":
            values = {p.name: float(p.value) for p in PRIORITIES}
            return self._priority(
                lambda v: number_matches(op, term.number, values[v] if v is not None else None)
            )
        if name in ("totalPendingTimeSeconds", "totalRunningTimeSeconds"):
            key = (name, op, term.number)
            if key not in self._clock_terms:
                self._clock_terms[key] = self._elapsed_predicate(name, op, term.number)
            return self._clock_terms[key]
        if name == "nodepool" and "nodepool" in self.c:
            # A table with one row per (workload, current pool): the pool rollup. Only equality is
            # answered there: with it, a workload matches on exactly one row (its pools are distinct).
            if op != "==":
                raise QueryError("filterBy", f"{term.source!r} cannot be answered per node pool")
            return text_predicate(self.c.nodepool, op, term.text)
        if name == "nodepool":
            positive = POSITIVE_FORM.get(op, op)
            exists = (
                sa.select(sa.literal(1))
                .where(workload_nodepools.c.workload_id == self.c.id)
                .where(text_predicate(workload_nodepools.c.name, positive, term.text))
                # Its own scan of the pools, even inside a query that joins them (telemetry groups
                # by pool): correlated on the workload only.
                .correlate_except(workload_nodepools)
                .exists()
            )
            return sa.not_(exists) if op in NEGATIVE_OPERATORS else exists
        if name == "name" and op in SUBSTRING_OPERATORS:
            return self._substring("name", op, term.text)
        column = self.c[_column(name)]
        if op in SUBSTRING_OPERATORS and _column(name) in self.values:
            # ``text_matches`` is this predicate in Python (held equal by a differential test).
            return column.in_([v for v in self.values[_column(name)] if text_matches(op, term.text, v)])
        if term.field.kind is Kind.TEXT:
            return text_predicate(column, op, term.text)
        # In the bounded walk the range holds on some rows visited, however its statistics judge
        # it beside the walk's bound (``SqlDialect.unordered``).
        subject = (
            self.dialect.unordered(column) if self.ranges_unindexed and op in RANGE_OPERATORS else column
        )
        if term.field.kind is Kind.TIME:
            predicate = time_predicate(subject, op, term.number)
            if name == "completedAt" and op in RANGE_OPERATORS and not self.ranges_unindexed:
                # The days of completion it implies: its live rows found by the day index's leading
                # key (a count reads the range's entries alone).
                return sa.and_(predicate, day_bound(self.c.completed_at, op, term.number))
            return predicate
        return number_predicate(subject, op, term.number)

    def _pool_terms(self, terms: list[Term]) -> sa.ColumnElement[bool]:
        """Several node-pool terms in one correlated subquery over the workload's pools: for each
        term, whether any pool satisfies its positive form, negated for ``!=``/``!@``. (One EXISTS
        per term, as ``term`` gives a single one, is one semi- or anti-join each, and PostgreSQL's
        planner weighs join orders among them: 0.7 s of planning for 32 terms.) With no pools the
        aggregates are NULL and coalesce to "no pool matches", as NOT EXISTS would say."""
        holds = []
        for term in terms:
            positive = POSITIVE_FORM.get(term.op, term.op)
            matched = sa.func.coalesce(
                sa.func.max(
                    sa.case((text_predicate(workload_nodepools.c.name, positive, term.text), 1), else_=0)
                ),
                0,
            )
            holds.append(matched == 0 if term.op in NEGATIVE_OPERATORS else matched == 1)
        return (
            sa.select(sa.and_(*holds))
            .where(workload_nodepools.c.workload_id == self.c.id)
            .correlate_except(workload_nodepools)
            .scalar_subquery()
        ) == sa.true()

    def _substring(self, column: TextColumn, op: str, value: str) -> sa.ColumnElement[bool]:
        """A positive substring predicate on the name or the search text, as the database answers it
        best (``SqlDialect.substrings``: on PostgreSQL through its trigram index). ``!@`` stays a plain
        predicate: no trigram index can answer NOT LIKE."""
        return self._substrings([(column, op, value)])

    def _substrings(self, parts: list[tuple[TextColumn, str, str]]) -> sa.ColumnElement[bool]:
        """All of ``parts`` (column, operator, value) as ``_substring`` gives each, in one look-up."""
        plain = [
            (c, _like(self.c[c], op, v, folded=c == "search_text"), like_pattern(op, v)) for c, op, v in parts
        ]
        if self.table is not workloads:
            return sa.and_(*(p for _c, p, _pattern in plain))
        return self.dialect.substrings(plain)

    @staticmethod
    def _word_in_names(word: str) -> bool:
        """Whether a search word is part of a phase's or a category's name (so it also matches those)."""
        return any(text_matches("=@", word, p.value) for p in Phase) or any(
            text_matches("=@", word, c.name) for c in CATEGORIES
        )

    def phase_in(self, phases: frozenset[str]) -> sa.ColumnElement[bool]:
        """The phase is one of ``phases`` (telemetry's ``filterByPhases``)."""
        return self.c.phase.in_(sorted(phases))

    def search_word(self, word: str) -> sa.ColumnElement[bool]:
        # search_text is stored case-folded; the category is matched through the catalog and the phase
        # against the phases whose name contains the word (neither is in search_text).
        phases = [p.value for p in Phase if text_matches("=@", word, p.value)]
        in_names = self._word_in_names(word)
        # A word that is also part of a category or phase name can only be an OR of the three, and under
        # an OR PostgreSQL cannot join the trigram side table: it would look it up once per row (seconds
        # for a count of a million). Such a word (a fragment of "Running", "Train") is rarely selective
        # anyway, so it keeps the plain predicate, which needs no index.
        text = (
            _like(self.c.search_text, "=@", word, folded=True)
            if in_names
            else self._substring("search_text", "=@", word)
        )
        clauses = [text, self._category(lambda v: text_matches("=@", word, v))]
        if phases:
            clauses.append(self.c.phase.in_(phases))
        return sa.or_(*clauses)

    def where(self, query: WorkloadQuery) -> list[sa.ColumnElement[bool]]:
        self.live = not query.deleted
        clauses: list[sa.ColumnElement[bool]] = [
            self.c.deleted_at.is_not(None) if query.deleted else self.c.deleted_at.is_(None)
        ]
        if not query.scope.tenant:
            unindexed = self.dialect.unindexed if self.scope_unindexed else None
            clauses.append(restrict(self.table, query.scope, unindexed))
        # The positive substrings of names and search words go into one look-up (``_substrings``): on
        # PostgreSQL one EXISTS on the trigram side table, whatever the number of terms and words.
        indexed: list[tuple[TextColumn, str, str]] = []
        pools: list[Term] = []
        for term in query.terms:
            if term.field.name == "name" and term.op in SUBSTRING_OPERATORS:
                indexed.append(("name", term.op, term.text))
            elif term.field.name == "nodepool" and "nodepool" not in self.c:
                pools.append(term)
            else:
                clauses.append(self.term(term))
        if len(pools) == 1:
            clauses.append(self.term(pools[0]))
        elif pools:
            clauses.append(self._pool_terms(pools))
        for word in query.words:
            if self._word_in_names(word):
                clauses.append(self.search_word(word))
            else:  # ``search_word`` of such a word is its substring alone (the other clauses are false)
                indexed.append(("search_text", "=@", word))
        if indexed:
            clauses.append(self._substrings(indexed))
        return clauses

    # --- sorting -----------------------------------------------------------------------------
    def sort_key(self, field: str) -> sa.ColumnElement[Any]:
        column = FIELDS[field].column if field in FIELDS else None
        if column is not None:
            return self.c[column]
        match field:
            case "category":
                return self.category_expr()
            case "priorityClassName":
                return self.priority_name_expr()
            case "priority":
                return self.priority_value_expr()
            case "totalPendingTimeSeconds" | "totalRunningTimeSeconds":
                # Whole seconds, as served: equal served values tie and fall back to the id.
                return self.elapsed_seconds_expr(field)
            case "nodepool":
                return self.c.first_nodepool
        raise QueryError("sortBy", f"cannot sort by {field!r}")

    def order_by(
        self, sort: Sort, unindexed: bool = False, unordered: bool = False
    ) -> list[sa.ColumnElement[Any]]:
        """``unindexed``: the selection is small, and is best looked up by its filters' indexes and
        sorted, not found by walking the order's own index (``store.ordering.few_matches``).
        ``unordered``: so even where statistics say otherwise (``SqlDialect.unordered``)."""
        key = self.sort_key(sort.field)
        if unordered:
            key = self.dialect.unordered(key)
        elif unindexed:
            key = self.dialect.unindexed(key)
        descending = sort.order is SortOrder.DESC
        ordered = key.desc() if descending else key.asc()
        tie = self.c.id.desc() if descending else self.c.id.asc()
        if not FIELDS[sort.field].nullable:
            return [ordered, tie]
        # Rows without a value come last in both directions.
        return [ordered.nulls_last(), tie]


def _same(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return column


def _column(field: str) -> str:
    """The stored column of a field that has one (``domain.fields``)."""
    column = FIELDS[field].column
    assert column is not None, field
    return column
