"""One Alembic migration tree for SQLite and PostgreSQL, run from code (no alembic.ini to ship)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from workplane.store.schema import EXPRESSION_INDEXES

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Created by raw SQL per dialect and absent from ``schema.metadata``: the FTS5 table (and its shadow
# tables) on SQLite (migration 0004); on PostgreSQL the ``workload_search`` table and its indexes
# (0010), or, before 0010, the pg_trgm indexes on ``workloads``; the pods' own (0015).
TEXT_SEARCH_OBJECTS = (
    "workload_text",
    "workload_search",
    "ix_workload_search_",
    "ix_workloads_name_trgm",
    "ix_workloads_search_trgm",
    "pod_text",
    "ix_workload_pods_search_trgm",
)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate filter: leave the text-search objects alone, and the expression indexes, which
    SQLite's reflection does not return (``tests/store`` checks them by name)."""
    if name is not None and name in EXPRESSION_INDEXES:
        return False
    return not (reflected and name is not None and name.startswith(TEXT_SEARCH_OBJECTS))


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def heads() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
