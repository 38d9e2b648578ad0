"""Bounds every number and string must respect before anything stores it.

Both databases hold 64-bit integers and finite doubles, and PostgreSQL's text cannot hold a NUL. A value
outside these bounds is the request's fault, so it is refused where the request is validated (a 400
naming the field), never left to fail inside the database as a 500.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write, in epoch milliseconds.
MAX_TIME_MS = 253_402_300_799_999
# Free-form JSON (labels, resources, conditions …) nests no deeper than this.
MAX_JSON_DEPTH = 32

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
TimeMs = Annotated[int, Field(ge=0, le=MAX_TIME_MS)]


_SCALARS = (str, int, float, bool, type(None))


def _storable(value: Any, depth: int) -> bool:
    """Whether ``check_json`` accepts ``value``, without working out where a fault is (the path of
    every nested value, built on the way, was most of the check's cost on a batch of pods). The
    values JSON decodes to are tested by exact type, and a mapping's or list's scalars without a
    call each: a pod's resources are a mapping of a few numbers, checked 100,000 times in the first
    sync of a large cluster. Anything else (a subclass) takes the general path."""
    if depth > MAX_JSON_DEPTH:
        return False
    kind = type(value)
    if depth == MAX_JSON_DEPTH and kind in (dict, list):
        return len(value) == 0  # its items would be nested too deep, scalars included
    if kind is dict:
        for key, item in value.items():
            if "\x00" in key or not (
                _scalar_ok(item) if type(item) in _SCALARS else _storable(item, depth + 1)
            ):
                return False
        return True
    if kind is list:
        return all(
            _scalar_ok(item) if type(item) in _SCALARS else _storable(item, depth + 1) for item in value
        )
    if kind in _SCALARS:
        return _scalar_ok(value)
    return _storable_general(value, depth)


def _scalar_ok(value: Any) -> bool:
    """A str, int, float, bool or None (exactly) that every store can hold."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value
    if kind is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    if kind is float:
        return math.isfinite(value)
    return True  # bool, None


def _storable_general(value: Any, depth: int) -> bool:
    """``_storable`` for values of other types than JSON's own (subclasses of them)."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key or not _storable(item, depth + 1):
                return False
    elif isinstance(value, list):
        for item in value:
            if not _storable(item, depth + 1):
                return False
    return True


def check_json(value: Any, where: str = "", depth: int = 0) -> None:
    """Raise ``ValueError`` naming the first value that no store can hold: a non-finite number, an
    integer beyond 64 bits, a NUL character in a key or string, or nesting deeper than
    ``MAX_JSON_DEPTH``."""
    if _storable(value, depth):
        return
    _locate(value, where, depth)


def _locate(value: Any, where: str, depth: int) -> None:
    """``check_json``'s error, naming where the fault is."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where or 'value'}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{where or 'value'}: integer out of the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where or 'value'}: numbers must be finite")
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'value'}: text must not contain a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError(f"{where or 'value'}: keys must not contain a NUL character")
            _locate(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _locate(item, f"{where}[{index}]", depth + 1)


def _checked(value: Any) -> Any:
    check_json(value)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_checked)]
