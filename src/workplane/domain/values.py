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


def check_json(value: Any, where: str = "", depth: int = 0) -> None:
    """Raise ``ValueError`` naming the first value that no store can hold: a non-finite number, an
    integer beyond 64 bits, a NUL character in a key or string, or nesting deeper than
    ``MAX_JSON_DEPTH``."""
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
            check_json(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]", depth + 1)


def _checked(value: Any) -> Any:
    check_json(value)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_checked)]
