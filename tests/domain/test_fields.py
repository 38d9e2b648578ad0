"""The field registry agrees with what is stored: the store's columns, the record that fills them, the
search haystack and the live-count rollup."""

from __future__ import annotations

from tests.factories import workload
from workplane.domain.fields import FIELDS, WORKLOAD_FIELDS
from workplane.domain.phases import PhaseClock
from workplane.domain.record import build_row
from workplane.domain.text import fold
from workplane.store.schema import workload_counts, workloads


def test_each_stored_field_names_its_column_and_its_nullability() -> None:
    for field in WORKLOAD_FIELDS:
        if field.column is not None:
            assert workloads.c[field.column].nullable == field.nullable, field.name


def test_countable_fields_are_held_by_the_rollup() -> None:
    """A countable field is a column of ``workload_counts``, or resolved through the catalog from the
    columns the rollup keeps (own category and priority, type)."""
    for field in WORKLOAD_FIELDS:
        if not field.countable:
            continue
        if field.column is not None:
            assert field.column in workload_counts.c, field.name
        else:
            assert field.name in ("category", "priority", "priorityClassName"), field.name
            assert {"own_category", "own_priority", "type"} <= set(workload_counts.c.keys())


def test_names_are_unique() -> None:
    assert len(FIELDS) == len(WORKLOAD_FIELDS)


def _row_of(**fields: object) -> dict[str, object]:
    w = workload("registry-row", **fields)
    return build_row(
        w,
        workload_id=str(w.id),
        tenant_id=1,
        clock=PhaseClock.start(str(w.phase), 0),
        updated_at_ms=0,
        deleted_at_ms=None,
        completed_at_ms=None,
    )


def test_each_stored_field_is_written_by_the_record() -> None:
    """``build_row`` fills every column the registry reads, so a new field cannot be filtered on a
    column no observation ever writes."""
    row = _row_of()
    for field in WORKLOAD_FIELDS:
        if field.column is not None:
            assert field.column in row, field.name


def test_each_searchable_stored_field_is_in_the_search_text() -> None:
    """``search`` matches a searchable field's value: the stored haystack holds each one (the phase
    and the catalog-resolved category are matched against their few names by the compiler instead)."""
    values = {
        "name": "Alpha-Name",
        "projectName": "Bravo-Project",
        "departmentName": "Charlie-Dept",
        "submittedBy": "Delta@Example.com",
        "type": "EchoType",
    }
    haystack = _row_of(**values)["search_text"]
    assert isinstance(haystack, str)
    searched = [f for f in WORKLOAD_FIELDS if f.searchable and f.column is not None and f.name != "phase"]
    assert {f.name for f in searched} == set(values)
    for field in searched:
        assert fold(values[field.name]) in haystack, field.name
    unsearched = {"distributedFramework": "Foxtrot-Framework", "aiApplicationName": "Golf-App"}
    haystack = _row_of(**values, **unsearched)["search_text"]
    assert isinstance(haystack, str)
    for name, value in unsearched.items():
        assert not FIELDS[name].searchable
        assert fold(value) not in haystack, name
