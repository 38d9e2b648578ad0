"""Answers in JSON, serialised by orjson (several times faster than the standard library's encoder)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def json_answer(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")
