"""The field registry agrees with what is stored: the store's columns and the live-count rollup."""

from __future__ import annotations

from workplane.domain.fields import FIELDS, WORKLOAD_FIELDS
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
