"""Query parameters shared by several endpoints, parsed into the query layer's typed objects."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from workplane.domain.fields import FIELDS
from workplane.query.filters import QueryError, Sort, SortOrder

E = TypeVar("E", bound=Enum)


def strip_enum_prefix(value: str) -> str:
    """The official client sends enum arguments as their Python repr (``SortOrder.asc`` /
    ``WorkloadTelemetryType.WORKLOADS_COUNT``); accept an optional ``SomeName.`` prefix."""
    head, dot, tail = value.partition(".")
    if dot and head.isidentifier() and tail:
        return tail
    return value


def parse_enum(param: str, value: str, enum: type[E]) -> E:
    text = strip_enum_prefix(value)
    for member in enum:
        if text in (member.value, member.name):
            return member
    allowed = ", ".join(str(m.value) for m in enum)
    raise QueryError(param, f"{value!r} is not one of {allowed}")


def parse_sort(sort_by: str | None, sort_order: str | None) -> Sort:
    order = parse_enum("sortOrder", sort_order, SortOrder) if sort_order else SortOrder.ASC
    if not sort_by:
        return Sort("createdAt", order)
    field = strip_enum_prefix(sort_by)
    if field not in FIELDS or not FIELDS[field].sortable:
        raise QueryError("sortBy", f"{sort_by!r} is not a sortable field")
    return Sort(field, order)


def parse_bool(param: str, value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    text = strip_enum_prefix(value).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise QueryError(param, f"{value!r} is not true or false")
