"""Unit tests of ``workplane.query.filters`` and a differential test of the SQL against them.

The differential test builds small random inventories and random filter / search / sort requests,
and compares what the SQL answers with a pure-Python evaluation built on ``text_matches`` /
``number_matches`` and the record values: the two implementations of one semantics must agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _wipe
from tests.factories import CLUSTER, at, load, workload
from workplane.api.params import parse_sort
from workplane.domain import catalog as defaults
from workplane.domain.catalog import CatalogSnapshot, TypeDefaults
from workplane.domain.phases import PhaseClock
from workplane.domain.record import WorkloadIn, allocated_gpu
from workplane.domain.scopes import ScopeSet
from workplane.domain.text import fold
from workplane.domain.timefmt import format_ms, to_ms
from workplane.query.filters import (
    CLOSED_SETS,
    FIELDS,
    MAX_VALUE_LENGTH,
    NEGATIVE_OPERATORS,
    OPERATORS,
    ORDERED_OPERATORS,
    Kind,
    QueryError,
    Sort,
    SortOrder,
    Term,
    WorkloadQuery,
    number_matches,
    parse_filter,
    parse_search,
    parse_term,
    split_terms,
    text_matches,
)
from workplane.settings import Settings
from workplane.store import workloads as store
from workplane.store.compile import Compiler
from workplane.store.database import Database, create_database
from workplane.store.dialects import SQLITE
from workplane.store.schema import clusters, departments, projects, workloads

EVERYTHING = ScopeSet.everything()

# --- splitting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "terms"),
    [
        (["name==a"], ["name==a"]),
        (["name=@a,b,phase==Running"], ["name=@a,b", "phase==Running"]),
        (["name==a,b"], ["name==a,b"]),
        (["name==a,,b"], ["name==a,,b"]),
        (["name==a,"], ["name==a,"]),
        (["name==a, phase==Running"], ["name==a, phase==Running"]),  # a space: not a new term
        (["name==a,1x==b"], ["name==a,1x==b"]),  # not an identifier
        (["name==a,x=b"], ["name==a,x=b"]),  # no operator
        (["name==a,bogus==b"], ["name==a", "bogus==b"]),  # an identifier and an operator: a term
        (["name==a,phase==x,type!@y"], ["name==a", "phase==x", "type!@y"]),
        (["name==a", "phase==b,type==c"], ["name==a", "phase==b", "type==c"]),
        (["", "name==a", ""], ["name==a"]),
        ([], []),
        (["name=@=@,=@"], ["name=@=@,=@"]),
        (["name====,x"], ["name====,x"]),
    ],
)
def test_split_terms(raw: list[str], terms: list[str]) -> None:
    assert split_terms(raw) == terms


def test_every_operator_starts_a_term_after_a_comma() -> None:
    for op in OPERATORS:
        assert split_terms([f"name==a,phase{op}b"]) == ["name==a", f"phase{op}b"]


def test_parse_term_fields_and_values() -> None:
    term = parse_term("name===x")
    assert (term.field.name, term.op, term.text) == ("name", "==", "=x")
    term = parse_term("name==a==b")
    assert (term.op, term.text) == ("==", "a==b")
    assert parse_term("allocatedGPU>=0.5").number == 0.5
    assert parse_term("priority<=-1e2").number == -100.0
    assert parse_term("createdAt>=2024-05-01T14:00:00+02:00").number == to_ms(at("2024-05-01T12:00:00Z"))
    assert parse_term("createdAt>=2024-05-01").number == to_ms(at("2024-05-01T00:00:00Z"))
    # A time keeps its sub-millisecond part, so it compares exactly against stored milliseconds.
    assert (
        parse_term("createdAt>=2024-05-01T00:00:00.0005Z").number == to_ms(at("2024-05-01T00:00:00Z")) + 0.5
    )
    # An unencoded "+" arrives as a space: still the same offset.
    assert parse_term("createdAt>=2024-05-01T14:00:00 02:00").number == to_ms(at("2024-05-01T12:00:00Z"))
    assert parse_term("nodepool!@x").field.kind is Kind.TEXT_LIST


# --- errors ---------------------------------------------------------------------------------------

BAD_TERMS = [
    ("bogus==1", "unknown field"),
    ("Name==a", "unknown field"),  # field names are case-sensitive
    ("name", "not <field><operator><value>"),
    ("name=a", "not <field><operator><value>"),
    ("name<a", "not <field><operator><value>"),
    ("==a", "not <field><operator><value>"),
    (" name==a", "not <field><operator><value>"),
    (",", "not <field><operator><value>"),
    ("name==", "empty"),
    ("nodepool!@", "empty"),
    ("createdAt>=", "empty"),
    ("name==a\x00b", "NUL"),
    # A closed set's impossible value is a typo, not an empty answer (docs/decisions/0014).
    ("phase==running", "Running"),
    ("phase==Runing", "one of"),
    ("phase!=Running,", "one of"),
    ("category==train", "Train"),
    ("priorityClassName!=Low", "one of"),
    *[(f"createdAt{op}2024-05-01", "does not apply") for op in ("=@", "!@", "=^", "=$")],
    *[(f"allocatedGPU{op}1", "does not apply") for op in ("=@", "!@", "=^", "=$")],
    *[(f"totalPendingTimeSeconds{op}1", "does not apply") for op in ("=@", "!@", "=^", "=$")],
    *[(f"priority{op}1", "does not apply") for op in ("=@", "!@", "=^", "=$")],
    ("createdAt>=yesterday", "not an RFC 3339 time"),
    ("createdAt>=2024-02-30", "not an RFC 3339 time"),
    ("createdAt>=2024-05-01T25:00:00Z", "not an RFC 3339 time"),
    ("createdAt>=0001-01-01T00:00:00+02:00", "not an RFC 3339 time"),  # before year 1 in UTC
    ("createdAt>=9999-12-31T23:00:00-02:00", "not an RFC 3339 time"),  # after year 9999 in UTC
    ("createdAt>=1714564800000", "not an RFC 3339 time"),
    *[
        (f"allocatedGPU>={v}", "number")
        for v in (
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Infinity",
            "1e999",
            "one",
            "1_000",
            " 1",
            "1 ",
            "0x10",
            "1,5",
            "--1",
            "١",
        )
    ],
]


@pytest.mark.parametrize(("text", "complaint"), BAD_TERMS)
def test_bad_terms_raise_query_error_naming_filter_by(text: str, complaint: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_filter([text])
    assert caught.value.param == "filterBy"
    assert complaint in caught.value.message
    assert repr(text) in caught.value.message


def test_value_length_limit() -> None:
    assert parse_term("name=@" + "%" * MAX_VALUE_LENGTH).text == "%" * MAX_VALUE_LENGTH
    with pytest.raises(QueryError, match="longer than") as caught:
        parse_term("name=@" + "%" * (MAX_VALUE_LENGTH + 1))
    assert caught.value.param == "filterBy"
    assert parse_search("a" * MAX_VALUE_LENGTH) == ["a" * MAX_VALUE_LENGTH]
    with pytest.raises(QueryError, match="longer than") as caught:
        parse_search("a " * MAX_VALUE_LENGTH)
    assert caught.value.param == "search"


def test_a_bad_term_anywhere_fails_the_whole_filter() -> None:
    with pytest.raises(QueryError, match="unknown field 'bogus'"):
        parse_filter(["name==a", "phase==Running,bogus==1"])


def test_search_words() -> None:
    assert parse_search(None) == []
    assert parse_search("") == []
    assert parse_search("   ") == []
    assert parse_search(" Alpha  BETA\tgamma\n") == ["alpha", "beta", "gamma"]
    assert parse_search("50%_Off É") == ["50%_off", "É"]  # ASCII folding only
    with pytest.raises(QueryError) as caught:
        parse_search("a\x00b")
    assert caught.value.param == "search"


def test_sort_fields() -> None:
    for name in FIELDS:
        assert parse_sort(name, None).field == name
    with pytest.raises(QueryError) as caught:
        parse_sort("bogus", None)
    assert caught.value.param == "sortBy"
    compiler = Compiler(CatalogSnapshot(types={}, version=0), 0, SQLITE)
    with pytest.raises(QueryError):
        compiler.sort_key("bogus")


# --- text_matches / number_matches ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "subject", "holds"),
    [
        ("==", "abc", "abc", True),
        ("==", "abc", "ABC", False),
        ("!=", "abc", "ABC", True),
        ("!=", "abc", "abc", False),
        ("=@", "B", "abc", True),
        ("=@", "b", "ABC", True),
        ("!@", "B", "abc", False),
        ("!@", "x", "abc", True),
        ("=^", "AB", "abc", True),
        ("=^", "bc", "abc", False),
        ("=$", "BC", "abc", True),
        ("=$", "ab", "abc", False),
        ("<=", "abc", "abc", True),
        ("<=", "abc", "abd", False),
        ("<=", "a", "B", True),  # code points: "B" (66) < "a" (97)
        (">=", "a", "B", False),
        (">=", "z", "é", True),  # "é" (233) > "z" (122)
        ("=@", "%", "a%b", True),
        ("=@", "%", "ab", False),
        ("=@", "_", "ab", False),
        ("=@", "\\", "a\\b", True),
        ("=@", "é", "É", False),  # ASCII-only case folding
        ("=@", "É", "É", True),
        *[(op, "x", None, op in NEGATIVE_OPERATORS) for op in OPERATORS],
    ],
)
def test_text_matches(op: str, value: str, subject: str | None, holds: bool) -> None:
    assert text_matches(op, value, subject) is holds


@pytest.mark.parametrize(
    ("op", "value", "subject", "holds"),
    [
        ("==", 1.0, 1.0, True),
        ("==", 1.0, 1.5, False),
        ("!=", 1.0, 1.5, True),
        ("<=", 1.0, 1.0, True),
        ("<=", 1.0, 0.5, True),
        ("<=", 1.0, 1.5, False),
        (">=", 1.0, 1.5, True),
        (">=", 1.0, 0.5, False),
        *[(op, 1.0, None, op == "!=") for op in sorted(ORDERED_OPERATORS)],
    ],
)
def test_number_matches(op: str, value: float, subject: float | None, holds: bool) -> None:
    assert number_matches(op, value, subject) is holds


# --- the differential test ------------------------------------------------------------------------

NOW_MS = to_ms(at("2024-05-01T01:00:00Z"))
BASE_MS = NOW_MS - 3_600_000
INSTANTS = [BASE_MS + d for d in (0, 1, 999, 1000, 1500, 60_000)]
TEXT_ALPHABET = ["a", "A", "b", "B", "%", "_", "\\", ",", "é", "É", "z", " "]
POOLS = ["p", "P", "p%", "q_", "é"]
TYPES = ["Training", "Workspace", "Inference"]
PHASES = ["Pending", "Running", "Completed", "Stopped"]
SEARCH_FIELDS = ("name", "projectName", "departmentName", "submittedBy", "type", "category", "phase")


def default_catalog() -> CatalogSnapshot:
    types = {
        name: TypeDefaults(name, category, defaults.CATEGORY_BY_NAME[category].default_priority)
        for name, _group, category in (*defaults.NATIVE_TYPES, *defaults.EXTERNAL_TYPES)
    }
    return CatalogSnapshot(types=types, version=0)


CATALOG = default_catalog()

text = st.lists(st.sampled_from(TEXT_ALPHABET), min_size=1, max_size=4).map("".join)


@dataclass
class Item:
    record: WorkloadIn
    deleted_ms: int | None


@st.composite
def items(draw: st.DrawFn, index: int) -> Item:
    phase = draw(st.sampled_from(PHASES))
    # Phase changes up to 3 s before now, or 1 s after it (a cluster clock ahead of ours).
    phase_at = NOW_MS + draw(st.sampled_from([-3000, -2500, -1000, -1, 0, 1000]))
    fields: dict[str, Any] = {
        "name": draw(text),
        "projectName": draw(st.sampled_from(["p-a", "P-B"])),
        "departmentName": draw(st.sampled_from(["d", "D%"])),
        "type": draw(st.sampled_from(TYPES)),
        "category": draw(st.none() | st.sampled_from([c.name for c in defaults.CATEGORIES])),
        "priorityClassName": draw(st.none() | st.sampled_from([p.name for p in defaults.PRIORITIES])),
        "submittedBy": draw(st.none() | text),
        "distributedFramework": draw(st.none() | text),
        "phase": phase,
        "createdAt": format_ms(draw(st.sampled_from(INSTANTS))),
        "phaseUpdatedAt": format_ms(phase_at),
        "totalPendingTimeSeconds": draw(st.integers(0, 2)),
        "totalRunningTimeSeconds": draw(st.integers(0, 2)),
        "allocatedResources": draw(st.none() | st.sampled_from([0, 0.5, 1, 2]).map(lambda g: {"gpu": g})),
        "idleGpus": draw(st.none() | st.integers(0, 2)),
        "currentNodePools": draw(st.lists(st.sampled_from(POOLS), max_size=2)),
        "images": draw(st.lists(text, max_size=1)),
    }
    deleted = draw(st.none() | st.sampled_from([NOW_MS - 2000, NOW_MS - 500]))
    return Item(workload(f"item-{index}", **fields), deleted)


@st.composite
def inventories(draw: st.DrawFn) -> list[Item]:
    size = draw(st.integers(1, 6))
    return [draw(items(i)) for i in range(size)]


NUMBER_VALUES = {
    "allocatedGPU": [-1, 0, 0.5, 1, 1.5, 2],
    "idleGpus": [0, 1, 1.5, 2],
    "idleAllocatedGpus": [0, 1],
    "priority": [25, 40, 64.5, 80, 100, 125, 150],
    "totalPendingTimeSeconds": [0, 0.5, 1, 1.5, 2, 3, 4, 5],
    "totalRunningTimeSeconds": [0, 1, 2, 2.5, 3, 4],
}
FILTER_FIELDS = [f for f in FIELDS if f not in ("clusterId", "projectId", "departmentId", "aiApplicationId")]


@st.composite
def terms(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(FILTER_FIELDS))
    kind = FIELDS[name].kind
    if kind in (Kind.TEXT, Kind.TEXT_LIST):
        op = draw(st.sampled_from(OPERATORS))
        if name == "category":
            value = draw(st.sampled_from(["Train", "train", "Build", "ai", "D", "x"]))
        elif name == "priorityClassName":
            value = draw(st.sampled_from(["low", "LOW", "high", "medium", "very", "-"]))
        elif name == "phase":
            value = draw(st.sampled_from([*PHASES, "running", "n", "P"]))
        elif name == "type":
            value = draw(st.sampled_from([*TYPES, "ing", "W"]))
        elif name == "nodepool":
            value = draw(st.sampled_from([*POOLS, "%", "_"]))
        else:
            value = draw(text)
        closed = CLOSED_SETS.get(name)
        if closed is not None and op in ("==", "!=") and value not in closed:
            value = draw(st.sampled_from(sorted(closed)))  # anything else is a 400, tested above
        return f"{name}{op}{value}"
    op = draw(st.sampled_from(sorted(ORDERED_OPERATORS)))
    if kind is Kind.TIME:
        ms = draw(st.sampled_from([*INSTANTS, NOW_MS - 2000, NOW_MS - 500])) + draw(
            st.sampled_from([-1, 0, 1])
        )
        return f"{name}{op}{format_ms(ms)}"
    return f"{name}{op}{draw(st.sampled_from(NUMBER_VALUES[name]))}"


def _values(item: Item) -> dict[str, Any]:
    """Every filterable value of an item, as served (None: no value)."""
    r = item.record
    clock = PhaseClock.start(
        r.phase,
        to_ms(r.phase_updated_at or r.created_at),
        r.total_pending_time_seconds * 1000,
        r.total_running_time_seconds * 1000,
    )
    if item.deleted_ms is not None:
        clock = clock.stop(item.deleted_ms)
    priority = CATALOG.priority_of(r.type, r.priority_class_name)
    gpu = allocated_gpu(r)
    return {
        "type": r.type,
        "name": r.name,
        "clusterId": str(r.cluster_id),
        "projectId": r.project_id,
        "departmentId": r.department_id,
        "aiApplicationId": r.ai_application_id,
        "projectName": r.project_name,
        "departmentName": r.department_name,
        "submittedBy": r.submitted_by,
        "phase": str(r.phase),
        "distributedFramework": r.distributed_framework,
        "category": CATALOG.category_of(r.type, r.category),
        "priorityClassName": priority.name if priority else None,
        "aiApplicationName": r.ai_application_name,
        "createdAt": to_ms(r.created_at),
        "deletedAt": item.deleted_ms,
        "completedAt": to_ms(r.phase_updated_at or r.created_at)
        if r.phase in ("Completed", "Failed")
        else None,
        "phaseUpdatedAt": to_ms(r.phase_updated_at or r.created_at),
        "guaranteedRuntimeEndsAt": None,
        "allocatedGPU": gpu,
        "idleGpus": r.idle_gpus,
        "idleAllocatedGpus": r.idle_allocated_gpus,
        "totalPendingTimeSeconds": clock.pending_seconds(NOW_MS),
        "totalRunningTimeSeconds": clock.running_seconds(NOW_MS),
        "priority": priority.value if priority else None,
        "nodepool": r.current_node_pools,
        "namespace": r.namespace or f"runai-{r.project_name}",
        "images": r.images,
    }


def holds(term: Term, values: dict[str, Any]) -> bool:
    subject = values[term.field.name]
    kind = term.field.kind
    if kind is Kind.TEXT:
        return text_matches(term.op, term.text, subject)
    if kind is Kind.TEXT_LIST:
        if term.op in NEGATIVE_OPERATORS:
            positive = {"!=": "==", "!@": "=@"}[term.op]
            return not any(text_matches(positive, term.text, p) for p in subject)
        return any(text_matches(term.op, term.text, p) for p in subject)
    return number_matches(term.op, term.number, subject)


def found(word: str, values: dict[str, Any]) -> bool:
    haystack = [values[f] for f in SEARCH_FIELDS] + [values["namespace"], *values["images"]]
    return any(word in fold(h) for h in haystack if h is not None)


def python_order(field: str, order: SortOrder, matching: list[tuple[str, dict[str, Any]]]) -> list[str]:
    def key_value(values: dict[str, Any]) -> Any:
        v = values[field]
        return (v[0] if v else None) if field == "nodepool" else v

    descending = order is SortOrder.DESC
    with_value = [(i, v) for i, v in matching if key_value(v) is not None]
    without = [i for i, v in matching if key_value(v) is None]
    with_value.sort(key=lambda iv: (key_value(iv[1]), iv[0]), reverse=descending)
    return [i for i, _ in with_value] + sorted(without, reverse=descending)


@pytest.fixture(scope="module")
def differential_db(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = create_database(
        Settings(
            data_dir=tmp_path_factory.mktemp("differential"), database_url=backend_url, migrate_on_start=False
        )
    )
    _wipe(db)
    yield db
    db.dispose()


@pytest.mark.no_cover
@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    inventory=inventories(),
    filters=st.lists(terms(), max_size=3),
    search=st.none()
    | st.lists(st.sampled_from([*TEXT_ALPHABET[:-1], "runai-", "ing", "TRAIN", "p-"]), max_size=2),
    deleted=st.booleans(),
    sort=st.tuples(
        st.sampled_from([f for f in FIELDS if f not in ("clusterId",)]), st.sampled_from(list(SortOrder))
    ),
)
def test_sql_agrees_with_python(
    differential_db: Database,
    inventory: list[Item],
    filters: list[str],
    search: list[str] | None,
    deleted: bool,
    sort: tuple[str, SortOrder],
) -> None:
    db = differential_db
    with db.write() as conn:
        for table in (workloads, projects, departments, clusters):
            conn.execute(table.delete())
        store.create_workloads(
            conn, [i.record for i in inventory], catalog=CATALOG, tenant_id=1, now_ms=NOW_MS
        )
        for i in inventory:
            if i.deleted_ms is not None:
                store.delete_workload(conn, str(i.record.id), deleted_at_ms=i.deleted_ms)

    parsed = [parse_term(t) for t in filters]
    words = parse_search(" ".join(search) if search else None)
    query = WorkloadQuery(scope=EVERYTHING, deleted=deleted, terms=parsed, words=words)
    field, order = sort
    with db.read() as conn:
        page = store.list_workloads(
            conn, query, sort=Sort(field, order), offset=0, limit=100, catalog=CATALOG, now_ms=NOW_MS
        )
        count = store.count_workloads(conn, query, catalog=CATALOG, now_ms=NOW_MS)

    matching = []
    for item in inventory:
        values = _values(item)
        if (item.deleted_ms is not None) != deleted:
            continue
        if all(holds(t, values) for t in parsed) and all(found(w, values) for w in words):
            matching.append((str(item.record.id), values))
    expected = python_order(field, order, matching)
    assert [r.id for r in page.rows] == expected
    assert count == len(expected)


# --- through the API: errors name the parameter and the text; never a 5xx --------------------------


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"filterBy": "bogus==1"}, "filterBy"),
        ({"filterBy": "name"}, "filterBy"),
        ({"filterBy": "name=="}, "filterBy"),
        ({"filterBy": "createdAt=@2024"}, "filterBy"),
        ({"filterBy": "createdAt>=yesterday"}, "filterBy"),
        ({"filterBy": "createdAt>=0001-01-01T00:00:00+02:00"}, "filterBy"),
        ({"filterBy": "allocatedGPU>=NaN"}, "filterBy"),
        ({"filterBy": "allocatedGPU>=inf"}, "filterBy"),
        ({"filterBy": "priority!@1"}, "filterBy"),
        ({"filterBy": "name==a\x00"}, "filterBy"),
        ({"filterBy": ["name==a", "phase==Running,bogus==x"]}, "filterBy"),
        ({"search": "a\x00"}, "search"),
        ({"search": "x " * 2_000}, "search"),
        ({"filterBy": "name=@" + "%" * 5_000}, "filterBy"),
        ({"sortBy": "bogus"}, "sortBy"),
    ],
)
def test_api_rejects_bad_queries(client: TestClient, params: dict[str, Any], names: str) -> None:
    for path in ("/api/v1/workloads", "/api/v1/workloads/count"):
        if path.endswith("count") and "sortBy" in params:
            continue
        answer = client.get(path, params=params)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["code"] == 400
        assert names in body["message"]


def test_api_huge_numbers_are_answered(client: TestClient, database: Database) -> None:
    """Out-of-range values are valid filters that match nothing (or everything): never a 5xx."""
    load(database, workload("a", phase="Pending", createdAt=at("2024-05-01T00:00:00Z"), idleGpus=1))
    for term, count in (
        ("totalPendingTimeSeconds>=1e300", 0),
        ("totalPendingTimeSeconds<=1e300", 1),
        ("totalRunningTimeSeconds<=-1e300", 0),
        ("totalRunningTimeSeconds==9223372036854775807", 0),
        ("totalRunningTimeSeconds!=9223372036854775808", 1),
        ("allocatedGPU>=1e308", 0),
        ("idleGpus<=-1e308", 0),
        ("idleGpus<=1e308", 1),
        ("priority>=1e308", 0),
    ):
        listed = client.get("/api/v1/workloads", params={"filterBy": term})
        assert listed.status_code == 200, (term, listed.text)
        assert len(listed.json()["workloads"]) == count, term
        counted = client.get("/api/v1/workloads/count", params={"filterBy": term})
        assert counted.status_code == 200, (term, counted.text)
        assert counted.json() == {"count": count}, term


def test_uuid_fields_are_plain_text() -> None:
    term = parse_term(f"clusterId=={CLUSTER}")
    assert term.field.kind is Kind.TEXT
    assert term.text == str(CLUSTER)
    assert math.isnan(term.number)


def test_api_reads_an_unencoded_plus_in_an_offset(client: TestClient, database: Database) -> None:
    """``?filterBy=createdAt>=2024-05-01T14:00:00+02:00`` typed as is: the "+" arrives as a space."""
    load(database, workload("a", createdAt=at("2024-05-01T12:00:00Z")))
    for op, count in (("==", 1), (">=", 1), ("<=", 1), ("!=", 0)):
        answer = client.get(f"/api/v1/workloads/count?filterBy=createdAt{op}2024-05-01T14:00:00+02:00")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"count": count}, op


def test_term_and_word_counts_are_bounded() -> None:
    from workplane.query.filters import MAX_SEARCH_WORDS, MAX_TERMS

    assert len(parse_filter(["name=@a"] * MAX_TERMS)) == MAX_TERMS
    with pytest.raises(QueryError, match=f"more than {MAX_TERMS} terms"):
        parse_filter(["name=@a"] * (MAX_TERMS + 1))
    with pytest.raises(QueryError, match=f"more than {MAX_TERMS} terms"):
        parse_filter([",".join(["name=@a"] * 1000)])  # one value, many terms
    assert len(parse_search(" ".join(["w"] * MAX_SEARCH_WORDS))) == MAX_SEARCH_WORDS
    with pytest.raises(QueryError, match=f"more than {MAX_SEARCH_WORDS} words"):
        parse_search(" ".join(["w"] * (MAX_SEARCH_WORDS + 1)))
