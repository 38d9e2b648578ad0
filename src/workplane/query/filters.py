"""Parsing of ``filterBy``, ``search`` and ``sortBy`` into typed terms (docs/contract.md §5).

Nothing here touches SQL; ``store.compile`` turns the terms into WHERE and ORDER BY clauses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum

from workplane.domain.catalog import CATEGORIES, PRIORITIES
from workplane.domain.fields import FIELDS, FieldSpec, Kind
from workplane.domain.phases import Phase
from workplane.domain.scopes import ScopeSet
from workplane.domain.text import fold
from workplane.domain.timefmt import InvalidTime, parse_time, to_ms_exact


class QueryError(ValueError):
    """A malformed query parameter; ``param`` names it for the 400 answer."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


OPERATORS = ("==", "!=", "<=", ">=", "=@", "!@", "=^", "=$")
ORDERED_OPERATORS = frozenset({"==", "!=", "<=", ">="})
NEGATIVE_OPERATORS = frozenset({"!=", "!@"})

# A term is <field><operator><value>. A comma splits terms only where what follows it starts a new
# term (an identifier directly followed by an operator); any other comma belongs to the value.
_OPS_RE = "|".join(re.escape(op) for op in OPERATORS)
_TERM_START = re.compile(rf"([A-Za-z][A-Za-z0-9]*)({_OPS_RE})")
_SPLIT = re.compile(rf",(?=[A-Za-z][A-Za-z0-9]*(?:{_OPS_RE}))")

# A number is a plain decimal literal (JSON's syntax, plus a leading "+" or "." and a trailing "."):
# no white space, no "_" digit separators, no hex, no nan/inf.
_NUMBER_LITERAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


# The longest filter value or search text accepted (characters).
MAX_VALUE_LENGTH = 1024
# The most filter terms (all filterBy values together) and search words one request may give. Each
# is a predicate over the whole inventory; without a bound one request could ask for unbounded work.
# The dashboard and the official client send a handful.
MAX_TERMS = 32
MAX_SEARCH_WORDS = 16

# Text fields whose values form a closed set: ``==``/``!=`` with any other value can never match (or
# always does), which is a typo to report, not an empty answer to give (docs/decisions/0014).
CLOSED_SETS: dict[str, tuple[str, ...]] = {
    "phase": tuple(p.value for p in Phase),
    "category": tuple(c.name for c in CATEGORIES),
    "priorityClassName": tuple(p.name for p in PRIORITIES),
}


@dataclass(frozen=True, slots=True)
class Term:
    field: FieldSpec
    op: str
    text: str  # the value as written
    number: float = math.nan  # the parsed value of a NUMBER field, or a TIME field in epoch ms

    @property
    def source(self) -> str:
        return f"{self.field.name}{self.op}{self.text}"


def split_terms(raw_values: list[str], param: str = "filterBy") -> list[str]:
    terms: list[str] = []
    for raw in raw_values:
        if raw == "":
            continue
        terms.extend(_SPLIT.split(raw))
        if len(terms) > MAX_TERMS:
            raise QueryError(param, f"more than {MAX_TERMS} terms; combine or narrow them")
    return terms


