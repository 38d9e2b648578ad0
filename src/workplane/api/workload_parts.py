"""What the routes under ``/workloads/{workloadId}/…`` (pods, history) share: the workload's id, and
the rule that the parts of a workload are scoped exactly as the workload is."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from workplane.api.deps import readable
from workplane.api.errors import bad_request, not_found
from workplane.auth.rules import Access
from workplane.store import workloads as store


def uuid_of(name: str, text: str) -> str:
    """A path's id as the canonical UUID text, or 400 naming the parameter."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise bad_request(f"invalid {name}: {text!r} is not a UUID") from None


def workload_id_of(text: str) -> str:
    return uuid_of("workloadId", text)


def require_readable(connection: sa.Connection, access: Access, workload_id: str) -> None:
    """404 unless the workload exists inside the caller's scopes: outside them it does not exist, and
    neither do its pods, events or history."""
    if store.get_workload(connection, workload_id, scope=readable(access)) is None:
        raise not_found(f"workload {workload_id} not found")
