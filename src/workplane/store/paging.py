"""Paging a list through ids first: the ordered, filtered walk reads ids only (an index walk where an
index covers the order), and the caller then reads the page's rows; a deep offset skips index entries,
not documents."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def page_ids(
    connection: sa.Connection, statement: sa.Select[Any], *, offset: int, limit: int
) -> tuple[list[str], bool]:
    """The ids on the page of ``statement`` (a select of one id column, ordered) and whether more
    follow it."""
    ids = list(connection.execute(statement.offset(offset).limit(limit + 1)).scalars())
    return ids[:limit], len(ids) > limit
