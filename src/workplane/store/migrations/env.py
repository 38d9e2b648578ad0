"""Alembic environment: always run programmatically by ``workplane.store.migrate``.

The caller passes an open connection in ``config.attributes["connection"]``; SQLite needs batch
mode (``render_as_batch``) for ALTERs, which PostgreSQL simply ignores.
"""

from __future__ import annotations

from alembic import context

from workplane.store.migrate import include_object
from workplane.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
