"""The store's SQL per database: one ``SqlDialect`` subclass each, chosen once per engine."""

from __future__ import annotations

import sqlalchemy as sa

from workplane.store.dialects.base import SqlDialect
from workplane.store.dialects.postgresql import PostgresDialect
from workplane.store.dialects.sqlite import SQLiteDialect

SQLITE = SQLiteDialect()
POSTGRESQL = PostgresDialect()
_BY_NAME: dict[str, SqlDialect] = {d.name: d for d in (SQLITE, POSTGRESQL)}


def for_url(url: str) -> SqlDialect:
    """The dialect of a database URL (``sqlite:///...``, ``postgresql+psycopg://...``)."""
    backend = sa.make_url(url).get_backend_name()
    if backend not in _BY_NAME:
        raise ValueError(f"unsupported database {backend!r}: SQLite or PostgreSQL")
    return _BY_NAME[backend]


def dialect_of(bind: sa.Connection | sa.Engine) -> SqlDialect:
    """The dialect of an engine, or of a connection of one."""
    return _BY_NAME[bind.dialect.name]
