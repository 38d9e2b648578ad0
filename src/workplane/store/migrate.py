"""One Alembic migration tree for SQLite and PostgreSQL, run from code (no alembic.ini to ship).

Alembic is imported only when a migration runs or the tree is read: a server starting on a store
already at the newest revision (every start but the first after an upgrade) reads the revision from
the store and goes on, without importing Alembic and Mako or reading the tree's scripts (with httpx
left out too, ``metrics.prometheus``: a server's start until ``/health`` answers took 1.05–1.30
CPU-s, now 0.95–1.11)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from workplane.store.schema import EXPRESSION_INDEXES

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSIONS_DIR = MIGRATIONS_DIR / "versions"


def newest_revision() -> str:
    """The tree's head, from the scripts' names: each is ``<revision>_<slug>.py`` with a revision of
    four digits that revises a lower one (``tests/store/test_workloads.py`` holds the tree to that)."""
    return max(path.name.split("_", 1)[0] for path in VERSIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))


# Created by raw SQL per dialect and absent from ``schema.metadata``: the FTS5 table (and its shadow
# tables) on SQLite (migration 0004); on PostgreSQL the ``workload_search`` table and its indexes
# (0010), or, before 0010, the pg_trgm indexes on ``workloads``; the pods' own (0015), and from 0024
# their trigrams without the phase and the live pods' phases.
TEXT_SEARCH_OBJECTS = (
    "workload_text",
    "workload_search",
    "ix_workload_search_",
    "ix_workloads_name_trgm",
    "ix_workloads_search_trgm",
    "pod_text",
    "ix_workload_pods_search_trgm",
    "ix_workload_pods_names_trgm",
    "ix_workload_pods_live_phase",
)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate filter: leave the text-search objects alone, and the expression indexes, which
    SQLite's reflection does not return (``tests/store`` checks them by name)."""
    if name is not None and name in EXPRESSION_INDEXES:
        return False
    return not (reflected and name is not None and name.startswith(TEXT_SEARCH_OBJECTS))


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    if revision == "head" and current_revision(engine) == newest_revision():
        return
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def heads() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(engine: sa.Engine) -> str | None:
    """The store's revision (None: never migrated), read as Alembic keeps it, one row in
    ``alembic_version``, without Alembic."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise RuntimeError(f"the store is at several revisions at once: {sorted(versions)}")
    return versions[0] if versions else None