def parse_term(text: str, param: str = "filterBy", fields: dict[str, FieldSpec] | None = None) -> Term:
    match = _TERM_START.match(text)
    if match is None:
        raise QueryError(param, f"term {text!r} is not <field><operator><value>")
    name, op = match.group(1), match.group(2)
    value = text[match.end() :]
    spec = (fields if fields is not None else FIELDS).get(name)
    if spec is None:
        raise QueryError(param, f"term {text!r}: unknown field {name!r}")
    if value == "":
        raise QueryError(param, f"term {text!r}: the value is empty")
    if "\x00" in value:
        # No stored text can contain NUL (PostgreSQL rejects it), and it must not reach SQL.
        raise QueryError(param, f"term {text!r}: the value contains a NUL character")
    if len(value) > MAX_VALUE_LENGTH:
        # Longer than any stored name; also keeps LIKE patterns within SQLite's pattern limit.
        raise QueryError(param, f"term {text[:40]!r}...: the value is longer than {MAX_VALUE_LENGTH}")
    if spec.kind in (Kind.TIME, Kind.NUMBER) and op not in ORDERED_OPERATORS:
        raise QueryError(
            param,
            f"term {text!r}: operator {op} does not apply to the {spec.kind.value} field {name}",
        )
    allowed = CLOSED_SETS.get(name)
    if allowed is not None and op in ("==", "!=") and value not in allowed:
        raise QueryError(param, f"term {text!r}: {name} is one of {', '.join(allowed)} (case-sensitive)")
    if spec.kind is Kind.TIME:
        try:
            return Term(spec, op, value, to_ms_exact(parse_time(value)))
        except InvalidTime as exc:
            raise QueryError(param, f"term {text!r}: {value!r} is not an RFC 3339 time") from exc
    if spec.kind is Kind.NUMBER:
        number = float(value) if _NUMBER_LITERAL.fullmatch(value) else math.nan
        if not math.isfinite(number):
            raise QueryError(param, f"term {text!r}: {value!r} is not a finite decimal number")
        return Term(spec, op, value, number)
    return Term(spec, op, value)


def parse_filter(
    raw_values: list[str], param: str = "filterBy", fields: dict[str, FieldSpec] | None = None
) -> list[Term]:
    return [parse_term(t, param, fields) for t in split_terms(raw_values, param)]


def parse_search(text: str | None, param: str = "search") -> list[str]:
    """Words of ``search`` (split on white space), case-folded; each must occur in some searchable
    field."""
    if not text:
        return []
    if "\x00" in text:
        raise QueryError(param, f"{text!r} contains a NUL character")
    if len(text) > MAX_VALUE_LENGTH:
        raise QueryError(param, f"{text[:40]!r}... is longer than {MAX_VALUE_LENGTH}")
    words = text.split()
    if len(words) > MAX_SEARCH_WORDS:
        raise QueryError(param, f"more than {MAX_SEARCH_WORDS} words")
    return [fold(w) for w in words]


def text_matches(op: str, value: str, subject: str | None) -> bool:
    """The text-operator semantics, evaluated in Python (for values resolved through the catalog).
    Must agree exactly with ``compile.text_predicate``."""
    if subject is None:
        return op in NEGATIVE_OPERATORS
    folded, needle = fold(subject), fold(value)
    match op:
        case "==":
            return subject == value
        case "!=":
            return subject != value
        case "<=":
            return subject <= value
        case ">=":
            return subject >= value
        case "=@":
            return needle in folded
        case "!@":
            return needle not in folded
        case "=^":
            return folded.startswith(needle)
        case "=$":
            return folded.endswith(needle)
    raise AssertionError(op)


def number_matches(op: str, value: float, subject: float | None) -> bool:
    if subject is None:
        return op == "!="
    match op:
        case "==":
            return subject == value
        case "!=":
            return subject != value
        case "<=":
            return subject <= value
        case ">=":
            return subject >= value
    raise AssertionError(op)


class SortOrder(Enum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class Sort:
    field: str = "createdAt"
    order: SortOrder = SortOrder.ASC


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadQuery:
    """Everything that selects workloads: shared by list, count and telemetry."""

    # The caller's scopes (``domain.scopes``), always given: the API takes them from the caller's
    # access rules; the server's own readers (retention, tests, benchmarks) say
    # ``ScopeSet.everything()`` in so many words. No default, so a reader that forgets reads nothing.
    scope: ScopeSet
    deleted: bool = False
    terms: list[Term] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    @property
    def substring_work(self) -> int:
        """How many substring predicates the query asks for (contains, starts/ends-with terms and
        search words): what no ordinary index answers, so what makes a read scan."""
        return len(self.words) + sum(1 for t in self.terms if t.op not in ORDERED_OPERATORS)
