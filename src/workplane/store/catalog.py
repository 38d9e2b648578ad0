"""Categories, priorities and workload types: seeding and the data functions behind /workload-*."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from workplane.domain import catalog as defaults
from workplane.domain.catalog import CatalogSnapshot, TypeDefaults
from workplane.store.database import insert_ignore
from workplane.store.schema import catalog_state, categories, priorities, workload_types, workloads

SEEDED_BY = "system"


def seed(connection: sa.Connection, now_ms: int) -> None:
    """Insert Run:ai's default catalog where it is missing; never overwrite what a user changed."""
    insert_ignore(connection, catalog_state, [{"id": 1, "version": 1}])
    insert_ignore(
        connection,
        categories,
        [
            {"id": c.id, "name": c.name, "description": c.description, "created_at": now_ms}
            for c in defaults.CATEGORIES
        ],
    )
    insert_ignore(
        connection,
        priorities,
        [
            {"id": p.id, "name": p.name, "value": p.value, "created_at": now_ms, "updated_at": now_ms}
            for p in defaults.PRIORITIES
        ],
    )
    type_rows = []
    for source, table in (
        (defaults.TYPE_SOURCE_NATIVE, defaults.NATIVE_TYPES),
        (defaults.TYPE_SOURCE_EXTERNAL, defaults.EXTERNAL_TYPES),
    ):
        for name, group, category in table:
            type_rows.append(
                {
                    "id": defaults.catalog_id("type", name, group),
                    "name": name,
                    "group": group,
                    "source": source,
                    "category_name": category,
                    "priority_name": defaults.CATEGORY_BY_NAME[category].default_priority,
                    "created_at": now_ms,
                    "created_by": SEEDED_BY,
                    "updated_at": now_ms,
                    "updated_by": SEEDED_BY,
                }
            )
    insert_ignore(connection, workload_types, type_rows)


def bump_version(connection: sa.Connection) -> None:
    connection.execute(
        catalog_state.update().where(catalog_state.c.id == 1).values(version=catalog_state.c.version + 1)
    )


class CatalogCache:
    """The type defaults, reloaded only when ``catalog_state.version`` moved.

    Checking the version costs one indexed single-row read per request and keeps every server process
    (several API replicas on one PostgreSQL) consistent with the others within the same transaction.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: CatalogSnapshot | None = None

    def get(self, connection: sa.Connection) -> CatalogSnapshot:
        version = connection.execute(
            sa.select(catalog_state.c.version).where(catalog_state.c.id == 1)
        ).scalar()
        snapshot = self._snapshot
        if snapshot is not None and snapshot.version == version:
            return snapshot
        rows = connection.execute(
            sa.select(workload_types.c.name, workload_types.c.category_name, workload_types.c.priority_name)
        ).all()
        snapshot = CatalogSnapshot(
            types={r.name: TypeDefaults(r.name, r.category_name, r.priority_name) for r in rows},
            version=int(version or 0),
        )
        with self._lock:
            self._snapshot = snapshot
        return snapshot


def list_categories(connection: sa.Connection) -> list[sa.Row[Any]]:
    return list(connection.execute(sa.select(categories).order_by(categories.c.name)).all())


def get_category(connection: sa.Connection, category_id: str) -> sa.Row[Any] | None:
    return connection.execute(sa.select(categories).where(categories.c.id == category_id)).first()


def list_priorities(connection: sa.Connection) -> list[sa.Row[Any]]:
    return list(connection.execute(sa.select(priorities).order_by(priorities.c.value)).all())


def _types_with_names() -> sa.Select[Any]:
    return (
        sa.select(
            workload_types,
            categories.c.id.label("category_id"),
            priorities.c.id.label("priority_id"),
        )
        .join(categories, categories.c.name == workload_types.c.category_name)
        .join(priorities, priorities.c.name == workload_types.c.priority_name)
    )


def list_types(
    connection: sa.Connection, *, external_only: bool, where: list[sa.ColumnElement[bool]]
) -> list[sa.Row[Any]]:
    query = _types_with_names().where(*where).order_by(workload_types.c.name)
    if external_only:
        query = query.where(workload_types.c.source != defaults.TYPE_SOURCE_NATIVE)
    return list(connection.execute(query).all())


def get_type(connection: sa.Connection, type_id: str) -> sa.Row[Any] | None:
    return connection.execute(_types_with_names().where(workload_types.c.id == type_id)).first()


def category_name_by_id(connection: sa.Connection, category_id: str) -> str | None:
    return connection.execute(sa.select(categories.c.name).where(categories.c.id == category_id)).scalar()


def priority_name_by_id(connection: sa.Connection, priority_id: str) -> str | None:
    return connection.execute(sa.select(priorities.c.name).where(priorities.c.id == priority_id)).scalar()


@dataclass(frozen=True, slots=True)
class TypeChange:
    category_name: str | None
    priority_name: str | None


def update_type(connection: sa.Connection, type_id: str, change: TypeChange, *, by: str, now_ms: int) -> bool:
    values: dict[str, Any] = {"updated_at": now_ms, "updated_by": by}
    if change.category_name is not None:
        values["category_name"] = change.category_name
    if change.priority_name is not None:
        values["priority_name"] = change.priority_name
    result = connection.execute(
        workload_types.update().where(workload_types.c.id == type_id).values(**values)
    )
    if result.rowcount:
        bump_version(connection)
    return bool(result.rowcount)


def type_name_exists(connection: sa.Connection, name: str) -> bool:
    found = connection.execute(sa.select(workload_types.c.id).where(workload_types.c.name == name)).first()
    return found is not None


def create_type(
    connection: sa.Connection,
    *,
    name: str,
    group: str,
    category_name: str,
    priority_name: str,
    by: str,
    now_ms: int,
) -> str:
    type_id = defaults.catalog_id("type", name, group)
    connection.execute(
        workload_types.insert().values(
            id=type_id,
            name=name,
            group=group,
            source=defaults.TYPE_SOURCE_USER,
            category_name=category_name,
            priority_name=priority_name,
            created_at=now_ms,
            created_by=by,
            updated_at=now_ms,
            updated_by=by,
        )
    )
    bump_version(connection)
    return type_id


def delete_type(connection: sa.Connection, type_id: str) -> None:
    connection.execute(workload_types.delete().where(workload_types.c.id == type_id))
    bump_version(connection)


def type_in_use(connection: sa.Connection, name: str) -> bool:
    found = connection.execute(sa.select(workloads.c.id).where(workloads.c.type == name).limit(1)).first()
    return found is not None
